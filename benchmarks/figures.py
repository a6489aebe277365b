"""Small helpers the benchmark scripts share for reporting their figures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``share`` of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)] if ordered else float("nan")


def files_on_disk(folder: Path) -> str:
    """The files of ``folder`` of at least 1 MB with their sizes, for a benchmark's "on disk" line."""
    sizes = {path.name: path.stat().st_size / 2**20 for path in folder.iterdir() if path.is_file()}
    return ", ".join(f"{name} {size:,.0f} MB" for name, size in sorted(sizes.items()) if size >= 1)
