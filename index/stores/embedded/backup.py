"""Backups of an embedded library, and the checks a backup passes before it may replace one.

A backup is a folder: a copy of the database (SQLite's online backup), the FAISS file, and a manifest
(``manifest.json``) naming each file with its size and SHA-256, the schema version, the counts of
articles, passages and vectors, the embedding model and when it was made.

A restore never lets an unchecked byte near the live library: the backup's database is copied into a
temporary file in the data directory, and that copy (the very bytes that will be restored) must match
the manifest's checksums, pass SQLite's integrity and foreign-key checks, hold the tables this version
needs at a schema version it can open, and hold the counts the manifest recorded. Only then does it
replace the live content, in one SQLite transaction (``SqliteStore.restore_from``), so that a failure at
any point leaves the library as it was. A backup without a manifest (made by an earlier version) is
restored once the database's own checks pass, with a warning that its bytes could not be verified."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sqlite3
import uuid
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Mapping

from index.articles import utc_now
from index.errors import BackupError
from index.stores.embedded.atomic import replace_file
from index.stores.embedded.directory import DATABASE_FILE, VECTORS_FILE
from index.stores.embedded.store import SCHEMA_VERSION, SqliteStore

log = logging.getLogger(__name__)
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
STAGING_PREFIX = f"{DATABASE_FILE}.restoring-"  # the checked copy in the data directory, while a restore runs
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileEntry:
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Contents:
    """What a library database holds, as the manifest records it and a restore checks it."""

    schema_version: int
    embedding_model: str | None
    articles: int
    passages: int
    vectors: int  # passages whose stored vector fits the embedding model's dimension


@dataclass(frozen=True)
class Manifest:
    format: int
    created: str
    contents: Contents
    files: dict[str, FileEntry]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        """The manifest a backup wrote; ValueError (or KeyError, TypeError) when it is not one."""
        data = json.loads(text)
        if data.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"unknown manifest format {data.get('format')!r}")
        contents = Contents(**data["contents"])
        files = {str(name): FileEntry(int(entry["bytes"]), str(entry["sha256"]))
                 for name, entry in data["files"].items()}
        if DATABASE_FILE not in files:
            raise ValueError(f"it does not list {DATABASE_FILE}")
        return cls(int(data["format"]), str(data["created"]), contents, files)


def file_entry(path: Path) -> FileEntry:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return FileEntry(path.stat().st_size, digest.hexdigest())


def read_contents(db: sqlite3.Connection) -> Contents:
    """The schema version, model and counts of an open library database."""
    meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('schema_version', 'embedding_model')"))
    version = meta.get("schema_version")
    if version is None or not str(version).isdigit():
        raise BackupError("it is not a library backup (no schema version)")
    model = meta.get("embedding_model")
    dimension = model.rpartition("|")[2] if model else ""
    if dimension.isascii() and dimension.isdigit():
        vectors = db.execute("SELECT count(*) FROM passages WHERE length(vector) = ?", (int(dimension) * 4,))
    else:
        vectors = db.execute("SELECT count(*) FROM passages WHERE vector IS NOT NULL")
    return Contents(schema_version=int(version), embedding_model=model,
                    articles=db.execute("SELECT count(*) FROM articles").fetchone()[0],
                    passages=db.execute("SELECT count(*) FROM passages").fetchone()[0],
                    vectors=vectors.fetchone()[0])


def write_manifest(folder: Path) -> Manifest:
    """Describe the backup in ``folder`` (its database and FAISS file, written just before) in its manifest."""
    with closing(sqlite3.connect(folder / DATABASE_FILE)) as db:
        contents = read_contents(db)
    files = {name: file_entry(folder / name) for name in (DATABASE_FILE, VECTORS_FILE) if (folder / name).exists()}
    manifest = Manifest(MANIFEST_FORMAT, utc_now().isoformat(timespec="seconds"), contents, files)
    tmp = folder / (MANIFEST_FILE + ".tmp")
    tmp.write_text(manifest.to_json(), encoding="utf-8")
    replace_file(tmp, folder / MANIFEST_FILE)
    return manifest


def read_manifest(source: Path) -> Manifest | None:
    """The backup's manifest; None when it has none (a backup made by an earlier version)."""
    path = source / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        return Manifest.from_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BackupError(f"{path} is not a readable backup manifest ({exc}); nothing was restored.") from None


def expected_tables() -> dict[str, set[str]]:
    """Each table this version's database has, with its columns (read from a new, empty database)."""
    store = SqliteStore(Path(":memory:"))
    try:
        names = [row[0] for row in store.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: {row[1] for row in store.query(f'PRAGMA table_info("{name}")')} for name in names}
    finally:
        store.close()


@dataclass(frozen=True)
class CheckedBackup:
    """A backup's database, copied into the data directory and checked; its FAISS file, if usable."""

    database: Path
    vectors_file: Path | None
    contents: Contents
    verified: bool  # False for a backup without a manifest: its own checks passed, its bytes unverifiable


@contextmanager
def checked_copy(source: Path, data_dir: Path, meta: Mapping[str, str] | None = None) -> Iterator[CheckedBackup]:
    """Copy the backup in ``source`` into the data directory, check it completely (BackupError says what is
    wrong), write ``meta`` into the copy, and yield it; the copy is deleted afterwards, whatever happens."""
    database = source / DATABASE_FILE
    if not database.is_file():
        raise BackupError(f"{source} holds no library backup ({DATABASE_FILE} is missing).")
    manifest = read_manifest(source)
    wal = Path(f"{database}-wal")
    if wal.exists() and wal.stat().st_size:
        raise BackupError(f"{database} has a write-ahead log beside it ({wal.name}): it is open in another "
                          "program, or was not closed; nothing was restored.")
    for leftover in data_dir.glob(STAGING_PREFIX + "*"):  # from a restore that was killed (we hold the lock)
        leftover.unlink(missing_ok=True)
    staged = data_dir / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
    try:
        try:
            shutil.copyfile(database, staged)
        except OSError as exc:
            raise BackupError(f"{database} cannot be copied into {data_dir}: {exc.strerror or exc}; "
                              "nothing was restored.") from None
        vectors_file = _check_files(source, staged, manifest)
        contents = _check_database(database, staged, manifest, meta or {})
        if manifest is None:
            log.warning("%s has no manifest (a backup made by an earlier version): its database passed SQLite's "
                        "integrity check and the schema and count checks, but its bytes could not be verified "
                        "against checksums", source)
        yield CheckedBackup(staged, vectors_file, contents, verified=manifest is not None)
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{staged}{suffix}").unlink(missing_ok=True)


def _check_files(source: Path, staged: Path, manifest: Manifest | None) -> Path | None:
    """Compare the copied database, and the FAISS file, with the manifest; the FAISS file to load, if any."""
    vectors_file = source / VECTORS_FILE
    if manifest is None:
        return vectors_file if vectors_file.is_file() else None  # an unreadable one is rebuilt from SQLite
    for name, expected in manifest.files.items():
        path = staged if name == DATABASE_FILE else source / name
        if not path.is_file():
            raise BackupError(f"{source / name} is missing (the backup's manifest lists it); nothing was restored.")
        found = file_entry(path)
        if found.bytes != expected.bytes:
            raise BackupError(f"{source / name} is damaged: {found.bytes} bytes where the manifest recorded "
                              f"{expected.bytes}; nothing was restored.")
        if found.sha256 != expected.sha256:
            raise BackupError(f"{source / name} is damaged: its checksum differs from the manifest's; "
                              "nothing was restored.")
    return vectors_file if VECTORS_FILE in manifest.files else None


def _check_database(database: Path, staged: Path, manifest: Manifest | None, meta: Mapping[str, str]) -> Contents:
    """SQLite's checks, the schema and the counts, on the copy; then ``meta`` is written into it."""
    try:
        with closing(sqlite3.connect(staged, isolation_level=None)) as db:
            problems = [row[0] for row in db.execute("PRAGMA integrity_check(5)")]
            if problems != ["ok"]:
                raise BackupError(f"{database} is damaged (SQLite's integrity check: {problems[0]}); "
                                  "nothing was restored.")
            _check_schema(database, db)
            if db.execute("PRAGMA foreign_key_check").fetchone() is not None:
                raise BackupError(f"{database} is damaged (passages or aliases of articles it does not hold); "
                                  "nothing was restored.")
            contents = read_contents(db)
            if manifest is not None and contents != manifest.contents:
                raise BackupError(f"{database} does not hold what the backup's manifest recorded "
                                  f"({_differences(manifest.contents, contents)}); nothing was restored.")
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO meta(key, value) VALUES (?, ?) "
                           "ON CONFLICT(key) DO UPDATE SET value = excluded.value", meta.items())
            db.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{database} is damaged or not a library database (SQLite: {exc}); "
                          "nothing was restored.") from None
    return contents


def _check_schema(database: Path, db: sqlite3.Connection) -> None:
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "meta" not in tables:
        raise BackupError(f"{database} is not a library backup (it has no meta table); nothing was restored.")
    version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if version is None or not str(version[0]).isascii() or not str(version[0]).isdigit():
        raise BackupError(f"{database} is not a library backup (no schema version); nothing was restored.")
    if not 1 <= int(version[0]) <= SCHEMA_VERSION:
        raise BackupError(f"{database} has schema version {version[0]}, and this version of the project opens "
                          f"versions 1 to {SCHEMA_VERSION}; nothing was restored.")
    for table, columns in expected_tables().items():
        if table not in tables:
            raise BackupError(f"{database} lacks the table {table!r} that this version needs; nothing was restored.")
        found = {row[1] for row in db.execute(f'PRAGMA table_info("{table}")')}
        if missing := sorted(columns - found):
            raise BackupError(f"{database} lacks the columns {', '.join(missing)} of the table {table!r}; "
                              "nothing was restored.")


def _differences(recorded: Contents, found: Contents) -> str:
    recorded_fields, found_fields = asdict(recorded), asdict(found)
    return "; ".join(f"{name} {found_fields[name]!r} where it recorded {value!r}"
                     for name, value in recorded_fields.items() if found_fields[name] != value)
