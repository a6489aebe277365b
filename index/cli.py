"""Command line: python -m index add|list|remove|search|stats|insights|feed|backup|restore|migrate|eval|
eval-dialogues|mine-negatives|train-reranker|train-sentence-scorer."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import textwrap
from pathlib import Path

from index.activity.command import add_arguments as add_insights_arguments
from index.activity.command import recording_adds, run_insights
from index.articles import parse_date
from index.config import LIBRARY_STORES, Settings, load_settings
from index.errors import BackupError, ConfigError, IngestError, LibraryBusy, LibraryUnavailable
from index.ingest.addresses import without_credentials, without_userinfo_in_host
from index.ingest.feeds import Feed, FeedPoller, PollReport
from index.inputs import count_argument, id_argument, offset_argument
from index.library import AddResult, Library
from index.samples import sample_paths


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m index", description="Manage and search the article library.")
    parser.add_argument("--config", type=Path, help="config file (default: config.toml or $NEWSBOT_CONFIG)")
    parser.add_argument("--data-dir", type=Path, help="data directory (overrides the config)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    commands = parser.add_subparsers(dest="command", required=True)

    add = commands.add_parser("add", help="add files, folders or URLs (or --text)")
    add.add_argument("sources", nargs="*", help="paths (.txt, .md, .html, .pdf), folders, or http(s) URLs")
    add.add_argument("--text", help="article text to add; its first line is the title unless --title is given")
    add.add_argument("--title")
    add.add_argument("--url")
    add.add_argument("--date", help="publication date, YYYY-MM-DD")
    add.add_argument("--source", dest="source_name", help="publication or site name")
    add.add_argument("--samples", action="store_true", help="add the project's sample articles")

    listing = commands.add_parser("list", help="list articles, newest first")
    listing.add_argument("--offset", type=offset_argument, default=0)
    listing.add_argument("--limit", type=count_argument, default=20)

    remove = commands.add_parser("remove", help="remove articles by id")
    remove.add_argument("ids", nargs="+", type=id_argument)

    search = commands.add_parser("search", help="answer a question from the articles")
    search.add_argument("question")
    search.add_argument("-k", type=count_argument, help="passages to show")
    search.add_argument("--date", help="the question's date for the recency prior (default: today)")

    commands.add_parser("stats", help="counts and sizes")

    insights = commands.add_parser("insights", help="what readers asked the bot, and the open questions")
    add_insights_arguments(insights)

    backup = commands.add_parser("backup", help="copy the library into a new folder (safe while the bot runs)")
    backup.add_argument("path", type=Path)
    restore = commands.add_parser("restore", help="replace the library with a backup")
    restore.add_argument("path", type=Path)

    migrate = commands.add_parser("migrate", help="copy the whole library, vectors included, between the embedded "
                                                  "store and PostgreSQL")
    migrate.add_argument("--from", dest="source", choices=LIBRARY_STORES, required=True, help="the store to copy")
    migrate.add_argument("--to", dest="target", choices=LIBRARY_STORES, required=True, help="the store to fill")
    migrate.add_argument("--data-dir", dest="migrate_data_dir", type=Path,
                         help="the embedded library's folder (default: library.data_dir)")
    migrate.add_argument("--dsn", help="the PostgreSQL library (default: postgres.dsn or NEWSBOT_POSTGRES_DSN)")
    migrate.add_argument("--replace", action="store_true", help="empty a target that already holds a library first")
    migrate.add_argument("--index-memory", metavar="SIZE",
                         help="PostgreSQL target: maintenance_work_mem for building the HNSW index, e.g. 2GB "
                              "(default: the server's; a graph that outgrows it builds much more slowly)")

    feed = commands.add_parser("feed", help="RSS/Atom subscriptions")
    feed_commands = feed.add_subparsers(dest="feed_command", required=True)
    feed_add = feed_commands.add_parser("add", help="subscribe to a feed and add its current entries")
    feed_add.add_argument("url")
    feed_commands.add_parser("list", help="subscribed feeds and their state")
    feed_remove = feed_commands.add_parser("remove", help="unsubscribe (the articles stay)")
    feed_remove.add_argument("id", type=id_argument)
    feed_poll = feed_commands.add_parser("poll", help="poll the feeds that are due")
    feed_poll.add_argument("--all", action="store_true", help="poll every feed now")

    evaluate = commands.add_parser("eval", help="answer-recall of a QA set (a benchmark, not a test)")
    evaluate.add_argument("dataset", type=Path, help="folder with corpus.jsonl and questions.jsonl")
    evaluate.add_argument("--cache-dir", type=Path, help="where embeddings are cached between runs")
    evaluate.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                          help="override a setting for this run (repeatable), e.g. --set chunking.max_tokens=96")
    evaluate.add_argument("--variant", action="append", default=[], metavar="NAME:SECTION.KEY=VALUE[,...]",
                          help="also evaluate this ranking configuration on the same library (repeatable), e.g. "
                               "--variant 'no-rerank:reranker.candidates=0'")
    evaluate.add_argument("--limit", type=count_argument, help="evaluate only the first N questions")
    evaluate.add_argument("--no-dates", action="store_true", help="ask every question as of today")
    evaluate.add_argument("--questions-from", metavar="DATE",
                          help="evaluate only the questions dated on or after DATE (the library stays whole)")
    evaluate.add_argument("--questions-to", metavar="DATE",
                          help="evaluate only the questions dated on or before DATE (the library stays whole)")
    evaluate.add_argument("--refusals", action="store_true",
                          help="also ask the specific questions with their answers removed from the corpus, and "
                               "show how the refusal threshold trades precision against wrong refusals")
    evaluate.add_argument("--store", choices=("embedded", "postgres"), default="embedded",
                          help="the store the scratch library is built in (postgres: a new database, dropped after)")
    evaluate.add_argument("--postgres-dsn", metavar="DSN",
                          help="with --store postgres: a server where the scratch databases may be created "
                               "(default: the bundled server of the test extra, started for the run)")
    dialogues = commands.add_parser("eval-dialogues", help="answer-recall of follow-up questions (a benchmark)")
    from index.eval.dialogues import add_arguments as add_dialogue_arguments

    add_dialogue_arguments(dialogues)
    mining = commands.add_parser("mine-negatives",
                                 help="run the hybrid search over SQuAD, for the rerankers' hard negatives (slow)")
    from index.search.mine_negatives import add_arguments as add_mining_arguments

    add_mining_arguments(mining)
    train = commands.add_parser("train-reranker", help="fine-tune the cross-encoder reranker on SQuAD (slow)")
    from index.search.train_reranker import add_arguments

    add_arguments(train)
    sentence_training = commands.add_parser(
        "train-sentence-scorer", help="fine-tune the answer-sentence scorer on SQuAD (slow)")
    from index.search.train_sentence_scorer import add_arguments as add_sentence_arguments

    add_sentence_arguments(sentence_training)
    return parser


def _print_result(result: AddResult) -> None:
    marks = {"added": "+", "replaced": "~", "duplicate": "=", "failed": "!"}
    article = f" #{result.article.id}" if result.article and result.status != "failed" else ""
    print(f"{marks[result.status]} {result.source}{article}: {result.message}")


def _cmd_add(library: Library, args: argparse.Namespace) -> int:
    results: list[AddResult] = []
    if args.text is not None:
        results.append(library.add_text(args.text, title=args.title, url=args.url, published=args.date,
                                        source_name=args.source_name))
        _print_result(results[-1])
    sources = list(args.sources) + ([str(p) for p in sample_paths()] if args.samples else [])
    if not sources and args.text is None:
        print("Nothing to add: name files, folders or URLs, or use --text or --samples.", file=sys.stderr)
        return 2
    for result in library.add_sources(sources, progress=sys.stderr.isatty()):
        results.append(result)
        _print_result(result)
    counts = {status: sum(r.status == status for r in results)
              for status in ("added", "replaced", "duplicate", "failed")}
    print(", ".join(f"{n} {status}" for status, n in counts.items() if n) or "nothing done")
    return 1 if counts["failed"] else 0


def _cmd_list(library: Library, args: argparse.Namespace) -> int:
    articles = library.list_articles(args.offset, args.limit)
    total = library.count_articles()
    if not articles:
        print("No articles." if total == 0 else f"No articles at offset {args.offset} (there are {total}).")
        return 0
    for article in articles:
        when = article.published.isoformat() if article.published else "undated"
        source = f" [{without_userinfo_in_host(article.source)}]" if article.source else ""
        print(f"#{article.id:<5} {when:<10} {article.title}{source} ({article.passage_count} passages)")
        if article.url:
            print(f"       {without_credentials(article.url)}")
    print(f"{args.offset + 1}-{args.offset + len(articles)} of {total}")
    return 0


def _cmd_remove(library: Library, args: argparse.Namespace) -> int:
    failed = 0
    for article_id in args.ids:
        article = library.remove(article_id)
        if article is None:
            print(f"! #{article_id}: no such article", file=sys.stderr)
            failed += 1
        else:
            print(f"- #{article_id}: removed “{article.title}” ({article.passage_count} passages)")
    return 1 if failed else 0


def _cmd_search(library: Library, args: argparse.Namespace) -> int:
    question = args.question.strip()
    if not question:
        print("The question is empty.", file=sys.stderr)
        return 2
    now = parse_date(args.date) if args.date else None
    k = args.k or library.settings.search.k
    answer = library.search(question, k=k, now=now, limit=k)
    if not answer.answered:
        closest = answer.closest
        hint = f" The closest article is “{closest.title}”." if closest else ""
        print(f"Not in my articles.{hint}")
        return 0
    for rank, hit in enumerate(answer.hits, 1):
        article = hit.article
        when = article.published.isoformat() if article.published else "undated"
        shown_source = without_userinfo_in_host(article.source) if article.source else "unknown source"
        print(f"{rank}. {article.title} — {shown_source}, {when} (#{article.id},"
              f" score {hit.score:.4f}, cosine {hit.dense_score:.2f})")
        if article.url:
            print(f"   {without_credentials(article.url)}")
        if hit.best_sentence_text:
            print(textwrap.fill(f">> {hit.best_sentence_text}", width=100, initial_indent="   ",
                                subsequent_indent="      "))
        print(textwrap.fill(hit.text, width=100, initial_indent="   ", subsequent_indent="   "))
        print()
    return 0


def _cmd_stats(library: Library, args: argparse.Namespace) -> int:
    s = library.stats()
    print(f"{'data directory:' if s.store == 'embedded' else 'store:':<16}{s.location}")
    print(f"articles:       {s.articles}")
    print(f"passages:       {s.passages} ({s.vectors} vectors)")
    print(f"newest article: {s.newest.isoformat() if s.newest else '-'}")
    print(f"database:       {s.database_bytes / 1e6:.2f} MB")
    print(f"search indexes: {s.index_bytes / 1e6:.2f} MB")
    print(f"model:          {s.model}")
    return 0


def _cmd_backup(library: Library, args: argparse.Namespace) -> int:
    target = library.backup(args.path)
    print(f"backed up {library.count_articles()} articles to {target}")
    return 0


def _cmd_restore(library: Library, args: argparse.Namespace) -> int:
    stats = library.restore(args.path)
    print(f"restored {stats.articles} articles ({stats.passages} passages) from {args.path}")
    return 0


def _print_feed(feed: Feed) -> None:
    checked = feed.last_checked.isoformat(timespec="minutes") if feed.last_checked else "never"
    print(f"#{feed.id:<4} {feed.title or '(untitled)'}  {feed.url}")
    print(f"      {feed.articles_added} articles added; last checked {checked};"
          f" next {feed.next_poll.isoformat(timespec='minutes')}")
    if feed.last_error:
        print(f"      ! {feed.last_error} ({feed.failures} failures in a row)")


def _print_report(report: PollReport) -> None:
    name = report.feed.title or report.feed.url
    if report.error:
        print(f"! feed #{report.feed.id} {name}: {report.error}")
    elif report.not_modified:
        print(f"= feed #{report.feed.id} {name}: not modified")
    else:
        print(f"+ feed #{report.feed.id} {name}: {report.added} new")
    for result in report.results:
        _print_result(result)


def _cmd_feed(library: Library, args: argparse.Namespace) -> int:
    poller = FeedPoller(library)
    if args.feed_command == "add":
        report = asyncio.run(poller.subscribe(args.url, "cli"))
        _print_report(report)
        return 1 if report.error else 0
    if args.feed_command == "list":
        feeds = poller.feeds.all()
        for feed in feeds:
            _print_feed(feed)
        print(f"{len(feeds)} feed(s)")
        return 0
    if args.feed_command == "remove":
        removed = poller.feeds.remove(args.id)
        if removed is None:
            print(f"! no feed #{args.id}", file=sys.stderr)
            return 1
        print(f"- feed #{removed.id} {removed.title or removed.url}: unsubscribed (its articles stay)")
        return 0

    async def poll() -> list[PollReport]:
        if args.all:
            return [await poller.poll(feed) for feed in poller.feeds.all()]
        return await poller.poll_due()

    reports = asyncio.run(poll())
    for report in reports:
        _print_report(report)
    print(f"{len(reports)} feed(s) polled")
    return 1 if any(r.error for r in reports) else 0


def _cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    try:
        from index.stores.transfer import TransferError, TransferMismatch, migrate
    except ImportError as exc:  # psycopg is the optional "postgres" extra
        print(f"error: PostgreSQL support is not installed ({exc}): pip install -e '.[postgres]'", file=sys.stderr)
        return 2
    data_dir = args.migrate_data_dir.resolve() if args.migrate_data_dir else None
    try:
        report = migrate(settings, args.source, args.target, data_dir=data_dir, dsn=args.dsn, replace=args.replace,
                         progress=sys.stderr.isatty(), index_memory=args.index_memory)
    except TransferMismatch as exc:
        print(f"copied {exc.report.source}\n    to {exc.report.target}", file=sys.stderr)
        print("\n".join(exc.report.lines()), file=sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except TransferError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"copied {report.source}\n    to {report.target}")
    print("\n".join(report.lines()))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.config)
        if args.data_dir:
            settings = settings.replace("library", data_dir=args.data_dir.resolve())
        if args.command == "eval":
            from index.eval.evaluate import run_eval

            return run_eval(settings, args)
        if args.command == "eval-dialogues":
            from index.eval.dialogues import run_eval_dialogues

            return run_eval_dialogues(settings, args)
        if args.command == "migrate":
            return _cmd_migrate(settings, args)
        if args.command == "mine-negatives":
            from index.search.mine_negatives import run as run_mining

            return run_mining(settings, args)
        if args.command == "train-reranker":
            from index.search.train_reranker import run

            return run(args)
        if args.command == "train-sentence-scorer":
            from index.search.train_sentence_scorer import run as run_sentence_training

            return run_sentence_training(args)
        with Library(settings, reranker=args.command == "search") as library:
            handler = {"add": _cmd_add, "list": _cmd_list, "remove": _cmd_remove, "search": _cmd_search,
                       "stats": _cmd_stats, "feed": _cmd_feed, "backup": _cmd_backup,
                       "restore": _cmd_restore, "insights": run_insights}[args.command]
            with recording_adds(library, active=args.command in {"add", "feed"}):
                return handler(library, args)
    except (ConfigError, LibraryBusy, LibraryUnavailable, IngestError, BackupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
