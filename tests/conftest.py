"""Shared fixtures: the real embedding model (loaded once) and throwaway libraries, on each store.

Library-level tests take ``settings`` (or ``library``, or ``sample_settings``) and so run once per
store: ``[embedded]`` in a data directory, ``[postgres]`` in a fresh PostgreSQL database. Tests about
the embedded store's own files (SQLite, FAISS), its data-directory lock, or copies of
``sample_library_dir`` take ``embedded_settings`` instead."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from index.config import Settings, load_settings  # noqa: E402
from index.embedding.embedder import Embedder  # noqa: E402
from index.library import Library  # noqa: E402
from index.samples import sample_paths  # noqa: E402
from tests.support.helpers import run_cli, write_squad_like  # noqa: E402
from tests.support.web_pages import site  # noqa: E402,F401 - fixture

if TYPE_CHECKING:  # imported by pytest as the plugin below (importing it here first would skip its assert rewriting)
    from tests.support.postgres_server import TestPostgres

# A throwaway PostgreSQL with pgvector (postgres_server, postgres_dsn), started once per session.
pytest_plugins = ["tests.support.postgres_server"]


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder(load_settings(environ={}).embedding)


STORES = ("embedded", "postgres")


def on_postgres(settings: Settings, dsn: str) -> Settings:
    """The same settings with the library in the PostgreSQL database ``dsn``."""
    return settings.replace("library", store="postgres").replace("postgres", dsn=dsn, pool_min=1, pool_max=4)


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    """The store a library-level test runs on (each runs on both)."""
    return request.param


@pytest.fixture
def embedded_settings(tmp_path: Path) -> Settings:
    """A new library in a data directory (the embedded store only)."""
    return load_settings(environ={}).replace("library", data_dir=tmp_path / "data", lock_timeout=1.0)


@pytest.fixture
def settings(store_kind: str, embedded_settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """A new, empty library on each store: a data directory, or a fresh PostgreSQL database."""
    if store_kind == "postgres":
        return on_postgres(embedded_settings, request.getfixturevalue("postgres_dsn"))
    return embedded_settings


@pytest.fixture
def postgres_settings(embedded_settings: Settings, postgres_dsn: str) -> Settings:
    """A new library in a fresh PostgreSQL database (the server store only)."""
    return on_postgres(embedded_settings, postgres_dsn)


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


@pytest.fixture
def sample_copy_settings(sample_library_dir: Path, tmp_path: Path, embedded_settings: Settings) -> Settings:
    """A copy of the sample articles' data directory for one test to change (the embedded store)."""
    data_dir = tmp_path / "copy"
    shutil.copytree(sample_library_dir, data_dir)
    return embedded_settings.replace("library", data_dir=data_dir)


@pytest.fixture(scope="session")
def sample_postgres_dsn(postgres_server: "TestPostgres", embedder: Embedder) -> str:
    """A PostgreSQL database holding the sample articles, built once (tests only read it)."""
    dsn = postgres_server.dsn(postgres_server.create_database())
    with Library(on_postgres(load_settings(environ={}), dsn), embedder=embedder) as lib:
        results = list(lib.add_sources([str(p) for p in sample_paths()]))
    assert all(r.status == "added" for r in results), [r.message for r in results]
    return dsn


@pytest.fixture
def sample_postgres_copy_dsn(postgres_server: "TestPostgres", sample_postgres_dsn: str) -> Iterator[str]:
    """A copy of the sample articles' PostgreSQL database for one test to change; dropped after it."""
    from psycopg.conninfo import conninfo_to_dict

    name = postgres_server.create_database(copy_of=conninfo_to_dict(sample_postgres_dsn)["dbname"])
    try:
        yield postgres_server.dsn(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def sample_settings(store_kind: str, embedded_settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The sample articles' library on each store (to read, not to change)."""
    if store_kind == "postgres":
        return on_postgres(embedded_settings, request.getfixturevalue("sample_postgres_dsn"))
    return embedded_settings.replace("library", data_dir=request.getfixturevalue("sample_library_dir"))


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
