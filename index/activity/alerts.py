"""Whether a new article matches a reader's topic: the topic is searched like a question (the same hybrid
ranking), and the article matches when one of its passages is among the topic's best ``alerts.candidates``
passages with a cosine of at least ``alerts.min_score`` (calibrated by benchmarks/alert_threshold.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from index.config import AlertSettings
from index.search.hybrid import Answer, Hit

if TYPE_CHECKING:
    from index.library import Library


def ranked_for_topic(library: "Library", topic: str, settings: AlertSettings,
                     now: date | datetime | None = None) -> Answer:
    """The topic's best passages in the whole library as of ``now`` (default: today), none of them marked yet."""
    return library.search(topic, k=1, limit=settings.candidates, now=now, mark=0)


def article_match(library: "Library", ranking: Answer, article_id: int, settings: AlertSettings) -> Hit | None:
    """The article's best passage in a topic's ranking when it clears the threshold (its sentence marked)."""
    for position, hit in enumerate(ranking.hits):
        if hit.article.id == article_id and hit.dense_score >= settings.min_score:
            return library.mark_hits(ranking, position, position + 1).hits[position]
    return None
