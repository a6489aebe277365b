"""python -m index train-reranker SQUAD_DIR OUT: fine-tune the MiniLM cross-encoder on SQuAD.

Each training group is one question with its passage (the positive) and negatives: the best BM25
hits for the question among all other passages that do not contain the answer (hard ones, often
from the same article), and one random passage of another article (an easy one, so that off-topic
text also scores low). The loss adds a listwise term (softmax over the group: rank the positive
first) and a pointwise term (binary cross-entropy: a probability that can be thresholded). The word
embeddings stay frozen, so the saved file omits them (see ``reranker.py``). Afterwards the refusal
threshold is calibrated on SQuAD 2.0 dev: answerable versus unanswerable questions, each with its own
passage, the threshold being the highest one at which refusals are still ``--refusal-precision``
right.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import math
import random
import sqlite3
import statistics
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from index.eval.evaluate import contains_answer
from index.search.reranker import (
    DEFAULT_MAX_LENGTH,
    FORMAT,
    build_classifier,
    cpu_has_fast_bf16,
    is_frozen,
    passage_input,
)
from index.stores.embedded.fts_reference import fts_query

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Passage:
    id: int
    title: str
    text: str


@dataclass(frozen=True)
class Question:
    question: str
    passage_id: int
    answerable: bool
    answer: str | None


@dataclass(frozen=True)
class TrainingOptions:
    questions: int = 8000
    hard_negatives: int = 2
    easy_negatives: int = 1
    groups_per_batch: int = 8
    learning_rate: float = 5e-5
    warmup_share: float = 0.1
    max_length: int = DEFAULT_MAX_LENGTH
    max_minutes: float = 0.0  # 0: no limit
    frozen_layers: int = 0  # transformer layers kept as the bundled model has them (with the embeddings)
    calibration_questions: int = 1500
    refusal_precision: float = 0.9
    seed: int = 13
    precision: str = "auto"


def read_jsonl_gz(path: Path) -> Iterator[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def load_split(data_dir: Path, split: str) -> tuple[dict[int, Passage], list[Question]]:
    passages = {row["id"]: Passage(row["id"], row.get("title") or "", row["text"])
                for row in read_jsonl_gz(data_dir / f"{split}.passages.jsonl.gz")}
    questions = [Question(row["question"], row["passage_id"], bool(row.get("answerable", True)), row.get("answer"))
                 for row in read_jsonl_gz(data_dir / f"{split}.questions.jsonl.gz")]
    return passages, [q for q in questions if q.passage_id in passages]


class KeywordIndex:
    """An in-memory SQLite FTS5 (BM25) index over passages, for mining hard negatives."""

    def __init__(self, passages: dict[int, Passage]) -> None:
        self.db = sqlite3.connect(":memory:")
        self.db.execute("CREATE VIRTUAL TABLE p USING fts5(title, text, tokenize='porter unicode61')")
        self.db.executemany("INSERT INTO p(rowid, title, text) VALUES (?, ?, ?)",
                            ((p.id, p.title, p.text) for p in passages.values()))

    def search(self, question: str, limit: int) -> list[int]:
        query = fts_query(question)
        if not query:
            return []
        rows = self.db.execute("SELECT rowid FROM p WHERE p MATCH ? ORDER BY bm25(p) LIMIT ?", (query, limit))
        return [row[0] for row in rows]


def training_groups(passages: dict[int, Passage], questions: Sequence[Question], options: TrainingOptions,
                    rng: random.Random) -> list[tuple[str, list[int]]]:
    """(question, [positive id, negative ids...]) for a random sample of answerable questions."""
    index = KeywordIndex(passages)
    by_article: dict[str, list[int]] = {}
    for passage in passages.values():
        by_article.setdefault(passage.title, []).append(passage.id)
    all_ids = list(passages)
    eligible = [q for q in questions if q.answerable and q.answer]
    sample = rng.sample(eligible, min(options.questions, len(eligible)))
    groups = []
    for q in sample:
        answers = [q.answer] if q.answer else []
        hard = [pid for pid in index.search(q.question, 12)
                if pid != q.passage_id and not contains_answer(passages[pid].text, answers)][:options.hard_negatives]
        title = passages[q.passage_id].title
        same_article = [pid for pid in by_article[title] if pid != q.passage_id and pid not in hard
                        and not contains_answer(passages[pid].text, answers)]
        while len(hard) < options.hard_negatives and same_article:  # too few keyword hits: same-article ones
            hard.append(same_article.pop(rng.randrange(len(same_article))))
        easy: list[int] = []
        while len(easy) < options.easy_negatives:
            pid = rng.choice(all_ids)
            if passages[pid].title != title:
                easy.append(pid)
        if len(hard) == options.hard_negatives:
            groups.append((q.question, [q.passage_id] + hard + easy))
    return groups


def _tokenize(tokenizer, questions: Sequence[str], texts: Sequence[str], max_length: int):
    return tokenizer(list(questions), list(texts), truncation="only_second", max_length=max_length,
                     padding=True, return_tensors="pt")


def passage_groups(passages: dict[int, Passage], groups: list[tuple[str, list[int]]]) -> list[tuple[str, list[str]]]:
    """The groups of passage ids as the texts the cross-encoder reads (title, then passage)."""
    return [(question, [passage_input(passages[pid].title, passages[pid].text) for pid in ids])
            for question, ids in groups]


def train(groups: list[tuple[str, list[str]]], options: TrainingOptions, rng: random.Random):
    """Fine-tune the classifier on the groups (a question, then the texts it reads: the positive first,
    then the negatives, every group the same size); returns it with a summary of the run."""
    import torch

    torch.manual_seed(options.seed)
    model, tokenizer = build_classifier()
    for name, parameter in model.named_parameters():
        parameter.requires_grad = not is_frozen(name, options.frozen_layers)
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.dim() > 1]
    no_decay = [p for p in trainable if p.dim() <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=options.learning_rate)
    steps = math.ceil(len(groups) / options.groups_per_batch)
    warmup = max(1, int(steps * options.warmup_share))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup))))
    bf16 = options.precision == "bf16" or (options.precision == "auto" and cpu_has_fast_bf16())
    group_size = len(groups[0][1])
    rng.shuffle(groups)
    # Dropout stays off (eval mode, gradients on): on CPU it made each step several times slower, and a short
    # fine-tune from good weights needs little regularisation.
    model.eval()
    started = time.monotonic()
    losses: list[float] = []
    done = 0
    progress_every = max(1, steps // 50)
    for step in range(steps):
        if options.max_minutes and time.monotonic() - started > options.max_minutes * 60:
            log.warning("stopping after %d of %d steps: --max-minutes reached", step, steps)
            break
        batch = groups[step * options.groups_per_batch:(step + 1) * options.groups_per_batch]
        questions = [question for question, texts in batch for _ in texts]
        texts = [text for _, group in batch for text in group]
        encoded = _tokenize(tokenizer, questions, texts, options.max_length)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(**encoded).logits.squeeze(-1).float().view(len(batch), group_size)
        labels = torch.zeros_like(logits)
        labels[:, 0] = 1.0
        listwise = torch.nn.functional.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long))
        pointwise = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        loss = listwise + pointwise
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        done += len(batch)
        if (step + 1) % progress_every == 0 or step + 1 == steps:
            elapsed = time.monotonic() - started
            print(f"step {step + 1}/{steps}  loss {statistics.fmean(losses[-progress_every:]):.3f}  "
                  f"{done * group_size / elapsed:.1f} pairs/s  {elapsed / 60:.1f} min", file=sys.stderr, flush=True)
    model.eval()
    summary = {"groups": done, "group_size": group_size, "steps": len(losses), "minutes": round((time.monotonic() - started) / 60, 1),
               "final_loss": round(statistics.fmean(losses[-progress_every:]), 4) if losses else None,
               "bf16": bf16}
    return model, tokenizer, summary


def score_pairs(model, tokenizer, pairs: Sequence[tuple[str, str]], max_length: int, bf16: bool,
                batch_size: int = 32) -> np.ndarray:
    import torch

    scores = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        encoded = _tokenize(tokenizer, [q for q, _ in chunk], [t for _, t in chunk], max_length)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            scores.append(torch.sigmoid(model(**encoded).logits.squeeze(-1).float()).numpy())
    return np.concatenate(scores) if scores else np.zeros(0)


def choose_threshold(answerable: np.ndarray, unanswerable: np.ndarray, precision: float) -> dict:
    """The highest probability threshold whose refusals (score below it) are at least ``precision`` right."""
    best = {"threshold": 0.0, "precision": 1.0, "refused_unanswerable": 0.0, "refused_answerable": 0.0}
    for threshold in np.unique(np.concatenate([answerable, unanswerable])):
        wrong = float((answerable < threshold).sum())
        right = float((unanswerable < threshold).sum())
        if right + wrong == 0:
            continue
        if right / (right + wrong) >= precision:
            best = {"threshold": float(threshold), "precision": right / (right + wrong),
                    "refused_unanswerable": right / len(unanswerable), "refused_answerable": wrong / len(answerable)}
    return best


def calibrate(model, tokenizer, data_dir: Path, options: TrainingOptions, bf16: bool, rng: random.Random) -> dict:
    passages, questions = load_split(data_dir, "dev-v2.0")
    answerable = [q for q in questions if q.answerable]
    unanswerable = [q for q in questions if not q.answerable]
    n = options.calibration_questions
    answerable, unanswerable = rng.sample(answerable, min(n, len(answerable))), rng.sample(unanswerable, min(n, len(unanswerable)))

    def pairs(qs: Sequence[Question]) -> list[tuple[str, str]]:
        return [(q.question, passage_input(passages[q.passage_id].title, passages[q.passage_id].text)) for q in qs]

    yes = score_pairs(model, tokenizer, pairs(answerable), options.max_length, bf16)
    no = score_pairs(model, tokenizer, pairs(unanswerable), options.max_length, bf16)
    result = choose_threshold(yes, no, options.refusal_precision)
    order = np.argsort(np.concatenate([yes, no]))
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    auc = (ranks[:len(yes)].sum() - len(yes) * (len(yes) + 1) / 2) / (len(yes) * len(no))
    result.update({"answerable": len(yes), "unanswerable": len(no), "auc": float(auc),
                   "median_answerable": float(np.median(yes)), "median_unanswerable": float(np.median(no))})
    return result


def save(model, path: Path, threshold: float, options: TrainingOptions, training: dict, file_format: str = FORMAT,
         data: str = "SQuAD v1.0 train (CC BY-SA 4.0), Rajpurkar et al. 2016; calibrated on SQuAD 2.0 dev") -> int:
    """Write the fp16 weights (without the frozen word embeddings) and metadata; returns the file size."""
    from safetensors.torch import save_file

    state = {key: value.detach().to("cpu").half().contiguous()
             for key, value in model.state_dict().items() if not is_frozen(key, options.frozen_layers)}
    metadata = {"format": file_format, "base_model": "all-MiniLM-L6-v2", "threshold": f"{threshold:.6f}",
                "max_length": str(options.max_length), "frozen_layers": str(options.frozen_layers),
                "training": json.dumps(training, sort_keys=True), "data": data}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    save_file(state, str(temporary), metadata=metadata)
    temporary.replace(path)
    return path.stat().st_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainingOptions()
    parser.add_argument("data_dir", type=Path, help="folder with SQuAD's *.passages/questions.jsonl.gz")
    parser.add_argument("out", type=Path, help="the reranker file to write (e.g. index/models/reranker.safetensors)")
    parser.add_argument("--questions", type=int, default=defaults.questions, help="training questions sampled")
    parser.add_argument("--hard-negatives", type=int, default=defaults.hard_negatives)
    parser.add_argument("--easy-negatives", type=int, default=defaults.easy_negatives)
    parser.add_argument("--groups-per-batch", type=int, default=defaults.groups_per_batch)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--max-length", type=int, default=defaults.max_length)
    parser.add_argument("--max-minutes", type=float, default=defaults.max_minutes, help="stop training early (0: never)")
    parser.add_argument("--calibration-questions", type=int, default=defaults.calibration_questions,
                        help="SQuAD 2.0 dev questions of each kind (answerable, unanswerable) for the threshold")
    parser.add_argument("--refusal-precision", type=float, default=defaults.refusal_precision)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=defaults.precision)
    parser.add_argument("--seed", type=int, default=defaults.seed)


def run(args: argparse.Namespace) -> int:
    """The train-reranker command."""
    given = {f.name: getattr(args, f.name) for f in fields(TrainingOptions) if hasattr(args, f.name)}
    options = TrainingOptions(**given)  # each option has its --flag, except the fixed warmup_share
    for name in ("train-v1.0.passages.jsonl.gz", "train-v1.0.questions.jsonl.gz",
                 "dev-v2.0.passages.jsonl.gz", "dev-v2.0.questions.jsonl.gz"):
        if not (args.data_dir / name).is_file():
            print(f"{args.data_dir / name} not found", file=sys.stderr)
            return 2
    rng = random.Random(options.seed)
    started = time.monotonic()
    passages, questions = load_split(args.data_dir, "train-v1.0")
    groups = training_groups(passages, questions, options, rng)
    print(f"{len(groups)} training groups of {1 + options.hard_negatives + options.easy_negatives} passages "
          f"({time.monotonic() - started:.0f} s to mine negatives)", file=sys.stderr)
    model, tokenizer, summary = train(passage_groups(passages, groups), options, rng)
    calibration = calibrate(model, tokenizer, args.data_dir, options, summary["bf16"], rng)
    print("calibration on SQuAD 2.0 dev: " + json.dumps({k: round(v, 3) for k, v in calibration.items()}), file=sys.stderr)
    training = {**asdict(options), **summary, "calibration": calibration,
                "total_minutes": round((time.monotonic() - started) / 60, 1)}
    size = save(model, args.out, calibration["threshold"], options, training)
    print(f"wrote {args.out} ({size / 1e6:.1f} MB) in {training['total_minutes']} min", file=sys.stderr)
    return 0
