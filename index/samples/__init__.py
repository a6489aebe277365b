"""The sample articles shipped with the project (written for it), for the demo and the tests."""

from __future__ import annotations

from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent


def sample_paths() -> list[Path]:
    """The sample article files (date-named Markdown; the folder's README is not one)."""
    return sorted(SAMPLES_DIR.glob("[0-9]*.md"))
