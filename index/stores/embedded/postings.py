"""Postings lists: for each term, the passages holding it and how often. A segment is
immutable, built from passages' terms or by merging segments, and can be written to one file and
memory-mapped back, so a large index costs resident memory only for the lists questions read."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.stores.embedded.atomic import replace_file

MAGIC = b"NBPOST01"
ALIGN = 64
MAX_TF = np.iinfo(np.uint16).max
# Postings placed at a time when segments are merged (bounds the temporary arrays).
MERGE_POSTINGS = 4_000_000


@dataclass(frozen=True)
class Segment:
    """Term-major postings: ``terms`` (ascending term ids), and for ``terms[i]`` the passages
    ``passages[starts[i]:starts[i + 1]]`` (each once) with their term frequencies ``tfs``."""

    terms: np.ndarray  # int32
    starts: np.ndarray  # int64, len(terms) + 1
    passages: np.ndarray  # uint32
    tfs: np.ndarray  # uint16

    @classmethod
    def empty(cls) -> "Segment":
        return cls(np.zeros(0, np.int32), np.zeros(1, np.int64), np.zeros(0, np.uint32), np.zeros(0, np.uint16))

    @classmethod
    def from_tokens(cls, passage_ids: np.ndarray, counts: np.ndarray, term_ids: np.ndarray) -> "Segment":
        """Postings of passages whose tokens are ``term_ids`` one passage after another (``counts`` each)."""
        owners = np.repeat(np.asarray(passage_ids, dtype=np.int64), counts)
        keys, tfs = np.unique((term_ids.astype(np.int64) << 32) | owners, return_counts=True)
        return cls._from_sorted(keys >> 32, keys & 0xFFFFFFFF, tfs)

    @classmethod
    def merged(cls, segments: list["Segment"], keep: np.ndarray | None = None) -> "Segment":
        """One segment holding the postings of all (of passages where ``keep[passage]``, given ``keep``):
        each term's lists one after another, placed by counting, without sorting."""
        kept = [segment._kept(keep) for segment in segments]
        size = max((int(terms[-1]) + 1 for terms, _, _, _ in kept if len(terms)), default=0)
        totals = np.zeros(size, dtype=np.int64)
        for terms, counts, _, _ in kept:
            totals[terms] += counts
        starts = np.zeros(size + 1, dtype=np.int64)
        np.cumsum(totals, out=starts[1:])
        cursor = starts[:-1].copy()  # where each term's next postings go
        passages = np.empty(int(starts[-1]), dtype=np.uint32)
        tfs = np.empty(int(starts[-1]), dtype=np.uint16)
        for terms, counts, part_passages, part_tfs in kept:
            first = np.zeros(len(counts), dtype=np.int64)
            np.cumsum(counts[:-1], out=first[1:])
            low = 0
            while low < len(terms):  # a bounded number of postings at a time: small temporaries
                high = max(low + 1, int(np.searchsorted(first, first[low] + MERGE_POSTINGS)))
                begin, end = int(first[low]), int(first[high - 1] + counts[high - 1])
                shift = np.repeat(cursor[terms[low:high]] - first[low:high], counts[low:high])
                target = shift + np.arange(begin, end, dtype=np.int64)
                passages[target] = part_passages[begin:end]
                tfs[target] = part_tfs[begin:end]
                low = high
            cursor[terms] += counts
        present = np.flatnonzero(totals)
        return cls(present.astype(np.int32), np.append(starts[present], starts[-1]), passages, tfs)

    def _kept(self, keep: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(terms, postings per term, passages, tfs) of the passages where ``keep[passage]``."""
        terms, counts = np.asarray(self.terms), np.diff(self.starts)
        passages, tfs = np.asarray(self.passages), np.asarray(self.tfs)
        if keep is None or not len(passages):
            return terms, counts, passages, tfs
        mask = np.zeros(len(passages), dtype=bool)
        inside = passages < len(keep)
        mask[inside] = keep[passages[inside]]
        if mask.all():
            return terms, counts, passages, tfs
        counts = np.add.reduceat(mask.astype(np.int64), self.starts[:-1])
        return terms, counts, passages[mask], tfs[mask]

    @classmethod
    def _from_sorted(cls, terms: np.ndarray, passages: np.ndarray, tfs: np.ndarray) -> "Segment":
        """A segment from postings already ordered by term."""
        first = np.flatnonzero(np.diff(terms, prepend=-1))
        return cls(terms[first].astype(np.int32), np.append(first, len(terms)).astype(np.int64),
                   passages.astype(np.uint32), np.minimum(tfs, MAX_TF).astype(np.uint16))

    def __len__(self) -> int:
        """Postings held."""
        return len(self.passages)

    def slot(self, term: int) -> int:
        """Where ``term`` is in ``terms``, or -1."""
        i = int(np.searchsorted(self.terms, term))
        return i if i < len(self.terms) and self.terms[i] == term else -1

    def postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        """(passages, term frequencies) of one term; empty when the segment lacks it."""
        i = self.slot(term)
        if i < 0:
            return self.passages[:0], self.tfs[:0]
        first, last = int(self.starts[i]), int(self.starts[i + 1])
        return self.passages[first:last], self.tfs[first:last]

    def document_frequency(self, term: int) -> int:
        i = self.slot(term)
        return 0 if i < 0 else int(self.starts[i + 1] - self.starts[i])


def write_file(path: Path, header: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write a JSON header and arrays to a temporary file, then put it in place of ``path`` atomically."""
    layout: dict[str, list] = {}
    offset = 0
    for name, array in arrays.items():
        layout[name] = [offset, array.dtype.str, list(array.shape)]
        offset += -(-array.nbytes // ALIGN) * ALIGN
    head = json.dumps({**header, "arrays": layout}).encode()
    data_start = -(-(len(MAGIC) + 8 + len(head)) // ALIGN) * ALIGN
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as out:
        out.write(MAGIC + len(head).to_bytes(8, "little") + head)
        for name, array in arrays.items():
            out.seek(data_start + layout[name][0])
            out.write(np.ascontiguousarray(array).data)
        out.truncate(data_start + offset)
    replace_file(tmp, path)


def read_file(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and the arrays (memory-mapped, read-only) of a file ``write_file`` wrote."""
    with open(path, "rb") as handle:
        if handle.read(len(MAGIC)) != MAGIC:
            raise ValueError(f"{path} is not a postings file")
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
    data_start = -(-(len(MAGIC) + 8 + size) // ALIGN) * ALIGN
    arrays: dict[str, np.ndarray] = {}
    file_size = path.stat().st_size
    for name, (offset, dtype, shape) in header.pop("arrays").items():
        count = int(np.prod(shape))
        if data_start + offset + count * np.dtype(dtype).itemsize > file_size:
            raise ValueError(f"{path} is truncated")
        arrays[name] = (np.memmap(path, dtype=dtype, mode="r", offset=data_start + offset, shape=tuple(shape))
                        if count else np.zeros(shape, dtype=dtype))
    return header, arrays
