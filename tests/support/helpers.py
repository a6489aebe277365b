"""Small helpers shared by tests."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from index.search.train_reranker import Passage, Question

PROJECT = Path(__file__).resolve().parents[2]
TOPICS = ["harbour museum", "river bridge", "city library", "mountain railway", "solar farm", "night market"]


def run_cli(*args: str, data_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m index ARGS`` in a subprocess on the given data directory."""
    environment = {**os.environ, "NEWSBOT_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "index", *args], cwd=PROJECT, env=environment,
                          capture_output=True, text=True, timeout=600)


def _write_gz(path: Path, rows: list[dict]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)


def write_squad_like(folder: Path) -> None:
    """A tiny data set in the layout of ../shared/train/squad (which tests must not need)."""
    passages, questions = [], []
    for number, topic in enumerate(TOPICS * 2):
        text = f"The {topic} opened in {1990 + number} after a vote by the council of town {number}."
        passages.append({"id": number, "title": topic.title(), "text": text})
        questions.append({"question": f"When did the {topic} of town {number} open?", "passage_id": number,
                          "answerable": True, "answer": str(1990 + number)})
    unanswerable = [{"question": f"Who painted the {topic}?", "passage_id": n, "answerable": False, "answer": None}
                    for n, topic in enumerate(TOPICS)]
    folder.mkdir(parents=True, exist_ok=True)
    for split, qs in (("train-v1.0", questions), ("dev-v2.0", questions + unanswerable)):
        _write_gz(folder / f"{split}.passages.jsonl.gz", passages)
        _write_gz(folder / f"{split}.questions.jsonl.gz", qs)


def paragraphs() -> tuple[dict[int, Passage], list[Question]]:
    """Three-sentence paragraphs, two per topic, each with a question answered by its second sentence."""
    passages, questions = {}, []
    for number, topic in enumerate(TOPICS * 2):
        text = (f"The {topic} of town {number} drew crowds this spring. "
                f"It opened in {1990 + number} after a vote by the council. "
                f"Visitors praised the {topic} and its staff.")
        passages[number] = Passage(number, topic.title(), text)
        questions.append(Question(f"When did the {topic} of town {number} open?", number, True, str(1990 + number)))
    return passages, questions


def write_squad_paragraphs(folder: Path) -> None:
    """``paragraphs()`` in the layout of ../shared/train/squad, as both of its splits."""
    passages, questions = paragraphs()
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train-v1.0", "dev-v2.0"):
        for name, rows in (("passages", [vars(p) for p in passages.values()]),
                           ("questions", [{"question": q.question, "passage_id": q.passage_id,
                                           "answerable": q.answerable, "answer": q.answer} for q in questions])):
            _write_gz(folder / f"{split}.{name}.jsonl.gz", rows)
