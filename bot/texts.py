"""Everything a reader or an admin reads from the bot, in one place to review (and later translate).

Texts are Telegram HTML unless a name says otherwise; values put into them by the helpers below are
escaped here. The passages, sources and article lists themselves are drawn by bot/render.py."""

from __future__ import annotations

from html import escape

# -- who may do what --------------------------------------------------------------------------------
REFUSAL = "Sorry, only the bot's admins can do that. You can ask me questions about the articles, though."

# -- questions --------------------------------------------------------------------------------------
EMPTY_QUESTION = "Please send me a question, for example: <i>What did the UN Security Council say?</i>"
NOT_WORDS = "I search the articles by words. Please ask your question in words."
NO_ARTICLES = "I have no articles yet, so I cannot answer. An admin can add some with /add."


def question_too_long(length: int, limit: int) -> str:
    return (f"That message is too long to be a question ({length:,} characters; please keep it "
            f"under {limit:,}). To add an article, admins can use /add.")


# -- follow-up questions ----------------------------------------------------------------------------
NEW_CONVERSATION = "Starting afresh: I will read your next question on its own."
ABOUT_CHARACTERS = 90  # an "About:" line is shortened to this many characters


def about(subject: str) -> str:
    """The line over a follow-up's answer saying what the question was read as being about."""
    subject = " ".join(subject.split())
    if len(subject) > ABOUT_CHARACTERS:
        subject = subject[:ABOUT_CHARACTERS - 1].rstrip() + "…"
    return f"<i>About: {escape(subject)}</i> (/new for a new topic)"


# -- buttons ----------------------------------------------------------------------------------------
MORE_PASSAGES = "More passages"
SOURCES = "Sources"
NEWER = "‹ Newer"
OLDER = "Older ›"
EXPIRED = "Those results are no longer available. Please ask the question again."
NO_MORE_PASSAGES = "No more passages for this question."
STALE_BUTTON = "This button no longer works."
VOTE_UP = "👍"
VOTE_DOWN = "👎"

# -- /start and /help -------------------------------------------------------------------------------
HELP_INTRO = ("I answer questions from a collection of news articles, quoting the passages that answer them "
              "with their article, source, date and link.")
HELP_HOW_TO_ASK = ["Just send me a question, for example: <i>What did the UN Security Council say?</i>",
                   "In groups, mention me or reply to one of my messages.",
                   "Ask a follow-up (<i>and what did China say?</i>) or reply to an answer to ask more about it; "
                   "/new starts a new topic.",
                   "/follow TOPIC — a message when a new article is about it; /following, /unfollow ID",
                   "/forgetme — delete what I stored about you (questions, votes, topics)"]
HELP_ADMIN = [
    "<b>Admin commands</b>",
    "/add URL … — add articles from the web",
    "/add followed by pasted text — add it as an article (first line is the title)",
    "Send a .txt, .md, .html or .pdf file — add it as an article",
    "/remove ID — remove an article",
    "/list — list the articles, newest first",
    "/stats — library size and model",
    "/subscribe FEED_URL — add a feed's new articles automatically",
    "/feeds — subscribed feeds and their state; /unsubscribe ID",
    "/insights [DAYS] — what readers asked, and the open questions; /insights notify on|off",
]


def help_library_size(count: int, newest: str | None) -> str:
    """How many articles the bot knows, and the date of the newest (already formatted) if any."""
    return (f"I know <b>{count}</b> article{'s' if count != 1 else ''}"
            + (f"; the newest is from {newest}." if newest else "."))


# -- unknown commands -------------------------------------------------------------------------------
def unknown_command(command: str) -> str:
    return f"I don't know {escape(command)}. Send /help to see what I can do."


# -- adding articles --------------------------------------------------------------------------------
ADD_USAGE = ("Usage:\n/add URL [URL …] — add articles from the web\n"
             "/add followed by the article's text on the next lines — the first line is the title\n"
             "or send a .txt, .md, .html or .pdf file.")
ADD_MARKS = {"added": "✅", "replaced": "🔄", "duplicate": "⏭", "failed": "⚠️"}


def adding(count: int) -> str:
    return f"Adding {count} article(s)…"


def add_progress_heading(done: bool, handled: int, total: int) -> str:
    return f"<b>{'Done' if done else 'Adding'}</b> ({handled}/{total})"


def file_too_large(name: str, size: int, limit: int) -> str:
    return f"⚠️ {escape(name)} is too large ({size:,} bytes; the limit is {limit:,})."


# -- removing and listing ---------------------------------------------------------------------------
REMOVE_USAGE = "Usage: /remove ID — the article's number as shown by /list, e.g. <code>/remove 12</code>."


def no_such_article(article_id: int) -> str:
    return f"There is no article #{article_id}. See /list."


def removed(article_line: str, article_id: int, passages: int) -> str:
    """``article_line``: the article's title, source and date, already HTML (bot/render.py)."""
    return f"Removed {article_line} (#{article_id}, {passages} passages)."


# -- feeds ------------------------------------------------------------------------------------------
SUBSCRIBE_USAGE = "Usage: /subscribe FEED_URL — an RSS or Atom feed; its new articles are added automatically."
UNSUBSCRIBE_USAGE = "Usage: /unsubscribe ID — the feed's number as shown by /feeds."


def cannot_subscribe(error: str) -> str:
    return f"⚠️ Could not subscribe: {escape(error)}"


def subscribed(title: str, feed_id: int, minutes: float) -> str:
    return f"Subscribed to <b>{escape(title)}</b> (feed #{feed_id}); checked every {minutes:g} minutes."


def no_such_feed(feed_id: int) -> str:
    return f"There is no feed #{feed_id}. See /feeds."


def unsubscribed(title: str, feed_id: int) -> str:
    return f"Unsubscribed from {escape(title)} (feed #{feed_id}). Its articles stay in the library."


# -- /stats -----------------------------------------------------------------------------------------
def stats_lines(*, articles: int, passages: int, vectors: int, newest: str, store: str, database_bytes: int,
                index_bytes: int, model: str) -> list[str]:
    """The library's size and model; ``newest`` is an already formatted date."""
    return [
        "<b>Library</b>",
        f"Articles: {articles}",
        f"Passages: {passages} ({vectors} vectors)",
        f"Newest article: {newest}",
        f"Database ({store}): {database_bytes / 1e6:.1f} MB, search indexes: {index_bytes / 1e6:.1f} MB",
        f"Model: {escape(model)}",
    ]


# -- failures ---------------------------------------------------------------------------------------
APOLOGY = "Sorry, something went wrong while handling that. Please try again in a moment."

# -- the command menus Telegram shows (plain text) --------------------------------------------------
PUBLIC_COMMAND_MENU = [("help", "What I know and how to ask"), ("start", "Start here"),
                       ("new", "Start a new topic: forget the earlier questions"),
                       ("follow", "Get new articles about a topic"), ("following", "The topics you follow"),
                       ("unfollow", "Stop following a topic"), ("forgetme", "Delete what I stored about you")]
ADMIN_COMMAND_MENU = [
    ("add", "Add articles: URLs, or pasted text"),
    ("remove", "Remove an article by id"),
    ("list", "List articles, newest first"),
    ("stats", "Library size and model"),
    ("subscribe", "Follow an RSS/Atom feed"),
    ("feeds", "Subscribed feeds and their state"),
    ("unsubscribe", "Stop following a feed"),
    ("insights", "What readers asked, open questions"),
]

# -- the terminal console -----------------------------------------------------------------------------
CONSOLE_COMMANDS = ("Try /help, /add, /file PATH, /list, /remove ID, /stats, /subscribe URL, /feeds, /unsubscribe ID,"
                    " /poll, /insights [DAYS] or /quit.")
CONSOLE_ADD_USAGE = "Usage: /add URL [URL …]  or  /add Title\\nText of the article…  or  /file PATH"
CONSOLE_FILE_USAGE = "Usage: /file PATH (a .txt, .md, .html or .pdf file)"
CONSOLE_PRESS_HINT = "(type the number)"


def console_unknown_command(command: str) -> str:
    """Plain text: the console lists its own commands, which /help does not all name."""
    return f"I don't know {escape(command)}. {CONSOLE_COMMANDS}"


def console_polled(count: int) -> str:
    return f"Polled {count} feed(s) that were due."


# -- votes on answers (bot/handlers/feedback.py) ------------------------------------------------------------
# answerCallbackQuery texts: plain text, seen only by the reader who pressed.
VOTE_RECORDED = {True: "Thanks for the 👍", False: "Thanks for the 👎: it helps the admins fill the gaps."}
VOTE_CHANGED = {True: "Changed to 👍", False: "Changed to 👎"}
VOTE_SAME = {True: "You already voted 👍", False: "You already voted 👎"}
VOTE_UNKNOWN = "That answer is too old to vote on."


def vote_confirmation(status: str, up: bool) -> str:
    """The presser's confirmation of a vote (plain text): ``status`` as ReaderActivity.vote says it."""
    by_status = {"recorded": VOTE_RECORDED, "changed": VOTE_CHANGED, "same": VOTE_SAME}
    return by_status[status][up] if status in by_status else VOTE_UNKNOWN


REASON_QUESTION = "What was wrong with the answer? (optional, one tap)"
REASON_THANKS = "Thanks, noted."


def reason_noted(reason: str) -> str:
    return f"Thanks: noted “{escape(reason)}”."


# -- /insights (bot/handlers/insights.py) ---------------------------------------------------------------------
INSIGHTS_USAGE = ("Usage: /insights [DAYS] — what readers asked (default: the last week);\n"
                  "/insights notify on|off — a message when an add answers open questions.")
INSIGHTS_OFF = "Insights are switched off (<code>insights.enabled = false</code>): no questions are stored."
NOTICES_ON = "I will tell you when an add answers open questions."
NOTICES_OFF = "No more notices about open questions."


def questions_answered_by(count: int, article_line: str) -> str:
    """``article_line``: already HTML (bot/render.py)."""
    return f"{count} open question{'s are' if count != 1 else ' is'} now answered by {article_line}."


# -- topic alerts (bot/handlers/alerts.py) ------------------------------------------------------------------
FOLLOW_USAGE = "Usage: /follow TOPIC — e.g. <code>/follow sanctions on North Korea</code>."
FOLLOW_PRIVATE_ONLY = "Alerts come in a private chat: send /follow to me there."
ALERTS_OFF = "Topic alerts are switched off on this bot."
UNFOLLOW_USAGE = "Usage: /unfollow ID — the topic's number as shown by /following."
NOT_FOLLOWING = "You follow no topics. Start with /follow TOPIC."
TOPIC_MAX_CHARS = 200


def topic_too_long(limit: int) -> str:
    return f"That topic is too long: please keep it under {limit} characters."


def too_many_topics(limit: int) -> str:
    return f"You follow {limit} topics already, the most allowed. /unfollow one first (see /following)."


def following(topic: str, topic_id: int) -> str:
    return (f"Following “{escape(topic)}” (#{topic_id}). I will send you new articles about it; "
            "/following lists your topics.")


def topics_list(topics: list[tuple[int, str]]) -> str:
    lines = ["<b>Your topics</b>"] + [f"#{topic_id} · {escape(topic)}" for topic_id, topic in topics]
    return "\n".join(lines + ["/unfollow ID to stop one."])


def unfollowed(topic_id: int) -> str:
    return f"Stopped following topic #{topic_id}."


def no_such_topic(topic_id: int) -> str:
    return f"You follow no topic #{topic_id}. See /following."


def alert_heading(topic: str, topic_id: int) -> str:
    return f"🔔 New on “{escape(topic)}” (/unfollow {topic_id} to stop):"


# -- /forgetme (bot/handlers/privacy.py) ---------------------------------------------------------------------
def forgotten(questions: int, votes: int, topics: int) -> str:
    return (f"Deleted what I stored about you: {questions} question{'s' if questions != 1 else ''}, "
            f"{votes} vote{'s' if votes != 1 else ''} and {topics} topic{'s' if topics != 1 else ''}.")
