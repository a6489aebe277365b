"""Kill -9 an ingesting process at random moments and check the library after every restart.

    .venv/bin/python benchmarks/crash_safety.py --kills 100 [--data-dir DIR] [--seed N]

A child process opens a library and adds generated articles one after another, printing each one's
code word once ``add_draft`` has returned (the moment an admin would be told "added"). The parent
kills it with SIGKILL after a random delay, then opens the library itself and checks:
- the SQLite database passes ``PRAGMA integrity_check``;
- every article reported added is there: the keyword index finds its code word, all its passages are
  in the FAISS index, and a question about it gets answers;
- nothing is half-added: every article has passages, every passage a stored vector;
- the FAISS index holds exactly SQLite's passages, with the same vectors.
Prints one line per kill and a summary; exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

WORDS = ("harbour council budget river bridge museum festival library railway market school clinic "
         "election ferry storm vaccine orchestra stadium airport factory harvest forest").split()


def article_text(number: int, rng: random.Random) -> tuple[str, str, str]:
    """(title, text, code word) for a generated article long enough to make several passages."""
    code = f"zq{number:05d}x"
    sentences = [f"The {rng.choice(WORDS)} of town {number} reported {rng.randint(2, 900)} new "
                 f"{rng.choice(WORDS)} plans on day {rng.randint(1, 28)}." for _ in range(rng.randint(20, 60))]
    sentences.insert(rng.randrange(len(sentences)), f"Officials named the project {code} at the meeting.")
    return f"Report {number} on the {rng.choice(WORDS)}", " ".join(sentences), code


def child(data_dir: Path, start: int, seed: int) -> None:
    """Add articles forever, announcing each completed add on stdout."""
    from index.articles import ArticleDraft
    from index.config import load_settings
    from index.library import Library

    settings = load_settings(environ={}).replace("library", data_dir=data_dir, index_save_seconds=0.5)
    rng = random.Random(seed)
    with Library(settings, reranker=None) as library:
        print("ready", flush=True)
        number = start
        while True:
            title, text, code = article_text(number, rng)
            result = library.add_draft(ArticleDraft(title=title, text=text), added_by="soak")
            if result.status == "added":
                print(f"added {code}", flush=True)
            number += 1


def check(data_dir: Path, completed: list[str], recent: list[str], embedder) -> list[str]:
    """Problems found in the library after a crash (empty when all is well)."""
    from index.config import load_settings
    from index.library import Library
    from index.stores.embedded.directory import DATABASE_FILE
    from index.stores.embedded.fts_reference import lexical_search

    problems = []
    with closing(sqlite3.connect(data_dir / DATABASE_FILE)) as db:
        verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            problems.append(f"integrity_check: {verdict}")
    settings = load_settings(environ={}).replace("library", data_dir=data_dir)
    with Library(settings, embedder=embedder, reranker=None) as library:
        store = library.store
        empty = store.query("SELECT a.id FROM articles a LEFT JOIN passages p ON p.article_id = a.id "
                            "WHERE p.id IS NULL")
        if empty:
            problems.append(f"articles without passages: {[row[0] for row in empty][:5]}")
        ids = store.passage_ids()
        stored_ids, matrix, lacking = store.vectors(ids, embedder.dimension)
        if lacking:
            problems.append(f"{len(lacking)} passages without a stored vector")
        if not np.array_equal(np.sort(library.vectors.ids()), np.sort(ids)):
            problems.append(f"FAISS holds {len(library.vectors)} ids, SQLite {len(ids)} passages")
        elif len(stored_ids) and library.vectors.exact and not np.allclose(
                library.vectors.reconstruct(list(stored_ids)), matrix, atol=1e-6):
            problems.append("FAISS vectors differ from SQLite's")
        in_faiss = set(library.vectors.ids().tolist())
        for code in completed:
            keyword = lexical_search(store, code, 5)
            found = [row for row in store.get_passages([pid for pid, _ in keyword]).values() if code in row.text]
            if not found:
                problems.append(f"{code} reported added but not found by keyword")
                continue
            article_passages = store.query("SELECT id FROM passages WHERE article_id = ?", (found[0].article_id,))
            if any(row[0] not in in_faiss for row in article_passages):
                problems.append(f"{code} reported added but some of its passages are missing from FAISS")
        for code in recent:  # a whole search for the latest ones (all of them each time grows quadratically)
            if not library.search(f"Which project was named {code}?", limit=10).hits:
                problems.append(f"a search for {code} found nothing")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--data-dir", type=Path, help="default: a temporary folder")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-delay", type=float, default=3.0, help="longest wait after 'ready' before the kill")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.data_dir, args.start, args.seed)
        return 0

    from index.config import load_settings
    from index.embedding.embedder import Embedder

    embedder = Embedder(load_settings(environ={}).embedding)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="crash-safety-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        completed: list[str] = []
        failures = 0
        next_number = 0
        started = time.monotonic()
        for kill in range(1, args.kills + 1):
            process = subprocess.Popen(
                [sys.executable, __file__, "--child", "--data-dir", str(data_dir), "--start", str(next_number),
                 "--seed", str(rng.randrange(1 << 30))],
                stdout=subprocess.PIPE, text=True, cwd=PROJECT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                process.kill()
                print(f"kill {kill}: the child did not start", flush=True)
                return 1
            time.sleep(rng.uniform(0.05, args.max_delay))
            process.send_signal(signal.SIGKILL)
            added_now = [line.split()[1] for line in process.stdout.read().splitlines() if line.startswith("added ")]
            process.wait()
            completed += added_now
            next_number += 10_000  # fresh numbers: an add cut short may be retried by a later child
            problems = check(data_dir, completed, added_now, embedder)
            failures += bool(problems)
            print(f"kill {kill}: {len(added_now)} adds reported before the kill, {len(completed)} in all; "
                  + ("OK" if not problems else "PROBLEMS: " + "; ".join(problems)), flush=True)
        print(f"survived {args.kills - failures}/{args.kills} kills with every check passing; "
              f"{len(completed)} articles reported added, all verified; {time.monotonic() - started:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
