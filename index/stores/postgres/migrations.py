"""PostgreSQL schema: versioned migrations, then the vector column sized for the embedding model.

Migrations are the files ``sql/NNNN_name.sql``, applied in order, each in its own
transaction and recorded in ``schema_migrations``. Every step holds a transaction-level advisory lock,
so replicas starting at once apply each migration exactly once.

The SQL files do not know the embedding dimension: ``passages.vector`` is created without one and
``ensure_vector_column`` (run after the migrations, with the configured model's dimension) types it
``vector(N)`` and builds its index (cosine; HNSW or IVFFlat: vector_layout.py). A model of another
dimension empties the column first (its vectors are useless to the new model, as the embedded store
treats a model change), and the library re-embeds."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from index.stores.postgres.vector_layout import VECTOR_INDEX, VectorLayout, built_index
from index.stores.postgres.vector_layout import build as build_vector_index

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "sql"
# pg_advisory_xact_lock key taken by every schema change ("newsbot" in ASCII).
SCHEMA_LOCK = 0x6E657773626F74
_FILE_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One SQL file of the schema's history."""

    version: int
    name: str
    path: Path

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def available(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order; a misnamed file or a repeated version is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path.name}: migration files are named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"{path.name}: migration {version} exists twice")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


def applied(conn: psycopg.Connection) -> dict[int, str]:
    """Versions already applied to this database, with their names."""
    rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    return {int(r[0]): str(r[1]) for r in rows}


def migrate(conn: psycopg.Connection, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply the pending migrations in order; returns those this call applied. ``conn`` is in autocommit
    mode: the schema lock is held for the whole run (so of replicas starting together one applies every
    pending migration and the others find none), and each migration is its own transaction."""
    conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
    try:
        return _apply_pending(conn, directory)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))


def _apply_pending(conn: psycopg.Connection, directory: Path) -> list[Migration]:
    with conn.transaction():
        _lock(conn)
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                     " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                     " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    done: list[Migration] = []
    known = available(directory)
    for migration in known:
        with conn.transaction():
            _lock(conn)
            if migration.version in applied(conn):  # read under the lock: another replica may have run it
                continue
            log.info("applying PostgreSQL migration %04d_%s", migration.version, migration.name)
            conn.execute(migration.sql())  # no parameters: the file may hold many statements
            conn.execute("INSERT INTO schema_migrations(version, name) VALUES (%s, %s)",
                         (migration.version, migration.name))
        done.append(migration)
    with conn.transaction():
        newer = sorted(set(applied(conn)) - {m.version for m in known})
    if newer:
        log.warning("the database has migrations this program does not know (%s): it is newer than the code",
                    ", ".join(map(str, newer)))
    return done


def vector_dimension(conn: psycopg.Connection) -> int | None:
    """The dimension ``passages.vector`` is typed with, None while it has none."""
    row = conn.execute("SELECT atttypmod FROM pg_attribute"
                       " WHERE attrelid = 'passages'::regclass AND attname = 'vector'").fetchone()
    return int(row[0]) if row is not None and int(row[0]) > 0 else None


def ensure_vector_column(conn: psycopg.Connection, dimension: int, layout: VectorLayout = VectorLayout()) -> bool:
    """Type ``passages.vector`` as ``vector(dimension)`` with the index ``layout`` asks for; True when it changed
    the column.

    An existing index of the method asked for is kept as built (``m`` and ``ef_construction`` apply to a new
    one; IVFFlat's lists are fitted by PgVectorIndex.fit_layout as the library grows); one of another method
    is rebuilt. A new index over a large table is built inside this transaction, which holds writers back
    meanwhile (searches go on)."""
    with conn.transaction():
        _lock(conn)
        current = vector_dimension(conn)
        changed = current != dimension
        if changed:
            if current is not None:
                log.warning("passage vectors have dimension %d, the model %d: clearing them to re-embed",
                            current, dimension)
            conn.execute(f"DROP INDEX IF EXISTS {VECTOR_INDEX}")
            conn.execute("UPDATE passages SET vector = NULL WHERE vector IS NOT NULL")
            conn.execute(f"ALTER TABLE passages ALTER COLUMN vector TYPE vector({int(dimension)})")
        # Checked first: CREATE INDEX IF NOT EXISTS would lock the table against writes on every start.
        built = built_index(conn)
        if built is None:
            build_vector_index(conn, layout, dimension)
        elif built.method != layout.method:
            build_vector_index(conn, layout, dimension,
                               f"postgres.vector_index is {layout.method}, the index {built.method}")
    return changed


def _lock(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
