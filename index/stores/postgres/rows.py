"""sqlite3-style SQL on psycopg: rows read by name or position, and ``?`` placeholders."""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

from psycopg import Cursor


class Row(Sequence[Any]):
    """A result row read like sqlite3.Row: ``row["column"]``, ``row[0]``, ``keys()``, iteration."""

    __slots__ = ("_values", "_names")

    def __init__(self, values: Sequence[Any], names: dict[str, int]) -> None:
        self._values = tuple(values)
        self._names = names

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return self._values[self._names[key]]
            except KeyError:
                raise IndexError(f"no column named {key!r}") from None
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Row):
            return self._values == other._values and self.keys() == other.keys()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self.keys(), self._values))!r})"

    def keys(self) -> list[str]:
        return list(self._names)


def row_factory(cursor: Cursor[Any]) -> Callable[[Sequence[Any]], Row]:
    """psycopg row factory making ``Row`` objects (the column map is shared by a result's rows)."""
    names = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: Row(values, names)


def placeholders(sql: str) -> str:
    """SQLite-style SQL for psycopg: ``?`` outside quotes and comments becomes ``%s``, and every ``%``
    is doubled (psycopg reads ``%`` everywhere, string literals included, when given parameters).
    Dollar-quoted strings and backslash escapes in E'' strings are not recognised."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        char = sql[i]
        if char in "'\"":  # a literal or quoted identifier; a doubled quote inside stays inside
            end = i + 1
            while end < n:
                if sql[end] == char:
                    if end + 1 < n and sql[end + 1] == char:
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i:end + 1].replace("%", "%%"))
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif char == "?":
            out.append("%s")
            i += 1
        elif char == "%":
            out.append("%%")
            i += 1
        else:
            out.append(char)
            i += 1
    return "".join(out)
