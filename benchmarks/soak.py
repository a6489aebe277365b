"""Soak: many questions from many users, with adds and removes, watching the bot's memory and files.

    .venv/bin/python benchmarks/soak.py [--questions 1000] [--users 50] [--wave 50]

Runs the real bot (`python -m bot`) on the sample articles against the tests' Bot API emulator on
127.0.0.1. Questions go out in waves of ``--wave`` (one per user); after every wave an admin adds an
article, and after every other wave removes one added earlier. After each wave it reads the bot's
resident memory (VmRSS) and open file descriptors from /proc. Prints the figures at the start (after a
warm-up wave), at the end and at their highest, with the replies counted and the elapsed time.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import time
from contextlib import closing
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

ADMIN = 111
TOPICS = "harbour ferry orchard museum bridge railway library festival clinic market stadium forest".split()


def open_files(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def article(number: int) -> str:
    rng = random.Random(number)
    place = f"Soakton{number}"
    sentences = [f"The {rng.choice(TOPICS)} of {place} reported {rng.randint(2, 900)} visitors on day "
                 f"{rng.randint(1, 28)}." for _ in range(12)]
    return f"News from {place}\n" + " ".join(sentences)


def article_id(data_dir: Path, title: str) -> int:
    with closing(sqlite3.connect(data_dir / "library.sqlite3")) as db:
        return int(db.execute("SELECT id FROM articles WHERE title = ?", (title,)).fetchone()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--wave", type=int, default=50)
    args = parser.parse_args()

    from tests.support.bot_runner import SAMPLE_QUESTIONS, resident_mb, sample_bot

    with sample_bot("soak-", {"NEWSBOT_ADMIN_IDS": str(ADMIN)}) as bot:
        server, pid = bot.server, bot.process.pid
        asked = answered = adds = removes = 0
        added_ids: list[int] = []
        samples: list[tuple[float, int]] = []
        wave_seconds: list[float] = []
        started = time.monotonic()
        wave_number = 0
        while asked < args.questions + args.wave:  # the first wave warms up
            wave_started = time.monotonic()
            chats = []
            for user in range(min(args.wave, args.users)):
                chat = 60_000 + (asked % args.users)
                server.send_text(chat, SAMPLE_QUESTIONS[asked % len(SAMPLE_QUESTIONS)])
                chats.append(chat)
                asked += 1
            for chat in chats:
                answered += len(server.wait_for_messages(chat, timeout=300))
            [reply] = bot.ask(ADMIN, "/add " + article(wave_number), user_id=ADMIN)
            if "✅ Added" in reply["text"]:
                adds += 1
                added_ids.append(article_id(bot.data_dir, f"News from Soakton{wave_number}"))
            if wave_number % 2 == 1 and added_ids:
                [removed] = bot.ask(ADMIN, f"/remove {added_ids.pop(0)}", user_id=ADMIN)
                removes += removed["text"].startswith("Removed")
            wave_seconds.append(time.monotonic() - wave_started)
            samples.append((resident_mb(pid), open_files(pid)))
            wave_number += 1
        elapsed = time.monotonic() - started
        alive = bot.process.poll() is None
    start, end = samples[0], samples[-1]
    print(f"questions asked {asked} ({args.wave} of them a warm-up), replies {answered}, adds {adds}, "
          f"removes {removes}, {elapsed:.0f} s, median wave of {args.wave} questions {statistics.median(wave_seconds):.1f} s")
    print(f"resident memory MB: after warm-up {start[0]:.0f}, end {end[0]:.0f}, highest {max(s[0] for s in samples):.0f}"
          f" (end/start {end[0] / start[0]:.2f})")
    print(f"open file descriptors: after warm-up {start[1]}, end {end[1]}, highest {max(s[1] for s in samples)}")
    print(f"bot still running: {alive}")
    return 0 if alive and answered >= asked else 1


if __name__ == "__main__":
    sys.exit(main())
