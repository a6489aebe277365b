"""python -m index train-reranker SQUAD_DIR OUT: fine-tune the MiniLM cross-encoder on SQuAD.

Each training group is one question with its passage (the positive) and negatives: the best hits for
the question among all other passages that do not contain the answer (hard ones, often from the same
article), and one random passage of another article (an easy one, so that off-topic text also scores
low). The hits are the project's own hybrid search when a file of ``python -m index mine-negatives``
is given (``--negatives``), else BM25 alone. The loss adds a listwise term (softmax over the group:
rank the positive first) and a pointwise term (binary cross-entropy: a probability that can be
thresholded). It trains on a CUDA GPU when torch sees one (``--device``). The word
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
import os
import random
import sqlite3
import statistics
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from index.eval.answers import haystack, holds_answer
from index.search.reranker import (
    DEFAULT_MAX_LENGTH,
    FORMAT,
    build_classifier,
    cpu_has_fast_bf16,
    is_frozen,
    passage_input,
)

log = logging.getLogger(__name__)
DEVICES = ("auto", "cpu", "cuda")
SQUAD_FILES = ("train-v1.0.passages.jsonl.gz", "train-v1.0.questions.jsonl.gz",
               "dev-v2.0.passages.jsonl.gz", "dev-v2.0.questions.jsonl.gz")


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
    questions: int = 8000  # 0: every answerable question
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
    epochs: int = 1
    device: str = "auto"  # "auto": a CUDA GPU when torch sees one, else the CPU
    loader_workers: int = -1  # -1: none on the CPU, several beside a GPU (``loader_workers``)


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
    """An in-memory SQLite FTS5 (BM25) index over passages, for hard negatives without a mined file."""

    def __init__(self, passages: dict[int, Passage]) -> None:
        # imported here: training from a mined file needs none of the stores (it may run on a bare GPU machine)
        from index.stores.embedded.fts_reference import fts_query

        self._fts_query = fts_query
        self.db = sqlite3.connect(":memory:")
        self.db.execute("CREATE VIRTUAL TABLE p USING fts5(title, text, tokenize='porter unicode61')")
        self.db.executemany("INSERT INTO p(rowid, title, text) VALUES (?, ?, ?)",
                            ((p.id, p.title, p.text) for p in passages.values()))

    def search(self, question: str, limit: int) -> list[int]:
        query = self._fts_query(question)
        if not query:
            return []
        rows = self.db.execute("SELECT rowid FROM p WHERE p MATCH ? ORDER BY bm25(p) LIMIT ?", (query, limit))
        return [row[0] for row in rows]


def sample_questions(questions: Sequence[Question], wanted: int, rng: random.Random) -> list[tuple[int, Question]]:
    """A random sample of the answerable questions (``wanted`` 0: all), each with its number in ``questions``."""
    eligible = [(number, q) for number, q in enumerate(questions) if q.answerable and q.answer]
    return rng.sample(eligible, min(wanted, len(eligible)) if wanted > 0 else len(eligible))


def best_hits(passages: dict[int, Passage], mined: dict[int, list[int]] | None) -> Callable[[int, str, int], list[int]]:
    """hits(question number, question, limit): the best passages for a question, best first; from the
    mined file (``read_mined``) when there is one, else from BM25."""
    if mined is not None:
        return lambda number, question, limit: mined.get(number, [])[:limit]
    index = KeywordIndex(passages)
    return lambda number, question, limit: index.search(question, limit)


def training_groups(passages: dict[int, Passage], questions: Sequence[Question], options: TrainingOptions,
                    rng: random.Random, mined: dict[int, list[int]] | None = None) -> list[tuple[str, list[int]]]:
    """(question, [positive id, negative ids...]) for a random sample of answerable questions."""
    hits = best_hits(passages, mined)
    by_article: dict[str, list[int]] = {}
    for passage in passages.values():
        by_article.setdefault(passage.title, []).append(passage.id)
    all_ids = list(passages)
    searched: dict[int, str] = {}  # each passage normalised once: all of SQuAD checks ~1M pairs

    def lacks(pid: int, answers: list[str]) -> bool:
        if pid not in searched:
            searched[pid] = haystack(passages[pid].text)
        return not holds_answer(searched[pid], answers)

    groups = []
    for number, q in sample_questions(questions, options.questions, rng):
        answers = [q.answer] if q.answer else []
        hard = [pid for pid in hits(number, q.question, 12)
                if pid != q.passage_id and lacks(pid, answers)][:options.hard_negatives]
        title = passages[q.passage_id].title
        if len(hard) < options.hard_negatives:  # too few hits: other paragraphs of the same article
            same_article = [pid for pid in by_article[title] if pid != q.passage_id and pid not in hard
                            and lacks(pid, answers)]
            while len(hard) < options.hard_negatives and same_article:
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


def resolve_device(configured: str) -> str:
    """``auto``: "cuda" when torch sees a CUDA GPU, else "cpu"; "cuda" without one is an error."""
    import torch

    if configured not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {configured!r}")
    if configured == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA GPU here")
    if configured == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return configured


def uses_bf16(precision: str, device: str) -> bool:
    """Whether training and scoring run in bfloat16 autocast on this device."""
    if precision != "auto":
        return precision == "bf16"
    if device == "cuda":
        import torch

        return torch.cuda.is_bf16_supported()
    return cpu_has_fast_bf16()


def loader_workers(configured: int, device: str) -> int:
    """Processes that tokenize batches ahead of the training step: ``configured`` when 0 or more, else
    none on the CPU (they would take its cores from the step) and up to 8 beside a GPU."""
    if configured >= 0:
        return configured
    return 0 if device == "cpu" else max(0, min(8, (os.cpu_count() or 1) - 1))


def epoch_batches(groups: list[tuple[str, list[str]]], options: TrainingOptions, tokenizer, rng: random.Random,
                  workers: int):
    """One epoch of (groups in the batch, its tokenized pairs), the groups in a new order; with
    ``workers``, tokenized by that many processes while the model trains on the batches before."""
    import torch

    rng.shuffle(groups)
    size = options.groups_per_batch
    batches = [groups[first:first + size] for first in range(0, len(groups), size)]

    def encode(batch: list[tuple[str, list[str]]]):
        questions = [question for question, texts in batch for _ in texts]
        texts = [text for _, group in batch for text in group]
        return len(batch), _tokenize(tokenizer, questions, texts, options.max_length)

    # the workers are forked (Linux): they inherit the tokenizer and the batches, nothing is pickled
    return torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False, collate_fn=encode,  # type: ignore
                                       num_workers=workers, prefetch_factor=4 if workers else None,
                                       multiprocessing_context="fork" if workers else None)


def train(groups: list[tuple[str, list[str]]], options: TrainingOptions, rng: random.Random,
          base_model: Path | None = None):
    """Fine-tune the classifier on the groups (a question, then the texts it reads: the positive first,
    then the negatives, every group the same size), ``options.epochs`` times over, each time in a new
    order; returns it (still on its device) with a summary of the run."""
    import torch

    torch.manual_seed(options.seed)
    device = resolve_device(options.device)
    model, tokenizer = build_classifier(base_model)
    model.to(device)
    for name, parameter in model.named_parameters():
        parameter.requires_grad = not is_frozen(name, options.frozen_layers)
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.dim() > 1]
    no_decay = [p for p in trainable if p.dim() <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=options.learning_rate)
    per_epoch = math.ceil(len(groups) / options.groups_per_batch)
    steps = per_epoch * max(1, options.epochs)
    warmup = max(1, int(steps * options.warmup_share))
    started = time.monotonic()

    def rate(step: int) -> float:
        """Linear warm-up, then linear decay to zero at the last step, or at --max-minutes if that comes
        first (so a run cut short by its time limit still ends on a small learning rate)."""
        left = (steps - step) / max(1, steps - warmup)
        if options.max_minutes:
            left = min(left, (1.0 - (time.monotonic() - started) / (options.max_minutes * 60)) * steps
                       / max(1, steps - warmup))
        return min((step + 1) / warmup, max(0.0, left))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    bf16 = uses_bf16(options.precision, device)
    group_size = len(groups[0][1])
    # Dropout stays off (eval mode, gradients on): on CPU it made each step several times slower, and a short
    # fine-tune from good weights needs little regularisation.
    model.eval()
    workers = loader_workers(options.loader_workers, device)
    losses: list[float] = []
    done = 0
    progress_every = max(1, steps // 50)
    for epoch in range(1, max(1, options.epochs) + 1):
        out_of_time = False
        for size, encoded in epoch_batches(groups, options, tokenizer, rng, workers):
            if options.max_minutes and time.monotonic() - started > options.max_minutes * 60:
                log.warning("stopping after %d of %d steps: --max-minutes reached", len(losses), steps)
                out_of_time = True
                break
            with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                logits = model(**encoded.to(device)).logits.squeeze(-1).float().view(size, group_size)
            labels = torch.zeros_like(logits)
            labels[:, 0] = 1.0
            listwise = torch.nn.functional.cross_entropy(logits, torch.zeros(size, dtype=torch.long, device=device))
            pointwise = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
            loss = listwise + pointwise
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            done += size
            if len(losses) % progress_every == 0 or len(losses) == steps:
                elapsed = time.monotonic() - started
                print(f"step {len(losses)}/{steps} (epoch {epoch})  "
                      f"loss {statistics.fmean(losses[-progress_every:]):.3f}  "
                      f"{done * group_size / elapsed:.1f} pairs/s  {elapsed / 60:.1f} min", file=sys.stderr, flush=True)
        if out_of_time:
            break
    model.eval()
    summary = {"groups": done, "group_size": group_size, "steps": len(losses),
               "minutes": round((time.monotonic() - started) / 60, 1),
               "final_loss": round(statistics.fmean(losses[-progress_every:]), 4) if losses else None,
               "bf16": bf16, "device": device if device == "cpu" else torch.cuda.get_device_name()}
    return model, tokenizer, summary


def score_pairs(model, tokenizer, pairs: Sequence[tuple[str, str]], max_length: int, bf16: bool,
                batch_size: int = 32) -> np.ndarray:
    """The model's probability for each (question, text) pair, on whatever device the model is on."""
    import torch

    device = next(model.parameters()).device
    if device.type != "cpu":
        batch_size *= 8
    scores = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        encoded = _tokenize(tokenizer, [q for q, _ in chunk], [t for _, t in chunk], max_length).to(device)
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            scores.append(torch.sigmoid(model(**encoded).logits.squeeze(-1).float()).cpu().numpy())
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
    parser.add_argument("--questions", type=int, default=defaults.questions,
                        help="training questions sampled (0: all)")
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
    add_run_arguments(parser, defaults.epochs)


def add_run_arguments(parser: argparse.ArgumentParser, epochs: int) -> None:
    """The flags both trainers share: where the run happens and what it starts from."""
    parser.add_argument("--epochs", type=int, default=epochs, help="passes over the training groups")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where to train (auto: a CUDA GPU when torch sees one, else the CPU)")
    parser.add_argument("--negatives", type=Path,
                        help="hard negatives from `python -m index mine-negatives` (default: BM25 at start-up)")
    parser.add_argument("--base-model", type=Path,
                        help="a folder holding a copy of the bundled all-MiniLM-L6-v2 (default: the bundled package)")
    parser.add_argument("--loader-workers", type=int, default=-1,
                        help="processes tokenizing batches ahead of training (default: 0 on a CPU, up to 8 on a GPU)")


def check_run_arguments(args: argparse.Namespace) -> str | None:
    """What is wrong with the data folder or the shared flags, or None."""
    for name in SQUAD_FILES:
        if not (args.data_dir / name).is_file():
            return f"{args.data_dir / name} not found"
    if args.negatives is not None and not args.negatives.is_file():
        return f"{args.negatives} not found"
    if args.base_model is not None and not (args.base_model / "config.json").is_file():
        return f"{args.base_model} holds no model (no config.json)"
    if args.epochs < 1:
        return "--epochs must be at least 1"
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return "--device cuda: torch sees no CUDA GPU here"
    return None


def read_mined(path: Path, questions: Sequence[Question]) -> dict[int, list[int]]:
    """A file of ``python -m index mine-negatives``: the best paragraphs per question number, checked
    against the questions they were mined for."""
    try:
        rows = [(int(row["question"]), str(row["text"]), [int(pid) for pid in row["paragraphs"]])
                for row in read_jsonl_gz(path)]
    except (OSError, EOFError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable file of `python -m index mine-negatives` ({exc!r})") from None
    mined: dict[int, list[int]] = {}
    for number, text, paragraphs in rows:
        if not 0 <= number < len(questions) or questions[number].question != text:
            raise ValueError(f"{path} was mined from other SQuAD questions (question {number} differs)")
        mined[number] = paragraphs
    return mined


def build_groups(args: argparse.Namespace, build: Callable[[dict[int, Passage], list[Question], dict | None], list],
                 unit: str) -> tuple[dict[int, Passage], list] | None:
    """Both trainers' start: check the flags, read SQuAD's training split and the --negatives file, and
    ``build(passages, questions, mined)`` the training groups, saying how many (each of ``unit``).
    None, with one line on stderr, when a flag or a file is wrong or no group could be built."""
    started = time.monotonic()
    problem = check_run_arguments(args)
    if problem:
        print(problem, file=sys.stderr)
        return None
    passages, questions = load_split(args.data_dir, "train-v1.0")
    try:
        mined = None if args.negatives is None else read_mined(args.negatives, questions)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return None
    groups = build(passages, questions, mined)
    print(f"{len(groups)} training groups of {unit} ({time.monotonic() - started:.0f} s to build)", file=sys.stderr)
    if not groups:
        print("no training group could be built from these questions", file=sys.stderr)
        return None
    return passages, groups


def command_main(module: str, doc: str, add: Callable[[argparse.ArgumentParser], None],
                 run_command: Callable[[argparse.Namespace], int], argv: list[str] | None) -> int:
    """``python -m MODULE``: a trainer without the rest of the project's command line (whose imports need
    the stores), for a machine with only torch and transformers (and sentencex)."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.split("\n")[0])
    add(parser)
    logging.basicConfig(level=logging.WARNING)
    return run_command(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """The train-reranker command."""
    given = {f.name: getattr(args, f.name) for f in fields(TrainingOptions) if hasattr(args, f.name)}
    options = TrainingOptions(**given)  # each option has its --flag, except the fixed warmup_share
    rng = random.Random(options.seed)
    started = time.monotonic()
    built = build_groups(args, lambda passages, questions, mined:
                         training_groups(passages, questions, options, rng, mined),
                         f"{1 + options.hard_negatives + options.easy_negatives} passages")
    if built is None:
        return 2
    passages, groups = built
    model, tokenizer, summary = train(passage_groups(passages, groups), options, rng, args.base_model)
    calibration = calibrate(model, tokenizer, args.data_dir, options, summary["bf16"], rng)
    print("calibration on SQuAD 2.0 dev: " + json.dumps({k: round(v, 3) for k, v in calibration.items()}), file=sys.stderr)
    training = {**asdict(options), **summary, "calibration": calibration,
                "total_minutes": round((time.monotonic() - started) / 60, 1)}
    size = save(model, args.out, calibration["threshold"], options, training)
    print(f"wrote {args.out} ({size / 1e6:.1f} MB) in {training['total_minutes']} min", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m index.search.train_reranker`` (``command_main``)."""
    return command_main("index.search.train_reranker", __doc__ or "", add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
