"""python -m index train-sentence-scorer SQUAD_DIR OUT: fine-tune the MiniLM cross-encoder to find the
sentence that answers a question.

SQuAD gives each question its paragraph and answer text; the positive is the one sentence of the
paragraph that holds the answer (questions whose answer is in none or several of its sentences are
left out). Each training group is the question with that sentence and its negatives:
- the paragraph's other sentences (hard: same topic, same words, no answer);
- the most question-like sentence of a retrieved paragraph of another article (on-topic words
  elsewhere);
- the most question-like sentence of another paragraph of the same article that lacks the answer
  (the best retrieved one, else one at random).
Paragraphs are retrieved by the project's own hybrid search when a file of ``python -m index
mine-negatives`` is given (``--negatives``), else by BM25.
Every sentence is read with its article's title, as the reply's sentences are. The loss and the
optimiser are the passage reranker's (``train_reranker.train``). Afterwards the scorer is checked on
SQuAD 2.0 dev's answerable questions: how often the paragraph's best-scored sentence holds the answer.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from index.eval.answers import haystack, holds_answer
from index.ingest.chunking import split_sentences
from index.search.reranker import passage_input
from index.search.sentence_scorer import FORMAT as SCORER_FORMAT
from index.search.train_reranker import (
    Passage,
    Question,
    TrainingOptions,
    add_run_arguments,
    best_hits,
    build_groups,
    command_main,
    load_split,
    sample_questions,
    save,
    score_pairs,
    train,
)

log = logging.getLogger(__name__)
_WORDS = re.compile(r"\w+", re.UNICODE)
SCORER_DATA = "SQuAD v1.0 train (CC BY-SA 4.0), Rajpurkar et al. 2016; checked on SQuAD 2.0 dev"


@dataclass(frozen=True)
class SentenceOptions:
    """What differs from the passage reranker's training (the rest is ``TrainingOptions``)."""

    questions: int = 16000
    paragraph_negatives: int = 3
    other_article_negatives: int = 1
    same_article_negatives: int = 1
    groups_per_batch: int = 8
    learning_rate: float = 5e-5
    max_length: int = 128
    max_minutes: float = 0.0
    frozen_layers: int = 2
    check_questions: int = 1500
    seed: int = 13
    precision: str = "auto"
    epochs: int = 1
    device: str = "auto"
    loader_workers: int = -1

    @property
    def group_size(self) -> int:
        return 1 + self.paragraph_negatives + self.other_article_negatives + self.same_article_negatives

    def training_options(self) -> TrainingOptions:
        return replace(TrainingOptions(), questions=self.questions, groups_per_batch=self.groups_per_batch,
                       learning_rate=self.learning_rate, max_length=self.max_length, max_minutes=self.max_minutes,
                       frozen_layers=self.frozen_layers, seed=self.seed, precision=self.precision,
                       epochs=self.epochs, device=self.device, loader_workers=self.loader_workers)


@lru_cache(maxsize=1 << 18)
def _searched(sentence: str) -> str:
    """A sentence's ``haystack``, kept: a paragraph's sentences are checked for each of its ~5 questions."""
    return haystack(sentence)


def holds(sentence: str, answer: str) -> bool:
    """Whether the sentence holds the answer (``contains_answer``, normalising each sentence once)."""
    return holds_answer(_searched(sentence), [answer])


def sentences_of(text: str) -> list[str]:
    return [text[span.start:span.end] for span in split_sentences(text)]


def answer_sentence(sentences: Sequence[str], answer: str) -> int | None:
    """The index of the one sentence holding the answer; None when none or several do."""
    holding = [i for i, sentence in enumerate(sentences) if holds(sentence, answer)]
    return holding[0] if len(holding) == 1 else None


def most_question_like(question: str, sentences: Sequence[str], answer: str) -> str | None:
    """The sentence sharing most words with the question, among those without the answer."""
    words = set(_WORDS.findall(question.casefold()))
    best, best_shared = None, -1
    for sentence in sentences:
        if holds(sentence, answer):
            continue
        shared = len(words & set(_WORDS.findall(sentence.casefold())))
        if shared > best_shared:
            best, best_shared = sentence, shared
    return best


def sentence_groups(passages: dict[int, Passage], questions: Sequence[Question], options: SentenceOptions,
                    rng: random.Random, mined: dict[int, list[int]] | None = None) -> list[tuple[str, list[str]]]:
    """(question, [positive, negatives...]) as the texts the scorer reads, every group the same size."""
    hits = best_hits(passages, mined)
    by_article: dict[str, list[int]] = {}
    for passage in passages.values():
        by_article.setdefault(passage.title, []).append(passage.id)
    split: dict[int, list[str]] = {}

    def sentences(pid: int) -> list[str]:
        if pid not in split:
            split[pid] = sentences_of(passages[pid].text)
        return split[pid]

    groups: list[tuple[str, list[str]]] = []
    for number, q in sample_questions(questions, 0, rng):
        if options.questions > 0 and len(groups) >= options.questions:
            break
        own = sentences(q.passage_id)
        positive = answer_sentence(own, q.answer)
        if positive is None:
            continue
        title = passages[q.passage_id].title
        others = [s for i, s in enumerate(own) if i != positive and not holds(s, q.answer)]
        rng.shuffle(others)
        negatives = [(title, sentence) for sentence in others[:options.paragraph_negatives]]
        found = [pid for pid in hits(number, q.question, 12) if pid != q.passage_id]
        far = [pid for pid in found if passages[pid].title != title]
        for pid in far[:options.other_article_negatives]:
            sentence = most_question_like(q.question, sentences(pid), q.answer)
            if sentence:
                negatives.append((passages[pid].title, sentence))
        near = [pid for pid in by_article[title] if pid != q.passage_id]
        rng.shuffle(near)
        near = list(dict.fromkeys([pid for pid in found if passages[pid].title == title] + near))
        for pid in near[:options.same_article_negatives]:
            sentence = most_question_like(q.question, sentences(pid), q.answer)
            if sentence:
                negatives.append((title, sentence))
        # a short paragraph leaves places: fill them with the paragraph's own sentences again, or skip
        while len(negatives) < options.group_size - 1 and others:
            negatives.append((title, others[len(negatives) % len(others)]))
        if len(negatives) != options.group_size - 1:
            continue
        texts = [passage_input(title, own[positive])] + [passage_input(t, sentence) for t, sentence in negatives]
        groups.append((q.question, texts))
    return groups


def check(model, tokenizer, data_dir: Path, options: SentenceOptions, bf16: bool, rng: random.Random) -> dict:
    """On SQuAD 2.0 dev's answerable questions: the share whose paragraph's best-scored sentence holds
    the answer, against the sentence sharing most words with the question."""
    passages, questions = load_split(data_dir, "dev-v2.0")
    sample = []
    answerable = [q for q in questions if q.answerable and q.answer]
    for q in rng.sample(answerable, len(answerable)):
        own = sentences_of(passages[q.passage_id].text)
        if len(own) > 1 and answer_sentence(own, q.answer) is not None:
            sample.append((q, own))
        if len(sample) >= options.check_questions:
            break
    pairs = [(q.question, passage_input(passages[q.passage_id].title, s)) for q, own in sample for s in own]
    scores = score_pairs(model, tokenizer, pairs, options.max_length, bf16)
    right = overlap_right = 0
    offset = 0
    for q, own in sample:
        best = int(np.argmax(scores[offset:offset + len(own)]))
        offset += len(own)
        right += holds(own[best], q.answer)
        words = set(_WORDS.findall(q.question.casefold()))
        overlap = max(range(len(own)), key=lambda i: len(words & set(_WORDS.findall(own[i].casefold()))))
        overlap_right += holds(own[overlap], q.answer)
    n = max(1, len(sample))
    return {"questions": len(sample), "best_sentence_holds_answer": right / n,
            "word_overlap_baseline": overlap_right / n}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SentenceOptions()
    parser.add_argument("data_dir", type=Path, help="folder with SQuAD's *.passages/questions.jsonl.gz")
    parser.add_argument("out", type=Path,
                        help="the scorer file to write (e.g. index/models/sentence-scorer.safetensors)")
    parser.add_argument("--questions", type=int, default=defaults.questions,
                        help="training questions sampled (0: all)")
    parser.add_argument("--paragraph-negatives", type=int, default=defaults.paragraph_negatives)
    parser.add_argument("--other-article-negatives", type=int, default=defaults.other_article_negatives)
    parser.add_argument("--same-article-negatives", type=int, default=defaults.same_article_negatives)
    parser.add_argument("--groups-per-batch", type=int, default=defaults.groups_per_batch)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--max-length", type=int, default=defaults.max_length)
    parser.add_argument("--max-minutes", type=float, default=defaults.max_minutes,
                        help="stop training early (0: never)")
    parser.add_argument("--frozen-layers", type=int, default=defaults.frozen_layers,
                        help="transformer layers left as the bundled model has them (faster; a smaller file)")
    parser.add_argument("--check-questions", type=int, default=defaults.check_questions,
                        help="SQuAD 2.0 dev questions the finished scorer is checked on")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=defaults.precision)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    add_run_arguments(parser, defaults.epochs)


def run(args: argparse.Namespace) -> int:
    """The train-sentence-scorer command."""
    options = SentenceOptions(**{f.name: getattr(args, f.name) for f in fields(SentenceOptions)
                                 if hasattr(args, f.name)})
    rng = random.Random(options.seed)
    started = time.monotonic()
    built = build_groups(args, lambda passages, questions, mined:
                         sentence_groups(passages, questions, options, rng, mined),
                         f"{options.group_size} sentences")
    if built is None:
        return 2
    _, groups = built
    model, tokenizer, summary = train(groups, options.training_options(), rng, args.base_model)
    checked = check(model, tokenizer, args.data_dir, options, summary["bf16"], rng)
    print("check on SQuAD 2.0 dev: " + json.dumps({k: round(v, 3) for k, v in checked.items()}), file=sys.stderr)
    training = {**asdict(options), **summary, "check": checked,
                "total_minutes": round((time.monotonic() - started) / 60, 1)}
    size = save(model, args.out, 0.5, options.training_options(), training, SCORER_FORMAT, SCORER_DATA)
    print(f"wrote {args.out} ({size / 1e6:.1f} MB) in {training['total_minutes']} min", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m index.search.train_sentence_scorer`` (``command_main``)."""
    return command_main("index.search.train_sentence_scorer", __doc__ or "", add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
