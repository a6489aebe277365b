"""Ingest throughput end to end (read, extract, chunk, embed, store) against the bare model encode.

    .venv/bin/python benchmarks/ingest.py DATASET_DIR [--articles 200] [--format md|html|drafts]
        [--rounds 1] [--one-by-one] [--profile] [--set embedding.precision=fp32 ...]

DATASET_DIR holds corpus.jsonl (one article a line: title, text, url, published, source_domain; the
RealTimeQA set of `python -m index eval`). Its articles are text only, so to go through the real
extraction path each is first written (untimed) as a file: Markdown with YAML front matter (`md`,
the default: markdown-it and python-frontmatter, as `python -m index add FOLDER` reads it) or a
minimal HTML page (`html`: trafilatura, as a downloaded page is read); `drafts` skips extraction and
passes plain-text ArticleDrafts to Library.add_drafts. The timed ingest is
`Library.add_sources([folder])` into a fresh library in a temporary folder, the vector index flushed
at the end. Then, in the same run, exactly the passage texts the library stored (title prefix
included) are encoded by the same Embedder (same precision, same batch size) in one call: the
bare-encode throughput. With --rounds R both are measured R times alternately (a fresh library each
time) and medians are compared, which evens out load from other processes. --one-by-one also times,
in each round, an ingest that adds the files one by one (Library.add_file: each article's passages
embedded on their own, as before add_sources embedded several articles together).

Prints passages/s and tokens/s of both, their ratio (the target is >= 0.8), and where the ingest
time went (timers around extraction, chunking with its tokenising, embedding, MinHash, the SQLite
transaction, the FAISS index, the keyword postings; the rest is "other"). --profile adds a cProfile of one more ingest.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from html import escape
from pathlib import Path
from typing import Callable

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))


def load_rows(corpus: Path, count: int) -> list[dict]:
    """``count`` articles spread evenly over the corpus (it is ordered by week)."""
    with open(corpus, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    step = max(1, len(rows) // max(1, count))
    return rows[::step][:count]


def _yaml(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def write_inputs(rows: list[dict], folder: Path, fmt: str) -> None:
    folder.mkdir(parents=True)
    for number, row in enumerate(rows):
        title = (row.get("title") or "").strip() or "Untitled"
        if fmt == "md":
            head = [f"title: {_yaml(title)}"]
            for key, field in (("date", "published"), ("url", "url"), ("source", "source_domain")):
                if row.get(field):
                    head.append(f"{key}: {_yaml(str(row[field]))}")
            body = "---\n" + "\n".join(head) + "\n---\n\n" + row["text"] + "\n"
            (folder / f"{number:05d}.md").write_text(body, encoding="utf-8")
        else:
            paragraphs = "".join(f"<p>{escape(p.strip())}</p>\n" for p in row["text"].split("\n") if p.strip())
            meta = f'<meta property="article:published_time" content="{escape(row["published"])}">' \
                if row.get("published") else ""
            link = f'<link rel="canonical" href="{escape(row["url"])}">' if row.get("url") else ""
            page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>{meta}{link}"
                    f"</head><body><nav><a href='/'>Home</a> <a href='/news'>News</a></nav><article>"
                    f"<h1>{escape(title)}</h1>\n{paragraphs}</article><footer>© Example</footer></body></html>")
            (folder / f"{number:05d}.html").write_text(page, encoding="utf-8")


class Timers:
    """Seconds spent inside wrapped callables, by name (nested wrappers are counted exclusively)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list[float]] = []

    def wrap(self, name: str, function: Callable) -> Callable:
        def timed(*args, **kwargs):
            started = time.perf_counter()
            self._stack.append([0.0])
            try:
                return function(*args, **kwargs)
            finally:
                inner = self._stack.pop()[0]
                elapsed = time.perf_counter() - started
                self.seconds[name] += elapsed - inner
                self.calls[name] += 1
                if self._stack:
                    self._stack[-1][0] += elapsed
        return timed


@contextlib.contextmanager
def instrumented(library, timers: Timers):
    """Timers around the steps of an add (patched on this library's objects and the library module)."""
    import index.library as library_module

    saved_module = {name: getattr(library_module, name) for name in ("from_bytes_named", "signature")}
    library_module.from_bytes_named = timers.wrap("extract", saved_module["from_bytes_named"])
    library_module.signature = timers.wrap("minhash", saved_module["signature"])
    patches = [
        (library.chunker, "chunk", "chunk (sentences, packing)"),
        (library.chunker, "count_tokens", "chunk: tokenise"),
        (library.embedder, "embed", "embed"),
        (library.store, "save_article", "store: SQLite transaction"),
        (library.vectors, "add", "store: FAISS add"),
        (library.backend.keywords, "add", "store: keyword postings add"),
        (library.backend, "save", "store: index files save"),
        (library.near_duplicates, "find", "near-duplicate lookup"),
    ]
    for owner, attribute, name in patches:
        setattr(owner, attribute, timers.wrap(name, getattr(owner, attribute)))
    try:
        yield
    finally:
        for owner, attribute, _ in patches:
            with contextlib.suppress(AttributeError):
                delattr(owner, attribute)  # back to the class's method
        for name, function in saved_module.items():
            setattr(library_module, name, function)


def ingest(settings, embedder, rows: list[dict], inputs: Path, data_dir: Path, fmt: str, one_by_one: bool = False,
           timers: Timers | None = None, profiler: cProfile.Profile | None = None):
    """Add the inputs to a fresh library: (seconds, CPU seconds, statuses, stored passage texts)."""
    from index.articles import ArticleDraft, parse_date
    from index.library import Library, expand_sources

    library = Library(settings.replace("library", data_dir=data_dir), embedder=embedder, reranker=False)
    statuses: dict[str, int] = defaultdict(int)
    with library, instrumented(library, timers) if timers else contextlib.nullcontext():
        drafts = [ArticleDraft(title=(r.get("title") or "").strip() or "Untitled", text=r["text"], url=r.get("url"),
                               published=parse_date(r.get("published")), source=r.get("source_domain"))
                  for r in rows] if fmt == "drafts" else []
        if profiler:
            profiler.enable()
        started, cpu = time.perf_counter(), time.process_time()
        if one_by_one:  # each article embedded on its own, as add_draft / add_file do
            if fmt == "drafts":
                results = [library.add_draft(draft) for draft in drafts]
            else:
                results = [library.add_file(Path(item)) for item in expand_sources([str(inputs)])]
            library.flush()
        elif fmt == "drafts":
            results = list(library.add_drafts(drafts))  # flushes the index at the end
        else:
            results = list(library.add_sources([str(inputs)]))  # flushes the index at the end
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        if profiler:
            profiler.disable()
        for result in results:
            statuses[result.status] += 1
        ids = sorted(int(i) for i in library.store.passage_ids())
        stored = library.store.passage_bodies(ids)
        bodies = [stored[i] for i in ids]
    return seconds, cpu, dict(statuses), bodies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="a folder holding corpus.jsonl")
    parser.add_argument("--articles", type=int, default=200)
    parser.add_argument("--format", choices=("md", "html", "drafts"), default="md")
    parser.add_argument("--rounds", type=int, default=1, help="ingest and bare encode alternately, R times each")
    parser.add_argument("--one-by-one", action="store_true",
                        help="also ingest article by article (add_file / add_draft: one embedding call each)")
    parser.add_argument("--profile", action="store_true", help="also cProfile one more ingest (top 25)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args()

    from index.config import load_settings
    from index.embedding.embedder import Embedder
    from index.eval.evaluate import apply_overrides

    corpus = args.dataset / "corpus.jsonl"
    if not corpus.exists():
        print(f"error: {corpus} does not exist", file=sys.stderr)
        return 2
    settings = apply_overrides(load_settings(), args.set)
    rows = load_rows(corpus, args.articles)
    embedder = Embedder(settings.embedding)
    embedder.embed(["warm-up: the first call pays for lazy initialisation"] * 4)
    import torch

    from index.library import ADD_BATCH_PASSAGES

    print(f"{len(rows)} articles of {corpus} as {args.format}; model {embedder.name}, precision {embedder.precision},"
          f" batch_size {settings.embedding.batch_size}, torch threads {torch.get_num_threads()},"
          f" passages embedded together when adding many: {ADD_BATCH_PASSAGES}")
    modes = ["batched"] + (["one-by-one"] if args.one_by_one else [])
    wall: dict[str, list[float]] = {mode: [] for mode in modes + ["bare encode"]}
    cpu: dict[str, list[float]] = {mode: [] for mode in modes + ["bare encode"]}
    timers = {mode: Timers() for mode in modes}
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        work = Path(tmp)
        inputs = work / "in"
        if args.format != "drafts":
            write_inputs(rows, inputs, args.format)
        bodies: list[str] = []
        for number in range(args.rounds):
            line = []
            for mode in modes:
                seconds, cpu_seconds, statuses, stored = ingest(
                    settings, embedder, rows, inputs, work / f"data-{mode}-{number}", args.format,
                    one_by_one=mode == "one-by-one", timers=timers[mode] if number == 0 else None)
                if bodies and stored != bodies:
                    print(f"warning: the {mode} ingest stored other passages ({len(stored)} vs {len(bodies)})")
                bodies = bodies or stored
                wall[mode].append(seconds)
                cpu[mode].append(cpu_seconds)
                line.append(f"{mode} ingest {seconds:.2f} s ({statuses})")
            started, cpu_started = time.perf_counter(), time.process_time()
            embedder.embed(bodies)
            wall["bare encode"].append(time.perf_counter() - started)
            cpu["bare encode"].append(time.process_time() - cpu_started)
            print(f"round {number + 1}: " + ", ".join(line) + f", bare encode {wall['bare encode'][-1]:.2f} s",
                  flush=True)
        tokens = sum(embedder.count_tokens(bodies)) + 2 * len(bodies)  # with [CLS] and [SEP]
        print(f"\n{len(bodies)} passages, {tokens} tokens (with [CLS]/[SEP]); medians of {args.rounds} round(s)")
        print(f"{'':<24}{'seconds':>9}{'passages/s':>12}{'tokens/s':>10}{'articles/s':>12}"
              f"{'ratio to bare':>15}{'CPU s':>8}{'CPU ratio':>11}")
        encode_s, encode_cpu = statistics.median(wall["bare encode"]), statistics.median(cpu["bare encode"])
        for mode in modes + ["bare encode"]:
            value, cpu_value = statistics.median(wall[mode]), statistics.median(cpu[mode])
            name = mode if mode == "bare encode" else f"ingest ({mode})"
            print(f"{name:<24}{value:>9.2f}{len(bodies) / value:>12.1f}{tokens / value:>10.0f}{len(rows) / value:>12.2f}"
                  f"{encode_s / value:>15.3f}{cpu_value:>8.2f}{encode_cpu / cpu_value:>11.3f}")
        print("ratio to bare = bare-encode seconds / ingest seconds = ingest passages/s over bare passages/s"
              " (target >= 0.8); CPU ratio: the same in this process's CPU seconds (less sensitive to load from"
              " other processes)")

        for mode in modes:
            total = wall[mode][0]
            print(f"\nwhere round 1's {mode} ingest time went ({total:.2f} s):")
            accounted = 0.0
            for name, value in sorted(timers[mode].seconds.items(), key=lambda item: -item[1]):
                accounted += value
                print(f"  {name:<30}{value:>8.2f} s{100 * value / total:>7.1f}%  ({timers[mode].calls[name]} calls)")
            print(f"  {'other (reading files, locks...)':<30}{total - accounted:>8.2f} s"
                  f"{100 * (total - accounted) / total:>7.1f}%")

        if args.profile:
            profiler = cProfile.Profile()
            ingest(settings, embedder, rows, inputs, work / "data-profile", args.format, profiler=profiler)
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
            print("\ncProfile of one more (batched) ingest, cumulative:")
            print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
