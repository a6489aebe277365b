"""Shared fixtures: the real embedding model (loaded once) and throwaway libraries on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from index.config import Settings, load_settings  # noqa: E402
from index.embedding import Embedder  # noqa: E402
from index.library import Library  # noqa: E402
from index.samples import sample_paths  # noqa: E402
from tests.helpers import run_cli, write_squad_like  # noqa: E402
from tests.web_pages import site  # noqa: E402,F401 - fixture

# A throwaway PostgreSQL with pgvector (postgres_server, postgres_dsn), started once per session.
pytest_plugins = ["tests.postgres_server"]


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder(load_settings(environ={}).embedding)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    base = load_settings(environ={})
    return base.replace("library", data_dir=tmp_path / "data", lock_timeout=1.0)


@pytest.fixture
def library(settings: Settings, embedder: Embedder) -> Iterator[Library]:
    with Library(settings, embedder=embedder) as lib:
        yield lib


@pytest.fixture(scope="session")
def sample_library_dir(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """A data directory holding the sample articles, built once (copy it before changing it)."""
    data_dir = tmp_path_factory.mktemp("samples") / "data"
    settings = load_settings(environ={}).replace("library", data_dir=data_dir)
    with Library(settings, embedder=embedder) as lib:
        results = list(lib.add_sources([str(p) for p in sample_paths()]))
    assert all(r.status == "added" for r in results), [r.message for r in results]
    return data_dir


@pytest.fixture(scope="session")
def trained_reranker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reranker file written by the real training command on the tiny data set (a few steps)."""
    work = tmp_path_factory.mktemp("reranker")
    write_squad_like(work / "squad")
    out = work / "out" / "reranker.safetensors"
    result = run_cli("train-reranker", str(work / "squad"), str(out), "--questions", "8", "--groups-per-batch", "4",
                     "--calibration-questions", "6", "--max-length", "64", data_dir=work / "data")
    assert result.returncode == 0, result.stderr
    assert "calibration on SQuAD 2.0 dev" in result.stderr
    return out
