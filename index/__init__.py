"""The article library: ingest, chunk, embed, store and search news articles.

The names most callers need are importable from here; each is loaded on first use, so that importing a
light module of the package (the address guard, the config) does not load the embedding model's stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from index.config import Settings, load_settings
    from index.library import AddResult, Library
    from index.search.hybrid import Answer, Hit

_EXPORTS = {
    "Library": "index.library",
    "AddResult": "index.library",
    "Settings": "index.config",
    "load_settings": "index.config",
    "Answer": "index.search.hybrid",
    "Hit": "index.search.hybrid",
}
__all__ = ["AddResult", "Answer", "Hit", "Library", "Settings", "load_settings"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'index' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
