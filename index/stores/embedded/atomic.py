"""Replacing a file so that readers, and a crash at any moment, find the old content or the new one."""

from __future__ import annotations

import os
from pathlib import Path


def replace_file(tmp: Path, path: Path) -> None:
    """Flush the written ``tmp`` to disk, rename it over ``path``, then flush the directory entry."""
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
