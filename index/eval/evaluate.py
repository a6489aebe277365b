"""python -m index eval DATASET_DIR: answer-recall of a news QA set on a throwaway library."""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence, TextIO

import numpy as np
from tqdm import tqdm

from index.articles import ArticleDraft, parse_date
from index.config import Settings, coerce
from index.embedding.cache import CachedEmbedder
from index.embedding.embedder import Embedder
from index.errors import ConfigError
from index.eval.answers import contains_answer
from index.eval.bootstrap import print_differences
from index.library import Library
from index.search.hybrid import HybridSearcher
from index.search.reranker import Reranker, load_reranker
from index.search.sentence_scorer import load_sentence_scorer

if TYPE_CHECKING:
    from index.stores.postgres.scratch import ScratchDatabases

CUTOFFS = (1, 3, 5, 10)


@dataclass
class QuestionResult:
    id: str
    specific: bool
    first_passage_rank: int | None  # 1-based rank of the first passage holding an answer
    first_article_rank: int | None
    best_sentence_holds_answer: bool | None  # for the first relevant passage
    lead_holds_answer: bool  # the sentence the reply leads with (Answer.lead_hit's marked sentence)
    answered: bool
    milliseconds: float
    top_dense: float  # the best cosine among the first page's passages: what the refusal rule reads
    top_probability: float | None  # the reranker's best probability on the first page (None: no reranker)
    lead_probability: float | None = None  # the sentence scorer's probability for the lead sentence


def apply_overrides(settings: Settings, overrides: Sequence[str]) -> Settings:
    """Apply ``section.key=value`` overrides, typed like the config's defaults."""
    for item in overrides:
        name, sep, value = item.partition("=")
        section, _, key = name.strip().partition(".")
        if not sep or not hasattr(settings, section) or not hasattr(getattr(settings, section), key):
            raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE with a known key")
        current = getattr(getattr(settings, section), key)
        hint = next(str(f.type) for f in dataclasses.fields(getattr(settings, section)) if f.name == key)
        settings = settings.replace(section, **{key: coerce(value, current, name, hint)})
    return settings


def load_corpus(path: Path) -> list[ArticleDraft]:
    drafts = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            drafts.append(ArticleDraft(title=(row.get("title") or "").strip() or "Untitled", text=row["text"],
                                       url=row.get("url"), published=parse_date(row.get("published")),
                                       source=row.get("source_domain")))
    return drafts


def load_questions(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _rate(values: Sequence[bool]) -> float:
    return sum(values) / len(values) if values else float("nan")


def summarize(results: Sequence[QuestionResult]) -> dict[str, float]:
    row: dict[str, float] = {"questions": len(results)}
    for k in CUTOFFS:
        row[f"R@{k}"] = _rate([r.first_passage_rank is not None and r.first_passage_rank <= k for r in results])
    row["MRR@10"] = statistics.fmean(
        [1 / r.first_passage_rank if r.first_passage_rank and r.first_passage_rank <= 10 else 0.0 for r in results]) \
        if results else float("nan")
    for k in CUTOFFS:
        row[f"article R@{k}"] = _rate([r.first_article_rank is not None and r.first_article_rank <= k for r in results])
    with_hit = [r for r in results if r.best_sentence_holds_answer is not None]
    row["answer in bold sentence"] = _rate([bool(r.best_sentence_holds_answer) for r in with_hit])
    row["answer in lead sentence"] = _rate([r.lead_holds_answer for r in results])
    row["refused"] = _rate([not r.answered for r in results])
    return row


def print_table(rows: dict[str, dict[str, float]], out=sys.stdout) -> None:
    names = list(rows)
    keys = list(next(iter(rows.values())))
    print(f"{'metric':<26}" + "".join(f"{name:>14}" for name in names), file=out)
    for key in keys:
        cells = []
        for name in names:
            value = rows[name][key]
            cells.append(f"{int(value):>14d}" if key == "questions" else f"{value:>14.3f}")
        print(f"{key:<26}" + "".join(cells), file=out)


def evaluate(searcher: HybridSearcher, questions: Sequence[dict], use_dates: bool = True) -> list[QuestionResult]:
    results = []
    k = searcher.settings.k
    for q in tqdm(questions, desc="questions", unit="q", disable=not sys.stderr.isatty()):
        answers = q["answer_texts"]
        started = time.perf_counter()
        # as the bot asks: k passages on the first page (marked), the rest ranked for the metrics
        answer = searcher.search(q["question"], k=k, limit=max(CUTOFFS),
                                 now=parse_date(q.get("date")) if use_dates else None)
        elapsed = (time.perf_counter() - started) * 1000
        passage_rank = next((i for i, h in enumerate(answer.hits, 1) if contains_answer(h.text, answers)), None)
        sentence_ok = None
        if passage_rank is not None:
            hit = searcher.mark_hits(answer, passage_rank - 1, passage_rank).hits[passage_rank - 1]
            sentence_ok = contains_answer(hit.best_sentence_text or "", answers)
        lead_hit = answer.lead_hit
        lead_ok = lead_hit is not None and contains_answer(lead_hit.best_sentence_text or "", answers)
        articles: list = []
        for hit in answer.hits:
            if hit.article.id not in {a.id for a in articles}:
                articles.append(hit.article)
        article_rank = next((i for i, a in enumerate(articles, 1) if contains_answer(a.text, answers)), None)
        top_dense = max((h.dense_score for h in answer.hits[:k]), default=0.0)
        probabilities = [h.rerank_score for h in answer.hits[:k] if h.rerank_score is not None]
        results.append(QuestionResult(q["id"], bool(q.get("specific")), passage_rank, article_rank, sentence_ok,
                                      lead_ok, answer.answered, elapsed, top_dense, max(probabilities, default=None),
                                      lead_hit.sentence_probability if lead_hit is not None else None))
    return results


def build_library(drafts: Sequence[ArticleDraft], settings: Settings, embedder: CachedEmbedder,
                  data_dir: Path, reranker: Reranker | None,
                  databases: ScratchDatabases | None = None) -> tuple[Library, dict[str, int], float]:
    """A scratch library of the drafts, whatever the configured store (the evaluation never writes to a
    shared database): embedded in ``data_dir``, or in a new database of ``databases`` (PostgreSQL).
    Returns (library, add statuses counted, seconds)."""
    started = time.perf_counter()
    scratch = settings.replace("library", store="embedded", data_dir=data_dir)
    if databases is not None:
        scratch = scratch.replace("library", store="postgres").replace("postgres", dsn=databases.create())
    library = Library(scratch, embedder=embedder, reranker=reranker)  # type: ignore[arg-type]
    statuses: dict[str, int] = {}
    for draft in tqdm(drafts, desc="indexing", unit="article", disable=not sys.stderr.isatty()):
        status = library.add_draft(draft, added_by="eval").status
        statuses[status] = statuses.get(status, 0) + 1
    return library, statuses, time.perf_counter() - started


class ScoreMemo:
    """A reranker that remembers its scores, so that variants of the ranking score each pair once."""

    def __init__(self, reranker: Reranker) -> None:
        self.reranker = reranker
        self.info = reranker.info
        self._memo: dict[tuple[str, str], float] = {}

    def score(self, question: str, passages: Sequence[str]) -> np.ndarray:
        todo = list(dict.fromkeys(p for p in passages if (question, p) not in self._memo))
        for passage, value in zip(todo, self.reranker.score(question, todo)):
            self._memo[(question, passage)] = float(value)
        return np.array([self._memo[(question, p)] for p in passages], dtype=np.float32)


def searchers(library: Library, variants: dict[str, Settings]) -> dict[str, HybridSearcher]:
    """One searcher per named configuration, all over the library's store, vectors and models."""
    return {name: HybridSearcher(library.store, library.vectors, library.backend.keywords, library.embedder,
                                 variant.search, library.reranker, variant.reranker,
                                 load_sentence_scorer(variant.sentences), variant.sentences)
            for name, variant in variants.items()}


def unanswerable_results(drafts: Sequence[ArticleDraft], questions: Sequence[dict], variants: dict[str, Settings],
                         embedder: CachedEmbedder, reranker: Reranker | None, work_dir: Path, groups: int = 4,
                         use_dates: bool = True,
                         databases: ScratchDatabases | None = None) -> dict[str, list[QuestionResult]]:
    """The `specific` questions asked of libraries from which every article holding their answer was
    removed (in a few groups, so that few libraries are built): they should all be refused."""
    specific = [q for q in questions if q.get("specific")]
    base = next(iter(variants.values()))
    results: dict[str, list[QuestionResult]] = {name: [] for name in variants}
    for number in range(groups):
        group = specific[number::groups]
        answers = [a for q in group for a in q["answer_texts"]]
        kept = [d for d in drafts if not contains_answer(d.text, answers)]
        library, _, _ = build_library(kept, base, embedder, work_dir / f"without-{number}", reranker, databases)
        with library:
            for name, searcher in searchers(library, variants).items():
                results[name] += evaluate(searcher, group, use_dates)
    return results


def print_refusals(answerable: Sequence[QuestionResult], unanswerable: Sequence[QuestionResult],
                   searcher: HybridSearcher, out=sys.stdout) -> None:
    """How the refusal threshold (the reranker's probability, or without one the cosine
    search.min_dense_score) trades precision against wrong refusals."""
    print(f"refusals: {len(unanswerable)} unanswerable `specific` questions (answer-bearing articles removed),"
          f" {len(answerable)} answerable", file=out)
    current = searcher.refusal_threshold
    if current is None:
        name, current = "min_dense_score", searcher.settings.min_dense_score
        grid = {0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6}

        def signal(r: QuestionResult) -> float:
            return r.top_dense
    else:
        name = "min_probability"
        grid = {0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8}

        def signal(r: QuestionResult) -> float:
            return r.top_probability if r.top_probability is not None else 1.0
    _print_sweep(name, signal, grid, current, answerable, unanswerable, out)
    if any(r.lead_probability is not None for r in [*answerable, *unanswerable]):
        print("the sentence scorer's probability for the lead sentence, as a refusal signal (not used):", file=out)
        _print_sweep("lead probability", lambda r: r.lead_probability if r.lead_probability is not None else 0.0,
                     {0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8}, None, answerable, unanswerable, out)


def _print_sweep(name: str, signal: Callable[[QuestionResult], float], grid: set[float], current: float | None,
                 answerable: Sequence[QuestionResult], unanswerable: Sequence[QuestionResult], out) -> None:
    """One row per threshold: refusing below it, the share of refusals that are right (precision), of the
    unanswerable questions refused (recall), and of the answerable ones refused."""
    print(f"{name:>16}{'precision':>11}{'recall':>9}{'wrongly refused':>17}", file=out)
    marked = round(current, 4) if current is not None else None
    for threshold in sorted(grid | ({marked} if marked is not None else set())):
        refused_bad = sum(signal(r) < threshold for r in unanswerable)
        refused_good = sum(signal(r) < threshold for r in answerable)
        precision = refused_bad / (refused_bad + refused_good) if refused_bad + refused_good else float("nan")
        mark = "  <- current" if threshold == marked else ""
        print(f"{threshold:>16.4g}{precision:>11.3f}{refused_bad / max(1, len(unanswerable)):>9.3f}"
              f"{refused_good / max(1, len(answerable)):>17.3f}{mark}", file=out)


def question_date_bound(flag: str, text: str | None) -> date | None:
    """A --questions-from/--questions-to date (YYYY-MM-DD), None when the flag is not given."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected a date such as 2023-02-01") from None


def questions_between(questions: Sequence[dict], first: date | None, last: date | None) -> list[dict]:
    """The questions whose own date lies within [first, last] (either bound open when None); with a
    bound, questions without a readable date are left out."""
    if first is None and last is None:
        return list(questions)
    kept = []
    for q in questions:
        asked = parse_date(q.get("date"))
        if asked is not None and (first is None or asked >= first) and (last is None or asked <= last):
            kept.append(q)
    return kept


def print_comparison(results: dict[str, list[QuestionResult]], out: TextIO | None = None) -> None:
    """Every variant against the first, question by question: R@1, R@3 and answer in the lead sentence."""
    out = out or sys.stdout
    metrics = {
        "R@1": lambda r: float(r.first_passage_rank == 1),
        "R@3": lambda r: float(r.first_passage_rank is not None and r.first_passage_rank <= 3),
        "answer in lead": lambda r: float(r.lead_holds_answer),
    }
    for subset, keep in (("all", lambda r: True), ("specific", lambda r: r.specific)):
        print(f"\n{subset} questions, ", end="", file=out)
        print_differences({name: [r for r in rows if keep(r)] for name, rows in results.items()}, metrics, out)


def parse_variants(base: Settings, specs: Sequence[str]) -> dict[str, Settings]:
    """``NAME:section.key=value,section.key=value`` → named configurations (ranking settings only,
    so that every variant reads the same library)."""
    variants = {"default": base}
    for spec in specs:
        name, sep, body = spec.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"--variant {spec!r}: expected NAME:SECTION.KEY=VALUE[,SECTION.KEY=VALUE]")
        overrides = [item for item in body.split(",") if item.strip()]
        if any(item.strip().split(".")[0] not in {"search", "reranker", "sentences"} for item in overrides):
            raise ConfigError(f"--variant {spec!r}: only search.*, reranker.* and sentences.* keys can vary "
                              "within one run")
        variants[name.strip()] = apply_overrides(base, overrides)
    return variants


def run_eval(settings: Settings, args: argparse.Namespace) -> int:
    dataset: Path = args.dataset
    corpus_path, questions_path = dataset / "corpus.jsonl", dataset / "questions.jsonl"
    if not corpus_path.exists() or not questions_path.exists():
        print(f"error: {dataset} must hold corpus.jsonl and questions.jsonl", file=sys.stderr)
        return 2
    settings = apply_overrides(settings, args.set)
    variants = parse_variants(settings, args.variant)
    cache_dir = args.cache_dir or Path.home() / ".cache" / "news-answers-bot"
    drafts = load_corpus(corpus_path)
    first = question_date_bound("--questions-from", args.questions_from)
    last = question_date_bound("--questions-to", args.questions_to)
    questions = questions_between(load_questions(questions_path), first, last)[: args.limit or None]
    if not questions:
        print(f"error: no question of {questions_path} is dated within the given bounds", file=sys.stderr)
        return 2
    embedder = CachedEmbedder(Embedder(settings.embedding), cache_dir / "embeddings.sqlite3")
    loaded = load_reranker(settings.reranker)
    reranker = ScoreMemo(loaded) if loaded is not None and len(variants) > 1 else loaded
    use_dates = not args.no_dates
    store = getattr(args, "store", "embedded")
    with tempfile.TemporaryDirectory(prefix="news-eval-") as tmp, ExitStack() as stack:
        databases = None
        if store == "postgres":  # the postgres extra is imported only when asked for
            from index.stores.postgres.scratch import ScratchDatabases

            databases = stack.enter_context(ScratchDatabases(getattr(args, "postgres_dsn", None)))
        library, statuses, build_seconds = build_library(drafts, settings, embedder, Path(tmp) / "all",
                                                         reranker, databases)  # type: ignore[arg-type]
        with library:
            stats = library.stats()
            variant_searchers = searchers(library, variants)
            results = {name: evaluate(searcher, questions, use_dates) for name, searcher in variant_searchers.items()}
        unanswerable = unanswerable_results(drafts, questions, variants, embedder, reranker,  # type: ignore[arg-type]
                                            Path(tmp), use_dates=use_dates, databases=databases) \
            if args.refusals else {}
    embedder.close()
    print(f"store: {store}")
    dated = f" dated {first or '...'} to {last or '...'}" if first or last else ""
    print(f"dataset {dataset}: {len(drafts)} articles ({statuses}), {stats.passages} passages,"
          f" {len(questions)} questions{dated}")
    print(f"settings: chunking {dataclasses.asdict(settings.chunking)}; search {dataclasses.asdict(settings.search)};"
          f" reranker {dataclasses.asdict(settings.reranker) if loaded else 'off (no file)'};"
          f" sentences {dataclasses.asdict(settings.sentences)}")
    print(f"build {build_seconds:.1f} s (embedding cache: {embedder.hits} hits, {embedder.misses} misses)")
    for name, variant_results in results.items():
        if len(variants) > 1:
            changed = {f"{section}.{key}": value for section in ("search", "reranker", "sentences")
                       for key, value in dataclasses.asdict(getattr(variants[name], section)).items()
                       if value != getattr(getattr(settings, section), key)}
            print(f"\n== {name} {changed or ''}")
        times = [r.milliseconds for r in variant_results]
        p90 = statistics.quantiles(times, n=10)[-1] if len(times) > 1 else times[0]  # one question: its own time
        print(f"median question {statistics.median(times):.1f} ms, p90 {p90:.1f} ms"
              + (" (reranker scores memoised across variants: later variants look faster)"
                 if len(variants) > 1 else ""))
        print_table({"all": summarize(variant_results),
                     "specific": summarize([r for r in variant_results if r.specific])})
        if unanswerable:
            print_refusals([r for r in variant_results if r.specific], unanswerable[name], variant_searchers[name])
    if len(results) > 1:
        print_comparison(results)
    return 0
