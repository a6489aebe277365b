"""Reranker cost per question: milliseconds to score N candidate passages, per precision.

    .venv/bin/python benchmarks/rerank_latency.py MODEL.safetensors [--candidates 10 20 30 50] [--repeat 15]

Passages are the shipped sample articles' passages (192-token windows with their titles), the question
a typical news question. Prints medians and each precision's ratio to fp32, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

QUESTION = "What did the UN Security Council threaten after the missile test?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a reranker file written by python -m index train-reranker")
    parser.add_argument("--candidates", type=int, nargs="+", default=[10, 20, 30, 50])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8"])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    from index.config import RerankerSettings, load_settings
    from index.library import Library
    from index.samples import sample_paths
    from index.search.reranker import load_reranker, passage_input

    settings = load_settings(environ={})
    with tempfile.TemporaryDirectory() as tmp:
        with Library(settings.replace("library", data_dir=Path(tmp)), reranker=None) as library:
            list(library.add_sources([str(p) for p in sample_paths()]))
            rows = library.store.get_passages(list(library.store.passage_ids()))
            titles = {a.id: a.title for a in library.store.get_articles([r.article_id for r in rows.values()]).values()}
            passages = [passage_input(titles[r.article_id], r.text) for r in rows.values()]
    while len(passages) < max(args.candidates):
        passages += passages
    print(f"{len(rows)} sample passages; question: {QUESTION!r}; {args.repeat} runs each, medians")
    header = f"{'candidates':>10}" + "".join(f"{p + ' ms':>12}" for p in args.precisions)
    print(header + "".join(f"{p + '/fp32':>12}" for p in args.precisions if p != "fp32"))
    models = {p: load_reranker(RerankerSettings(model=args.model, precision=p)) for p in args.precisions}
    if any(m is None for m in models.values()):
        print(f"{args.model} is missing or not a reranker file", file=sys.stderr)
        return 2
    for n in args.candidates:
        batch = passages[:n]
        medians = {}
        for precision, model in models.items():
            model.score(QUESTION, batch)  # warm-up
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                model.score(QUESTION, batch)
                times.append((time.perf_counter() - started) * 1000)
            medians[precision] = statistics.median(times)
        line = f"{n:>10}" + "".join(f"{medians[p]:>12.1f}" for p in args.precisions)
        if "fp32" in medians:
            line += "".join(f"{medians[p] / medians['fp32']:>12.2f}" for p in args.precisions if p != "fp32")
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
