"""Questions asked while the Bot API misbehaves: how many get exactly one reply.

    .venv/bin/python benchmarks/telegram_faults.py [--questions 500] [--users 50] [--rate 0.2]

Runs the real bot (`python -m bot`) on the sample articles against the tests' Bot API emulator on
127.0.0.1, which answers a share ``--rate`` of sendMessage, sendChatAction, editMessageText and
getUpdates calls with a 429, a 502, a slow answer or a dropped connection. Prints how many questions
got exactly one reply, duplicates, losses, failures the bot logged, the faults injected, and whether
the bot was still running.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from tests.support.bot_runner import ask_under_faults, sample_bot

    with sample_bot("telegram-faults-", {}) as bot:
        report = ask_under_faults(bot, args.questions, args.users, args.rate, args.seed,
                                  settle_seconds=max(240.0, args.questions * 2.0))
    for key, value in asdict(report).items():
        print(f"{key:>16}: {value:.1f}" if isinstance(value, float) else f"{key:>16}: {value}")
    ok = report.bot_alive and report.duplicated == 0 and \
        report.answered_once + report.failures_logged >= report.questions
    print("every question got exactly one reply or a logged failure" if ok else "SOME QUESTIONS WERE MISHANDLED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
