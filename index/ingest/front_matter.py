"""YAML front matter of Markdown files, read safely: no anchors or aliases, and limits on size and depth."""

from __future__ import annotations

from typing import Any

import yaml
from frontmatter.default_handlers import YAMLHandler

from index.errors import IngestError

# Front matter holds a few short fields; anything larger is not metadata.
MAX_FRONT_MATTER_CHARS = 16_384
MAX_FRONT_MATTER_DEPTH = 8


class _RefusedYaml(Exception):
    """A front matter the reader will not parse (the message says why)."""


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors and aliases (an alias can expand a small document into gigabytes:
    "billion laughs") and with a limit on how deeply collections nest."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _RefusedYaml("it uses YAML anchors or aliases (& and *), which are not accepted")
        self.depth += 1
        try:
            if self.depth > MAX_FRONT_MATTER_DEPTH:
                raise _RefusedYaml(f"it nests deeper than {MAX_FRONT_MATTER_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_HANDLER = YAMLHandler()


def split_front_matter(markdown: str) -> tuple[dict[str, Any], str]:
    """The front matter's fields (keys lower-cased) and the Markdown after it; ``({}, markdown)`` when the file
    has none. A front matter that is too large, too deep, uses aliases or is not valid YAML raises IngestError:
    its fields are the article's metadata, and reading on without them would store a wrong title or date."""
    text = markdown.strip()
    if not _HANDLER.detect(text):
        return {}, markdown
    try:
        front, content = _HANDLER.split(text)
    except ValueError:  # an opening line of dashes with no closing one: no front matter
        return {}, markdown
    if len(front) > MAX_FRONT_MATTER_CHARS:
        raise IngestError(f"The front matter of this Markdown file is too long ({len(front):,} characters; "
                          f"the limit is {MAX_FRONT_MATTER_CHARS:,}).")
    try:
        fields = yaml.load(front, Loader=_LimitedLoader)  # noqa: S506 - a SafeLoader subclass
    except _RefusedYaml as exc:
        raise IngestError(f"The front matter of this Markdown file is refused: {exc}.") from None
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        raise IngestError(f"The front matter of this Markdown file is not valid YAML: {exc}") from None
    if not isinstance(fields, dict):
        return {}, content.strip()
    return {str(key).lower(): value for key, value in fields.items()}, content.strip()


def field_text(value: object) -> str | None:
    """A front-matter value as text: a scalar as written, a list of scalars joined by commas, else None."""
    if isinstance(value, (list, tuple)):
        items = [field_text(item) for item in value]
        return ", ".join(item for item in items if item) or None
    if value is None or isinstance(value, dict):
        return None
    text = str(value).strip()
    return text or None
