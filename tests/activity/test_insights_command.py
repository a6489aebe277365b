"""``python -m index insights`` on a library the bot has recorded into, and adds from the command line
closing open questions and queueing alerts for the bot to send."""

from __future__ import annotations

from pathlib import Path

from index.activity.reader_activity import ALERT, ReaderActivity
from index.config import Settings
from index.embedding.embedder import Embedder
from index.library import Library
from tests.support.helpers import run_cli
from tests.support.web_pages import NEWS_STORIES

TREES_QUESTION = "How many street trees will the city council plant?"


def test_the_insights_command_reports_and_an_add_from_the_command_line_closes_and_alerts(
        sample_copy_settings: Settings, embedder: Embedder, tmp_path: Path) -> None:
    data_dir = sample_copy_settings.library.data_dir
    with Library(sample_copy_settings, embedder=embedder) as library:
        activity = ReaderActivity(library.backend.activity(sample_copy_settings), library, sample_copy_settings)
        for user in (5, 6):
            answer = library.search(TREES_QUESTION)
            activity.record_question(user, user, TREES_QUESTION, answer, None, 30.0)
        activity.follow(7, 7, "street trees planted by the city council")
        activity.close()

    report = run_cli("insights", "--days", "2", data_dir=data_dir)
    assert report.returncode == 0, report.stderr
    assert "Insights for the last 2 days" in report.stdout and "Questions: 2 from 2 reader(s)" in report.stdout
    assert "Open questions: 2" in report.stdout and f"2× “{TREES_QUESTION}”" in report.stdout

    story = tmp_path / "trees.txt"
    story.write_text("\n".join(NEWS_STORIES[1]), encoding="utf-8")
    added = run_cli("add", str(story), data_dir=data_dir)
    assert added.returncode == 0 and "1 added" in added.stdout, added.stderr
    assert "Open questions: 0" in run_cli("insights", data_dir=data_dir).stdout

    with Library(sample_copy_settings, embedder=embedder) as library:
        activity = ReaderActivity(library.backend.activity(sample_copy_settings), library, sample_copy_settings)
        [alert] = activity.take_outgoing()  # waiting for the bot to send it
        assert alert.chat_id == 7 and alert.payload["kind"] == ALERT
        activity.close()

    bad = run_cli("insights", "--days", "0", data_dir=data_dir)
    assert bad.returncode == 2 and "must be a number of days above 0" in bad.stderr
