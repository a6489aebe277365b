"""Reading an article file from disk safely: regular files only, never more than the size limit."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from index.errors import IngestError

_READ_CHUNK = 1 << 20


def read_article_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of the regular file at ``path`` (symbolic links followed), at most ``max_bytes`` of them.

    Devices (``/dev/zero``), FIFOs, sockets and folders are refused before anything is read, and the file
    is checked again through the opened descriptor, so a file swapped meanwhile cannot slip through. The
    limit holds while reading (a file that grows, or reports a wrong size, is stopped at ``max_bytes + 1``).
    Every failure is an IngestError whose message names the path."""
    try:
        _require_regular(os.stat(path), path)
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise IngestError(f"{path} does not exist.") from None
    except OSError as exc:
        raise IngestError(f"{path} cannot be read ({exc.strerror or exc}).") from None
    try:
        status = os.fstat(descriptor)
        _require_regular(status, path)
        if status.st_size > max_bytes:
            raise _too_large(path, max_bytes, status.st_size)
        return _read_at_most(descriptor, path, max_bytes)
    except OSError as exc:
        raise IngestError(f"{path} cannot be read ({exc.strerror or exc}).") from None
    finally:
        os.close(descriptor)


def _require_regular(status: os.stat_result, path: Path) -> None:
    if stat.S_ISDIR(status.st_mode):
        raise IngestError(f"{path} is a folder; name the files in it.")
    if not stat.S_ISREG(status.st_mode):
        raise IngestError(f"{path} is not a regular file (a device, pipe or socket); only files can be added.")


def _read_at_most(descriptor: int, path: Path, max_bytes: int) -> bytes:
    """Read to the end, refusing the file as soon as more than ``max_bytes`` have come."""
    data = bytearray()
    while True:
        piece = os.read(descriptor, min(_READ_CHUNK, max_bytes + 1 - len(data)))
        if not piece:
            return bytes(data)
        data.extend(piece)
        if len(data) > max_bytes:
            raise _too_large(path, max_bytes)


def _too_large(path: Path, max_bytes: int, size: int | None = None) -> IngestError:
    told = f"{size:,} bytes; " if size is not None else "over the limit; "
    return IngestError(f"{path.name} is too large ({told}the limit is {max_bytes:,}).")
