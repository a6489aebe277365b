"""sqlite3-style SQL on psycopg: ``?`` placeholders translated, rows read by name and position."""

from __future__ import annotations

import pytest

from index.stores.postgres.rows import Row, placeholders


def test_question_marks_outside_quotes_and_comments_become_placeholders() -> None:
    assert placeholders("SELECT * FROM feeds WHERE url = ? AND id > ?") == \
        "SELECT * FROM feeds WHERE url = %s AND id > %s"
    assert placeholders("SELECT '?', \"a?b\" FROM t WHERE x = ? -- why?\nAND y = ?") == \
        "SELECT '?', \"a?b\" FROM t WHERE x = %s -- why?\nAND y = %s"
    assert placeholders("SELECT 'it''s ?' /* ? */, ?") == "SELECT 'it''s ?' /* ? */, %s"


def test_percent_signs_are_escaped_everywhere_for_psycopg() -> None:
    assert placeholders("SELECT * FROM meta WHERE key LIKE 'schema%' AND value % 2 = ?") == \
        "SELECT * FROM meta WHERE key LIKE 'schema%%' AND value %% 2 = %s"


def test_rows_read_like_sqlite3_rows() -> None:
    row = Row((7, "https://example.org"), {"id": 0, "url": 1})
    assert row["id"] == 7 and row[1] == "https://example.org" and row[-1] == "https://example.org"
    assert list(row) == [7, "https://example.org"] and len(row) == 2
    assert row.keys() == ["id", "url"]
    id_, url = row
    assert (id_, url) == (7, "https://example.org")
    with pytest.raises(IndexError):
        row["missing"]
    assert row == Row((7, "https://example.org"), {"id": 0, "url": 1})
