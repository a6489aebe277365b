"""The command line's part: ``python -m index insights [--days N]``, and adds made from the command line
(``add``, ``feed``) closing open questions and queueing alerts like the bot's (a running bot sends them)."""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from index.activity.insights import report_lines
from index.activity.reader_activity import ReaderActivity

if TYPE_CHECKING:
    from index.library import Library


def period(text: str) -> float:
    """``--days``: a number of days above 0 (at most a year)."""
    try:
        days = float(text)
    except ValueError:
        days = float("nan")
    if not 0 < days <= 366:
        raise argparse.ArgumentTypeError(f"must be a number of days above 0 and at most 366, not {text!r}")
    return days


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=period, default=None, help="the period (default: insights.period_days)")


@contextmanager
def recording_adds(library: "Library", active: bool = True) -> Iterator[None]:
    """While the block runs (when ``active``), each add closes the open questions it answers and queues the
    alerts it raises; a running bot sends them."""
    if not active:
        yield
        return
    activity = ReaderActivity(library.backend.activity(library.settings), library, library.settings)
    try:
        yield
    finally:
        activity.close()


def run_insights(library: "Library", args: argparse.Namespace) -> int:
    settings = library.settings
    if not settings.insights.enabled:
        print("Insights are switched off (insights.enabled = false): no questions are stored.")
        return 0
    activity = ReaderActivity(library.backend.activity(settings), library, settings)
    try:
        print("\n".join(report_lines(activity.report(args.days))))
    finally:
        activity.close()
    return 0
