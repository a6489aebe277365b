"""Special files (devices, FIFOs, folders) and the size limit, in every path that reads a file from disk."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from bot.console import CONSOLE_USER_ID, Console, to_terminal
from bot.service import ChatService
from index.config import Settings
from index.embedding.embedder import Embedder
from index.errors import IngestError
from index.ingest.files import read_article_file
from index.library import Library
from tests.support.helpers import PROJECT

STORY = "Harbour reopens\n\n" + "The harbour reopened on Monday after the storm damage was repaired by the crews. " * 4


@pytest.fixture
def special_files(tmp_path: Path) -> dict[str, Path]:
    """A regular file, a symbolic link to /dev/zero, a FIFO, a folder and a missing name, each named .txt."""
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "story.txt").write_text(STORY)
    (folder / "zero.txt").symlink_to("/dev/zero")
    os.mkfifo(folder / "pipe.txt")
    (folder / "folder.txt").mkdir()
    return {"story": folder / "story.txt", "zero": folder / "zero.txt", "pipe": folder / "pipe.txt",
            "folder": folder / "folder.txt", "missing": folder / "missing.txt"}


def test_only_regular_files_are_read(special_files: dict[str, Path]) -> None:
    assert read_article_file(special_files["story"], 10_000) == STORY.encode()
    expected = {"zero": "not a regular file", "pipe": "not a regular file", "folder": "is a folder",
                "missing": "does not exist"}
    for name, message in expected.items():
        with pytest.raises(IngestError, match=message):
            read_article_file(special_files[name], 10_000)


def test_the_size_limit_holds_while_reading_whatever_the_file_says_its_size_is(special_files: dict[str, Path]
                                                                             ) -> None:
    with pytest.raises(IngestError, match="too large"):
        read_article_file(special_files["story"], 100)
    # /proc files report a size of 0 but hold more: only the bytes read count
    status = Path(f"/proc/{os.getpid()}/status")
    assert status.stat().st_size == 0
    with pytest.raises(IngestError, match="too large"):
        read_article_file(status, 64)
    assert len(read_article_file(status, 1_000_000)) > 64


def test_cli_add_refuses_special_files_without_hanging(special_files: dict[str, Path], tmp_path: Path) -> None:
    folder = special_files["story"].parent
    environment = {**os.environ, "NEWSBOT_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    named = [str(special_files[name]) for name in ("zero", "pipe", "folder", "story")]
    # the folder holds the same special files: adding it must skip or refuse them too
    completed = subprocess.run([sys.executable, "-m", "index", "add", *named, str(folder)], cwd=PROJECT,
                               env=environment, capture_output=True, text=True, timeout=300)
    out = completed.stdout
    assert completed.returncode == 1, completed.stderr
    assert "Traceback" not in completed.stderr and "MemoryError" not in completed.stderr
    assert out.count("not a regular file") == 2
    assert "1 added, 1 duplicate, 2 failed" in out


@pytest.fixture
def console(embedded_settings: Settings, embedder: Embedder) -> Iterator[Console]:
    settings = embedded_settings.replace("bot", admin_ids=(CONSOLE_USER_ID,)).replace("library", max_file_bytes=2000)
    with Library(settings, embedder=embedder) as library:
        yield Console(ChatService(library, settings), out=io.StringIO(), colour=False)


def test_console_file_command_reads_safely(console: Console, special_files: dict[str, Path], tmp_path: Path
                                           ) -> None:
    def said(line: str) -> str:
        return "\n".join(to_terminal(reply.html, colour=False) for reply in console.handle(line) or [])

    assert "not a regular file" in said(f"/file {special_files['zero']}")
    assert "not a regular file" in said(f"/file {special_files['pipe']}")
    big = tmp_path / "big.txt"
    big.write_text(STORY * 20)
    assert "too large" in said(f"/file {big}")
    assert "Added" in said(f"/file {special_files['story']}")
