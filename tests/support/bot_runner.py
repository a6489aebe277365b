"""Start the real bot (`python -m bot`) against the Bot API emulator on 127.0.0.1, and stop both."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tests.support.balancer import RoundRobinBalancer
from tests.support.botapi import BotApiServer

PROJECT = Path(__file__).resolve().parents[2]


def resident_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory in MB, read from /proc: now (VmRSS), or at its highest (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stop_bot(process: subprocess.Popen) -> None:
    """Interrupt the bot as Ctrl-C would; kill it if it has not exited within 30 s."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class RunningBot:
    def __init__(self, server: BotApiServer, process: subprocess.Popen, log_path: Path) -> None:
        self.server = server
        self.process = process
        self.log_path = log_path

    @property
    def data_dir(self) -> Path:
        """The library the bot serves (``running_bot`` keeps it beside the log)."""
        return self.log_path.parent / "data"

    def ask(self, chat_id: int, text: str, **kwargs) -> list[dict]:
        self.server.send_text(chat_id, text, **kwargs)
        return self.server.wait_for_messages(chat_id, timeout=60)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def add_sample_articles(data_dir: Path) -> None:
    """Put the project's sample articles in a new library (for scripts; tests copy a fixture's)."""
    from index.config import load_settings
    from index.library import Library
    from index.samples import sample_paths

    settings = load_settings(environ={}).replace("library", data_dir=data_dir)
    with Library(settings, reranker=None) as library:
        list(library.add_sources([str(p) for p in sample_paths()]))


@contextmanager
def sample_bot(prefix: str, env: dict[str, str]) -> Iterator[RunningBot]:
    """The bot on a new library of the sample articles in a throwaway folder (for benchmark scripts)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        add_sample_articles(work / "data")
        with running_bot(work, env) as bot:
            yield bot


@contextmanager
def running_bot(work: Path, env: dict[str, str]) -> Iterator[RunningBot]:
    """The bot on the library in ``work/data``, logging to ``work/bot.log``, with extra ``env``."""
    server = BotApiServer().start()
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "HF_HUB_OFFLINE": "1",
        "TELEGRAM_BOT_TOKEN": server.token,
        "TELEGRAM_API_BASE_URL": server.base_url,
        "NEWSBOT_DATA_DIR": str(work / "data"),
        "NEWSBOT_BOT_POLL_TIMEOUT": "1",
        **env,
    }
    log_path = work / "bot.log"
    with open(log_path, "w") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "bot", "--verbose"], cwd=PROJECT, env=environment,
                                   stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            server.wait_for_call("getUpdates", timeout=180)
            yield RunningBot(server, process, log_path)
        finally:
            stop_bot(process)
            server.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def replica_env(server: BotApiServer, home: Path, dsn: str, port: int, public_url: str,
                admin_ids: str = "") -> dict[str, str]:
    """The environment of one bot replica: webhook mode on ``port``, the PostgreSQL library ``dsn``."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "HF_HUB_OFFLINE": "1",
            "TELEGRAM_BOT_TOKEN": server.token, "TELEGRAM_API_BASE_URL": server.base_url,
            "NEWSBOT_LIBRARY_STORE": "postgres", "NEWSBOT_POSTGRES_DSN": dsn, "NEWSBOT_DATA_DIR": str(home / "data"),
            "NEWSBOT_ADMIN_IDS": admin_ids, "NEWSBOT_BOT_MODE": "webhook", "NEWSBOT_BOT_WEBHOOK_LISTEN": "127.0.0.1",
            "NEWSBOT_BOT_WEBHOOK_PORT": str(port), "NEWSBOT_BOT_WEBHOOK_URL": public_url}


def start_replica(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """``python -m bot`` with ``env``, logging to ``log_path`` (stop it with ``stop_bot``)."""
    Path(env["HOME"]).mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log_file:
        return subprocess.Popen([sys.executable, "-m", "bot", "--verbose"], cwd=PROJECT, env=env, stdout=log_file,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def start_replicas(stack: ExitStack, server: BotApiServer, work: Path, dsn: str, admin_ids: str = "",
                   count: int = 2) -> tuple[RoundRobinBalancer, list[subprocess.Popen]]:
    """``count`` bot replicas on the PostgreSQL library ``dsn``, in webhook mode behind a round-robin
    balancer that the emulator ``server`` posts to; they are stopped when ``stack`` closes. Returns once
    every replica listens and has set the webhook."""
    ports = [free_port() for _ in range(count)]
    balancer = stack.enter_context(RoundRobinBalancer([("127.0.0.1", port) for port in ports]))
    replicas: list[subprocess.Popen] = []
    for number, port in enumerate(ports):
        env = replica_env(server, work / f"replica{number}", dsn, port, balancer.url, admin_ids)
        process = start_replica(env, work / f"replica{number}.log")
        stack.callback(stop_bot, process)
        replicas.append(process)
    for port, process in zip(ports, replicas):
        wait_listening(port, process)
    server.wait_until(lambda: len(server.calls_of("setWebhook")) >= count or None, timeout=60,
                      describe=lambda: "every replica set the webhook")
    return balancer, replicas


def wait_listening(port: int, process: subprocess.Popen, timeout: float = 180.0) -> None:
    """Wait until a replica's webhook server accepts connections; fail at once if the replica exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the bot exited during start-up (code {process.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"no bot listening on port {port} after {timeout:.0f} s")


SAMPLE_QUESTIONS = (
    "what did the UN Security Council say?",
    "Where did the Perseverance rover land?",
    "Who released ChatGPT?",
    "What did the council threaten if the launches continue?",
    "When did the rover touch down on Mars?",
)


@dataclass
class FaultReport:
    """What became of questions asked while the Bot API misbehaved."""

    questions: int
    answered_once: int
    duplicated: int
    unanswered: int
    failures_logged: int
    faults: dict[str, int]
    seconds: float
    bot_alive: bool


def ask_under_faults(bot: RunningBot, questions: int, users: int, rate: float, seed: int = 1,
                     settle_seconds: float = 240.0, first_chat: int = 70_000) -> FaultReport:
    """Ask ``questions`` questions from ``users`` private chats at once while a share ``rate`` of the
    bot's calls fail (429, 5xx, slow answers, dropped connections), then count the replies to each."""
    server = bot.server
    log_before = bot.log().count("failed after")
    server.set_chaos(rate, seed=seed)
    started = time.monotonic()
    asked: list[tuple[int, int]] = []  # (chat, message id)
    try:
        for number in range(questions):
            chat = first_chat + number % users
            message = server.send_text(chat, SAMPLE_QUESTIONS[number % len(SAMPLE_QUESTIONS)])
            asked.append((chat, message["message_id"]))

        def replies_to(chat: int, message_id: int) -> int:
            return sum(1 for m in server.messages(chat)
                       if (m.get("reply_to_message") or {}).get("message_id") == message_id)

        def settled() -> bool:
            failures = bot.log().count("failed after") - log_before
            return sum(replies_to(c, m) > 0 for c, m in asked) + failures >= len(asked)

        deadline = time.monotonic() + settle_seconds
        while not settled() and time.monotonic() < deadline and bot.process.poll() is None:
            time.sleep(0.5)
    finally:
        faults = server.chaos_counts
        server.set_chaos(0)
    seconds = time.monotonic() - started
    time.sleep(3)  # a late duplicate would show up now
    counts = [replies_to(c, m) for c, m in asked]
    return FaultReport(questions=len(asked), answered_once=sum(n == 1 for n in counts),
                       duplicated=sum(n > 1 for n in counts), unanswered=sum(n == 0 for n in counts),
                       failures_logged=bot.log().count("failed after") - log_before, faults=faults,
                       seconds=seconds, bot_alive=bot.process.poll() is None)
