"""Small helpers shared by tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, data_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m index ARGS`` in a subprocess on the given data directory."""
    environment = {**os.environ, "NEWSBOT_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "index", *args], cwd=PROJECT, env=environment,
                          capture_output=True, text=True, timeout=600)
