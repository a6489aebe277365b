"""The insights report for admins: what readers asked over a period, how it went, and the open questions
(refused, or voted 👎) grouped by meaning, each with how many asked, an example and the closest article."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Sequence

from index.activity.grouping import group_similar, unit_rows
from index.activity.records import AskedQuestion
from index.articles import Article
from index.config import InsightsSettings

if TYPE_CHECKING:
    from index.library import Library
    from index.stores.base import ActivityStore

# What a reader can say was wrong after a 👎: the code in the button's data, and its words.
REASONS = {"q": "not what I asked", "w": "wrong or outdated", "m": "something missing"}
# Open questions grouped for a report, at most (the newest).
GROUPED_AT_MOST = 2000


@dataclass(frozen=True)
class OpenGroup:
    """Open questions that say the same thing."""

    asked: int
    example: str
    closest: Article | None


@dataclass(frozen=True)
class InsightsReport:
    days: float
    questions: int
    askers: int
    answered: int
    refused: int
    voted_up: int  # questions whose answer got a 👍 (from anyone)
    voted_down: int
    median_reply_ms: float | None
    reasons: dict[str, int]
    open_questions: int
    groups: list[OpenGroup]

    def share(self, count: int) -> float:
        return count / self.questions if self.questions else 0.0


def build_report(store: "ActivityStore", library: "Library", settings: InsightsSettings, days: float,
                 now: datetime) -> InsightsReport:
    since = now - timedelta(days=days)
    asked = store.questions_since(since)
    open_questions = [question for question in asked if question.open]
    return InsightsReport(
        days=days, questions=len(asked), askers=len({question.asker for question in asked}),
        answered=sum(question.answered for question in asked),
        refused=sum(not question.answered for question in asked),
        voted_up=sum(question.up_votes > 0 for question in asked),
        voted_down=sum(question.down_votes > 0 for question in asked),
        median_reply_ms=statistics.median([q.reply_ms for q in asked]) if asked else None,
        reasons={REASONS.get(code, code): count for code, count in store.reasons_since(since).items()},
        open_questions=len(open_questions),
        groups=open_groups(library, open_questions, settings))


def open_groups(library: "Library", questions: Sequence[AskedQuestion], settings: InsightsSettings,
                ) -> list[OpenGroup]:
    """The open questions (the newest GROUPED_AT_MOST) grouped by embedding similarity, the largest groups
    first (at most groups_shown); each group's example is its newest wording."""
    if not questions:
        return []
    newest_first = sorted(questions, key=lambda question: question.id, reverse=True)[:GROUPED_AT_MOST]
    vectors = unit_rows(library.embedder.embed([question.question for question in newest_first], kind="query"))
    groups = group_similar(vectors, settings.group_similarity)[: settings.groups_shown]
    shown = []
    for members in groups:
        example = newest_first[members[0]].question
        shown.append(OpenGroup(len(members), example, library.search(example, k=1, limit=1, mark=0).closest))
    return shown


def report_lines(report: InsightsReport, article_line=None) -> list[str]:
    """The report as plain lines (the command line's; the bot writes its own HTML from the same report).
    ``article_line`` writes an article (default: its title and id)."""
    def article(value: Article | None) -> str:
        if value is None:
            return "none"
        return article_line(value) if article_line else f"“{value.title}” (#{value.id})"

    median = f"{report.median_reply_ms / 1000:.1f} s" if report.median_reply_ms is not None else "-"
    lines = [f"Insights for the last {report.days:g} days",
             f"Questions: {report.questions} from {report.askers} reader(s)",
             f"Answered: {report.share(report.answered):.0%}, refused: {report.share(report.refused):.0%}",
             f"Voted 👍: {report.share(report.voted_up):.0%}, voted 👎: {report.share(report.voted_down):.0%}",
             f"Median reply time: {median}"]
    if report.reasons:
        reasons = sorted(report.reasons.items())
        lines.append("👎 reasons: " + ", ".join(f"{reason} {count}" for reason, count in reasons))
    lines.append(f"Open questions: {report.open_questions}")
    for group in report.groups:
        lines.append(f"• {group.asked}× “{group.example}” — closest: {article(group.closest)}")
    return lines
