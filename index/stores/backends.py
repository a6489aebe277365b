"""Where a library keeps its articles: the one place that picks a backend, from ``library.store``.

``embedded``: SQLite, a FAISS file and a postings file in the data directory, for the processes of one
machine (index/stores/embedded/backend.py). ``postgres``: one PostgreSQL database with pgvector shared
by every process and replica (index/stores/postgres/backend.py). Both follow the contract in
index/stores/base.py, and both re-embed every passage when the embedding model changes."""

from __future__ import annotations

from importlib import import_module

from index.config import Settings
from index.embedding.embedder import Embedder
from index.stores.base import Backend

# Each choice of ``library.store`` and the class that serves it ("module:Class"), imported only when
# chosen: the postgres backend needs the optional psycopg.
BACKENDS = {
    "embedded": "index.stores.embedded.backend:EmbeddedBackend",
    "postgres": "index.stores.postgres.backend:PostgresBackend",
}


def open_backend(settings: Settings, embedder: Embedder) -> Backend:
    """The backend ``library.store`` names, with its store opened (vectors not yet checked: ``open``)."""
    module, _, name = BACKENDS[settings.library.store].partition(":")
    backend: type[Backend] = getattr(import_module(module), name)
    return backend(settings, embedder)
