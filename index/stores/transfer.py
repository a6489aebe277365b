"""Copy a whole library between the embedded store (SQLite) and PostgreSQL, vectors included.

Articles, aliases, passages (ids, spans, bodies and vectors: nothing is embedded again), feeds, feed
entries and the meta keys that matter are streamed in batches from one consistent snapshot of the
source (read-only) into the target, while the target's writer lock is held. This module holds the copy
and its checks; each store's Source and Target are index/stores/embedded/transfer.py and
index/stores/postgres/transfer.py.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

from tqdm import tqdm

from index.config import Settings
from index.embedding.embedder import model_name
from index.errors import LibraryBusy

# Passages whose vectors are compared in source and target after the copy.
SPOT_CHECKS = 8
# Meta keys each store keeps for itself.
LOCAL_META = frozenset({"schema_version"})
# Written into an embedded target while a copy is under way (its batches commit one by one).
INCOMPLETE_KEY = "incomplete_copy_from"


class TransferError(RuntimeError):
    """A copy that cannot start or did not finish; the message says why, for the user."""


class TransferMismatch(TransferError):
    """The copy finished but the target does not hold what the source does."""

    def __init__(self, message: str, report: "Report") -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Table:
    """A copied table: its columns in order, their PostgreSQL types (binary COPY) and its key order."""

    name: str
    columns: tuple[str, ...]
    pg_types: tuple[str, ...]
    order: str
    batch: int

    @property
    def column_list(self) -> str:
        return ", ".join(f'"{c}"' for c in self.columns)


# Parents before children (foreign keys). A passage's vector travels as little-endian float32 bytes
# (SQLite's BLOB); into PostgreSQL it is written as pgvector's binary form under the "bytea" dumper
# (binary COPY sends no type per field, so the server reads those bytes with vector_recv).
TABLES = (
    Table("articles", ("id", "identity", "content_hash", "title", "text", "url", "published", "source", "author",
                       "added_by", "added_at", "minhash"),
          ("int8",) + ("text",) * 10 + ("bytea",), "id", 1_000),
    Table("article_aliases", ("identity", "article_id"), ("text", "int8"), "identity", 10_000),
    Table("passages", ("id", "article_id", "ordinal", "start", "end", "body", "vector"),
          ("int8", "int8", "int4", "int4", "int4", "text", "bytea"), "id", 10_000),
    Table("feeds", ("id", "url", "title", "etag", "last_modified", "added_by", "added_at", "last_checked",
                    "last_success", "last_error", "failures", "next_poll", "articles_added"),
          ("int8",) + ("text",) * 9 + ("int4", "text", "int4"), "id", 1_000),
    Table("feed_entries", ("feed_id", "entry_key", "status", "attempts", "article_id", "seen_at"),
          ("int8", "text", "text", "int4", "int8", "text"), "feed_id, entry_key", 10_000),
)
VECTOR = TABLES[2].columns.index("vector")
# Tables whose ids come from a sequence: the target's must not hand out ids the source already used.
SEQUENCED = ("articles", "passages", "feeds")
COUNTS_SQL = ("SELECT (SELECT count(*) FROM articles), (SELECT count(*) FROM passages), ({vectors}),"
               " (SELECT count(*) FROM article_aliases), (SELECT count(*) FROM feeds),"
               " (SELECT count(*) FROM feed_entries)")


@dataclass(frozen=True)
class Counts:
    """What a library holds, as compared after a copy."""

    articles: int = 0
    passages: int = 0
    vectors: int = 0
    aliases: int = 0
    feeds: int = 0
    feed_entries: int = 0

    LABELS = {"articles": "articles", "passages": "passages", "vectors": "  with vectors", "aliases": "aliases",
              "feeds": "feeds", "feed_entries": "feed entries"}

    @classmethod
    def of(cls, row: Sequence[Any]) -> "Counts":
        """From a row of COUNTS_SQL."""
        return cls(*(int(v) for v in row))

    def empty(self) -> bool:
        """True when there is nothing to overwrite."""
        return not any(getattr(self, f.name) for f in fields(self))

    def describe(self) -> str:
        """The non-zero counts in words."""
        parts = [f"{getattr(self, f.name)} {self.LABELS[f.name].strip()}" for f in fields(self)
                 if getattr(self, f.name)]
        return ", ".join(parts) or "nothing"


@dataclass
class Report:
    """What a copy did, for printing."""

    source: str
    target: str
    source_counts: Counts
    target_counts: Counts = field(default_factory=Counts)
    checked: int = 0
    unequal: list[int] = field(default_factory=list)
    dropped_vectors: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.source_counts == self.target_counts and not self.unequal

    def lines(self) -> list[str]:
        """The counts side by side, the spot-check and the notes."""
        out = [f"{'':16}{'source':>12}{'target':>12}"]
        for f in fields(Counts):
            mine, theirs = getattr(self.source_counts, f.name), getattr(self.target_counts, f.name)
            out.append(f"{Counts.LABELS[f.name]:16}{mine:>12,}{theirs:>12,}{'' if mine == theirs else '  MISMATCH'}")
        if self.unequal:
            out.append(f"vectors spot-check: {len(self.unequal)} of {self.checked} passages differ"
                       f" (ids {', '.join(map(str, self.unequal))})")
        elif self.checked:
            out.append(f"vectors spot-check: {self.checked} random passages hold equal vectors in source and target")
        if self.dropped_vectors:
            out.append(f"{self.dropped_vectors} source vectors of another dimension were not copied"
                       " (the library re-embeds those passages)")
        return out + self.notes


class Source(Protocol):
    """A library read in one consistent snapshot."""

    where: str
    errors: tuple[type[Exception], ...]  # what its database raises when a read fails
    meta: dict[str, str]
    dimension: int | None

    def counts(self) -> Counts:
        """What it holds (vectors: those of its dimension)."""

    def next_ids(self) -> dict[str, int]:
        """The highest id each sequenced table ever handed out (removed rows included)."""

    def rows(self, table: Table) -> Iterator[list[tuple[Any, ...]]]:
        """The table's rows in key order, in batches; vectors as little-endian float32 bytes."""

    def close(self) -> None:
        """End the snapshot."""


class Target(Protocol):
    """A library being filled while its writer lock is held."""

    where: str
    atomic: bool  # True: a copy that fails or does not match leaves the target as it was
    errors: tuple[type[Exception], ...]  # what its database raises when a write fails

    def busy(self, error: Exception) -> bool:
        """True when ``error`` says another process holds a lock the copy waited for too long."""

    def open(self) -> None:
        """Take the writer lock (LibraryBusy when another process holds it) and bring the schema up to date."""

    def counts(self) -> Counts:
        """What it holds now."""

    def incomplete(self) -> str | None:
        """The source of an unfinished earlier copy, if one was left behind."""

    def clear(self) -> None:
        """Empty every copied table and the meta keys but its own."""

    def prepare(self, dimension: int | None, source: str) -> None:
        """Get ready for vectors of ``dimension`` copied from ``source``."""

    def write(self, table: Table, rows: list[tuple[Any, ...]]) -> None:
        """Insert one batch of rows (as ``Source.rows`` yields them)."""

    def write_meta(self, meta: dict[str, str]) -> None:
        """Set these meta keys."""

    def raise_next_ids(self, next_ids: dict[str, int]) -> None:
        """Make new rows' ids start after both the copied ids and the source's ``next_ids``."""

    def vectors(self, passage_ids: Sequence[int]) -> dict[int, bytes | None]:
        """These passages' stored vectors, as little-endian float32 bytes."""

    def commit(self) -> list[str]:
        """Make the copy final; returns notes for the user."""

    def close(self) -> None:
        """Release the lock (an uncommitted atomic copy is rolled back)."""


# -- helpers ----------------------------------------------------------------------------------------
def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def recorded_dimension(meta: dict[str, str]) -> int | None:
    """The dimension in the meta key ``embedding_model`` ("name|dimension"), if any."""
    _, _, dimension = meta.get("embedding_model", "").rpartition("|")
    return int(dimension) if dimension.isdigit() else None


# -- the copy -----------------------------------------------------------------------------------------
def transfer(source: Source, target: Target, *, replace: bool = False, progress: bool = False,
             model_in_config: str | None = None) -> Report:
    """Copy everything from ``source`` into ``target`` (which must be empty unless ``replace``) and check it."""
    started = time.monotonic()
    report = Report(source.where, target.where, source.counts())
    meta = {k: v for k, v in source.meta.items() if k not in LOCAL_META | {INCOMPLETE_KEY}}
    try:
        target.open()
        existing = target.counts()
        if not existing.empty():
            unfinished = target.incomplete()
            if not replace:
                what = f"an unfinished copy from {unfinished} ({existing.describe()})" if unfinished \
                    else existing.describe()
                raise TransferError(f"the target {target.where} already holds {what}; "
                                    "run again with --replace to empty it first")
            print(f"emptying the target: {existing.describe()}", file=sys.stderr, flush=True)
            target.clear()
        target.prepare(source.dimension, source.where)
        sample = _copy_rows(source, target, report, progress)
        report.notes.append(f"rows copied in {time.monotonic() - started:.1f} s")
        target.write_meta(meta)
        target.raise_next_ids(source.next_ids())
        report.target_counts = target.counts()
        if sample:
            stored = target.vectors(list(sample))
            report.checked = len(sample)
            report.unequal = sorted(i for i, blob in sample.items() if stored.get(i) != blob)
        if not report.ok:
            kept = "rolled back: the target is as it was" if target.atomic else \
                "the target holds the incomplete copy (run again with --replace)"
            raise TransferMismatch(f"the copy does not match its source; {kept}", report)
        report.notes.extend(target.commit())
    except TransferError:
        raise
    except Exception as exc:
        if target.busy(exc):
            raise LibraryBusy(f"The {target.where} is in use by another process; try again in a moment.") from None
        if not isinstance(exc, source.errors + target.errors):
            raise
        unfinished = "nothing was changed" if target.atomic else \
            "the target holds an incomplete copy (run again with --replace)"
        raise TransferError(f"the copy failed: {first_line(exc)}; {unfinished}") from exc
    finally:
        target.close()
    report.notes.extend(_model_notes(meta, source.dimension, model_in_config))
    return report


def _copy_rows(source: Source, target: Target, report: Report, progress: bool) -> dict[int, bytes]:
    """Stream every table; returns a random sample of copied passages' vectors (reservoir sampling)."""
    totals = {"articles": report.source_counts.articles, "article_aliases": report.source_counts.aliases,
              "passages": report.source_counts.passages, "feeds": report.source_counts.feeds,
              "feed_entries": report.source_counts.feed_entries}
    rng = random.Random()
    sample: dict[int, bytes] = {}
    seen = 0
    size = None if source.dimension is None else 4 * source.dimension
    for table in TABLES:
        with tqdm(total=totals[table.name], desc=table.name.replace("_", " "), unit=" rows", file=sys.stderr,
                  disable=not progress, dynamic_ncols=True) as bar:
            for rows in source.rows(table):
                if table.name == "passages":
                    rows = [_checked(row, size, report) for row in rows]
                    for row in rows:
                        if row[VECTOR] is not None:
                            seen += 1
                            if len(sample) < SPOT_CHECKS:
                                sample[row[0]] = row[VECTOR]
                            elif (slot := rng.randrange(seen)) < SPOT_CHECKS:
                                del sample[list(sample)[slot]]
                                sample[row[0]] = row[VECTOR]
                target.write(table, rows)
                bar.update(len(rows))
    return sample


def _checked(row: tuple[Any, ...], size: int | None, report: Report) -> tuple[Any, ...]:
    """The passage row, its vector dropped when it is not of the library's dimension."""
    blob = row[VECTOR]
    if blob is None or size is None or len(blob) == size:
        return row
    report.dropped_vectors += 1
    return (*row[:VECTOR], None)


def _model_notes(meta: dict[str, str], dimension: int | None, model_in_config: str | None) -> list[str]:
    """What the target records about the embedding model, and whether the config agrees."""
    recorded = meta.get("embedding_model")
    if recorded is None:
        return [f"embedding model: the source records none (vectors of dimension {dimension or '-'} copied)"]
    notes = [f"embedding model: {recorded} (recorded in the target)"]
    name = recorded.rpartition("|")[0]
    if model_in_config is not None and name != model_in_config:
        notes.append(f"note: the config's embedding model is {model_in_config}, not {name}: opening the target with "
                     "this config re-embeds every passage")
    return notes


def configured_model(settings: Settings) -> str:
    """The embedding model's name as Embedder records it, without loading it."""
    return model_name(settings.embedding)


def migrate(settings: Settings, source_kind: str, target_kind: str, *, data_dir: Path | None = None,
            dsn: str | None = None, replace: bool = False, progress: bool = False,
            index_memory: str | None = None) -> Report:
    """Copy the library of one store kind ("embedded", "postgres") into the other, as configured."""
    if source_kind == target_kind:
        raise TransferError(f"--from and --to are both {source_kind}: copy an embedded library with backup/restore, "
                            "a PostgreSQL one with pg_dump/pg_restore")
    folder = data_dir or settings.library.data_dir
    server = settings.postgres.dsn if dsn is None else dsn
    lock_timeout = settings.library.lock_timeout
    from index.stores.embedded.transfer import DATABASE_ERRORS as EMBEDDED_ERRORS
    from index.stores.embedded.transfer import EmbeddedSource, EmbeddedTarget
    from index.stores.postgres.transfer import DATABASE_ERRORS as POSTGRES_ERRORS
    from index.stores.postgres.transfer import PostgresSource, PostgresTarget

    database_errors = EMBEDDED_ERRORS + POSTGRES_ERRORS

    try:
        source: Source = EmbeddedSource(folder) if source_kind == "embedded" else PostgresSource(server)
    except database_errors as exc:
        raise TransferError(f"cannot read the source library: {first_line(exc)}") from None
    try:
        target: Target = EmbeddedTarget(folder, lock_timeout) if target_kind == "embedded" else \
            PostgresTarget(server, settings.postgres, lock_timeout, index_memory)
        try:
            return transfer(source, target, replace=replace, progress=progress,
                            model_in_config=configured_model(settings))
        except database_errors as exc:  # reading the source failed
            raise TransferError(f"the copy failed: {first_line(exc)}") from None
    finally:
        source.close()
