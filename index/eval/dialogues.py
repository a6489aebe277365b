"""python -m index eval-dialogues DATASET_DIR DIALOGUES.jsonl: how well follow-up questions are answered.

Each dialogue is two questions asked in one chat at the dialogue's date; the second depends on the
first. Turn 2's answer-recall is measured (a) asked alone, (b) with the bot's follow-up handling
(index/search/followup.py) and (c) joined with turn 1 into one question, for reference. The no-harm
check asks the dataset's own questions one after another in one chat, with the follow-up handling on,
against each asked alone: a self-contained question must not be read into the one before it."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from index.articles import parse_date
from index.config import Settings
from index.embedding.cache import CachedEmbedder
from index.embedding.embedder import Embedder
from index.errors import ConfigError
from index.eval.answers import contains_answer
from index.eval.evaluate import apply_overrides, build_library, load_corpus, load_questions
from index.library import Library
from index.search.followup import FollowUps
from index.search.hybrid import Answer
from index.search.reranker import load_reranker
from index.stores.embedded.conversations import MemoryConversations

CUTOFFS = (1, 3, 10)
DEPTH = max(CUTOFFS)


@dataclass(frozen=True)
class Dialogue:
    id: str
    day: date | None
    questions: tuple[str, str]
    answers: tuple[tuple[str, ...], tuple[str, ...]]


def load_dialogues(path: Path) -> list[Dialogue]:
    """The dialogues of a JSON-lines file; a malformed line is a ConfigError naming it."""
    dialogues = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                turns, answers = row["turns"], row["answers"]
                if len(turns) != 2 or len(answers) != 2 or not all(answers):
                    raise ValueError("two turns and a list of answers for each are needed")
                dialogues.append(Dialogue(str(row["id"]), parse_date(row.get("date")),
                                          (str(turns[0]["q"]), str(turns[1]["q"])),
                                          (tuple(map(str, answers[0])), tuple(map(str, answers[1])))))
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                raise ConfigError(f"{path}, line {number}: not a dialogue ({exc})") from None
    return dialogues


def answer_rank(answer: Answer, answers: Sequence[str]) -> int | None:
    """1-based rank of the first passage holding an answer, as eval counts it."""
    return next((i for i, hit in enumerate(answer.hits, 1) if contains_answer(hit.text, answers)), None)


def recall(ranks: Sequence[int | None], k: int) -> float:
    return sum(r is not None and r <= k for r in ranks) / len(ranks) if ranks else float("nan")


class DialogueRun:
    """Questions asked in chats of one library, with the bot's follow-up handling."""

    def __init__(self, library: Library, settings: Settings) -> None:
        self.library = library
        self.k = settings.search.k
        self.conversations = MemoryConversations(timedelta(minutes=settings.conversation.ttl_minutes),
                                                 settings.conversation.turns)
        self.follow_ups = FollowUps(library, self.conversations)
        self.clock = datetime.now(timezone.utc)

    def alone(self, question: str, day: date | None) -> Answer:
        return self.library.search(question, k=self.k, now=day, limit=DEPTH)

    def in_chat(self, chat_id: int, question: str, day: date | None) -> tuple[Answer, bool]:
        """Ask in the chat a second after its last question: (answer, whether read as a follow-up)."""
        self.clock += timedelta(seconds=1)
        reading = self.follow_ups.read(chat_id, question, self.clock)
        answer = self.follow_ups.search(question, reading, self.k, now=day, limit=DEPTH)
        self.follow_ups.remember(chat_id, reading, answer, self.clock)
        return answer, reading.follow_up


def print_dialogues(run: DialogueRun, dialogues: Sequence[Dialogue], out=sys.stdout) -> None:
    first, alone, handled, joined = [], [], [], []
    followed = 0
    for number, dialogue in enumerate(tqdm(dialogues, desc="dialogues", disable=not sys.stderr.isatty())):
        (q1, q2), (a1, a2), day = dialogue.questions, dialogue.answers, dialogue.day
        chat = 1_000_000 + number
        answer1, _ = run.in_chat(chat, q1, day)
        first.append(answer_rank(answer1, a1))
        answer2, was_followed = run.in_chat(chat, q2, day)
        followed += was_followed
        handled.append(answer_rank(answer2, a2))
        alone.append(answer_rank(run.alone(q2, day), a2))
        joined.append(answer_rank(run.alone(f"{q1} {q2}", day), a2))
    print(f"{len(dialogues)} dialogues; turn 2 read as a follow-up in {followed}", file=out)
    print(f"{'answer-recall':<36}" + "".join(f"{'R@' + str(k):>8}" for k in CUTOFFS), file=out)
    for name, ranks in (("turn 1", first), ("turn 2 (a) asked alone", alone),
                        ("turn 2 (b) with follow-up handling", handled), ("turn 2 (c) joined with turn 1", joined)):
        print(f"{name:<36}" + "".join(f"{recall(ranks, k):>8.3f}" for k in CUTOFFS), file=out)


def print_no_harm(run: DialogueRun, questions: Sequence[dict], use_dates: bool, out=sys.stdout) -> None:
    """The dataset's questions asked one after another in one chat against each asked alone."""
    alone, chained, changed = [], [], 0
    followed = 0
    for q in tqdm(questions, desc="no-harm", disable=not sys.stderr.isatty()):
        day = parse_date(q.get("date")) if use_dates else None
        single = run.alone(q["question"], day)
        in_chat, was_followed = run.in_chat(0, q["question"], day)
        followed += was_followed
        alone.append(answer_rank(single, q["answer_texts"]))
        chained.append(answer_rank(in_chat, q["answer_texts"]))
        changed += [h.passage_id for h in single.hits[:3]] != [h.passage_id for h in in_chat.hits[:3]]
    print(f"no-harm: {len(questions)} dataset questions asked one after another in one chat; {followed} read as "
          f"follow-ups, {changed} with a different first page", file=out)
    for name, ranks in (("each asked alone", alone), ("one after another", chained)):
        print(f"{name:<36}" + "".join(f"{recall(ranks, k):>8.3f}" for k in CUTOFFS), file=out)


def run_eval_dialogues(settings: Settings, args: argparse.Namespace) -> int:
    dataset: Path = args.dataset
    corpus_path, questions_path = dataset / "corpus.jsonl", dataset / "questions.jsonl"
    if not corpus_path.exists():
        print(f"error: {dataset} must hold corpus.jsonl", file=sys.stderr)
        return 2
    if not args.dialogues.is_file():
        print(f"error: {args.dialogues}: no such file", file=sys.stderr)
        return 2
    settings = apply_overrides(settings, args.set)
    dialogues = load_dialogues(args.dialogues)
    questions = load_questions(questions_path) if questions_path.exists() and not args.no_harm_off else []
    cache_dir = args.cache_dir or Path.home() / ".cache" / "news-answers-bot"
    drafts = load_corpus(corpus_path)
    embedder = CachedEmbedder(Embedder(settings.embedding), cache_dir / "embeddings.sqlite3")
    reranker = load_reranker(settings.reranker)
    with tempfile.TemporaryDirectory(prefix="news-dialogues-") as tmp:
        library, statuses, seconds = build_library(drafts, settings, embedder, Path(tmp) / "all",
                                                   reranker)  # type: ignore[arg-type]
        with library:
            print(f"dataset {dataset}: {len(drafts)} articles ({statuses}), built in {seconds:.1f} s; "
                  f"dialogues {args.dialogues}")
            print_dialogues(DialogueRun(library, settings), dialogues)
            if questions:
                print_no_harm(DialogueRun(library, settings), questions, not args.no_dates)
    embedder.close()
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path, help="folder with corpus.jsonl (and questions.jsonl for the no-harm "
                                                   "check)")
    parser.add_argument("dialogues", type=Path, help="dialogues, one JSON object a line (benchmarks/dialogues/)")
    parser.add_argument("--cache-dir", type=Path, help="where embeddings are cached between runs")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a setting for this run (repeatable)")
    parser.add_argument("--no-dates", action="store_true", help="ask the no-harm questions as of today")
    parser.add_argument("--no-harm-off", action="store_true", help="skip the no-harm check")
