"""Crash safety: the short version of benchmarks/crash_safety.py (kill -9 during adds, then check)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.helpers import PROJECT


def test_library_survives_kill_9_during_adds(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(PROJECT / "benchmarks" / "crash_safety.py"), "--kills", "3", "--max-delay", "2.5",
         "--data-dir", str(tmp_path / "data"), "--seed", "3"],
        cwd=PROJECT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "survived 3/3 kills" in result.stdout
    reported = int(result.stdout.rsplit("kills with every check passing; ", 1)[1].split()[0])
    assert reported > 0  # the kills came while articles were being added
