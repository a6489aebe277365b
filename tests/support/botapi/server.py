"""A small Telegram Bot API server emulator for end-to-end tests.

The emulator speaks the Bot API over real HTTP (standard library only), so the real bot
can run unchanged with its base URL pointed at :attr:`BotApiServer.base_url`.  Tests act
as users through plain Python methods (``send_text``, ``press_button`` ...) and read what
the bot did (``wait_for_messages``, ``messages``, ``calls`` ...).

It reproduces the Telegram behaviour that commonly breaks bots: strict HTML parsing,
the 4096 UTF-16 code unit limit, "message is not modified", 64-byte callback data,
integer dates, ``chat_instance`` on callback queries and ``bot_command`` entities.  Inline
mode is off until a test switches it on (``enable_inline_mode``, as /setinline at @BotFather
does); then tests send inline queries and read the bot's answers.  Updates of a kind the bot
left out of ``allowed_updates`` are never queued, as Telegram never stores them.

Simplifications: Markdown parse modes are accepted but not parsed; unknown named HTML
entities such as ``&nbsp;`` are rejected, and so are a blockquote attribute other than
``expandable`` and a quote or link inside another of its kind (possibly stricter than
Telegram, to catch unescaped text and broken markup); inline results are articles only;
every response closes its connection (HTTP/1.0) so ``stop()`` never waits on idle
keep-alive connections.  A server instance can be started once.
"""

from __future__ import annotations

import copy
import json
import random
import re
import socket
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

T = TypeVar("T")
Params = dict[str, Any]
Message = dict[str, Any]

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_INLINE_RESULTS = 50
MAX_INLINE_RESULT_ID_BYTES = 64
# Seconds after which an inline query can no longer be answered (the emulator's choice: Telegram
# documents no figure, and refuses late answers with the same error as for an unknown query).
INLINE_QUERY_SECONDS = 10.0
# The update kinds delivered when the bot names none (Telegram's default leaves out a few the
# emulator never makes).
UPDATE_KINDS = frozenset({"message", "edited_message", "callback_query", "inline_query"})
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
DEFAULT_GROUP_USER_ID = 1001
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
CHAT_ACTIONS = frozenset(
    "typing upload_photo record_video upload_video record_voice upload_voice upload_document "
    "choose_sticker find_location record_video_note upload_video_note".split()
)
BUTTON_ACTIONS = frozenset(
    "url callback_data web_app login_url switch_inline_query switch_inline_query_current_chat "
    "switch_inline_query_chosen_chat copy_text callback_game pay".split()
)


class ApiError(Exception):
    """An error answer of the Bot API (``ok: false``)."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code,
                                "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}")


@dataclass
class UploadedFile:
    """A file part of a multipart/form-data request."""

    filename: str
    content: bytes
    content_type: str


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    file_name: str
    mime_type: str
    content: bytes

    def document(self) -> dict[str, Any]:
        return {"file_id": self.file_id, "file_unique_id": self.file_unique_id,
                "file_name": self.file_name, "mime_type": self.mime_type,
                "file_size": len(self.content)}

    def file(self) -> dict[str, Any]:
        return {"file_id": self.file_id, "file_unique_id": self.file_unique_id,
                "file_size": len(self.content), "file_path": self.file_path}


@dataclass
class _Record:
    """A message as stored by the emulator; ``message`` is its Bot API form."""

    message: Message
    from_bot: bool
    html: str | None = None
    reply_markup: dict[str, Any] | None = None
    deleted: bool = False
    edit_count: int = 0
    stored_at: float = field(default_factory=time.monotonic)  # when the emulator stored it

    def snapshot(self) -> Message:
        snap = copy.deepcopy(self.message)
        if "text" not in snap:
            snap["text"] = snap.get("caption", "")
        snap.update(html=self.html, reply_markup=copy.deepcopy(self.reply_markup),
                    deleted=self.deleted, edit_count=self.edit_count)
        return snap


@dataclass
class _Fault:
    status: int
    retry_after: int
    count: int
    description: str | None

    def error(self) -> ApiError:
        if self.status == 429:
            return ApiError(429, f"Too Many Requests: retry after {self.retry_after}",
                            {"retry_after": self.retry_after})
        defaults = {400: "Bad Request: injected failure",
                    403: "Forbidden: bot was blocked by the user"}
        try:
            phrase = HTTPStatus(self.status).phrase
        except ValueError:
            phrase = "Injected failure"
        return ApiError(self.status, self.description or defaults.get(self.status, phrase))


# --------------------------------------------------------------------------- text and HTML

class EntityParseError(ValueError):
    """Raised by :func:`parse_html` for text Telegram would refuse to parse."""


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of Telegram lengths and offsets."""
    return len(text.encode("utf-16-le")) // 2


_ENTITY_TAGS = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic",
                "u": "underline", "ins": "underline", "s": "strikethrough",
                "strike": "strikethrough", "del": "strikethrough", "tg-spoiler": "spoiler",
                "code": "code", "pre": "pre", "a": "text_link", "span": "spoiler",
                "blockquote": "blockquote", "tg-emoji": "custom_emoji"}
_NAMED_REFS = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_PLAIN_RE = re.compile(r"[^<&]+")
_ATTR_VALUE = r"""(?:"[^"]*"|'[^']*'|[^\s"'<>=`]+)"""
_ATTR_RE = re.compile(rf"([a-zA-Z][\w-]*)(?:\s*=\s*({_ATTR_VALUE}))?")
_START_TAG_RE = re.compile(
    rf"<([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z][\w-]*(?:\s*=\s*{_ATTR_VALUE})?)*)\s*>")
_END_TAG_RE = re.compile(r"</([a-zA-Z][a-zA-Z0-9-]*)\s*>")
_CHAR_REF_RE = re.compile(r"&(#[0-9]{1,8}|#[xX][0-9a-fA-F]{1,7}|[a-zA-Z][a-zA-Z0-9]*);")


def _decode_char_ref(ref: str) -> str:
    """Decode the inside of ``&...;``; raise for references Telegram does not know."""
    if not ref.startswith("#"):
        if ref not in _NAMED_REFS:
            raise EntityParseError(f'Unsupported HTML entity "&{ref};"')
        return _NAMED_REFS[ref]
    code = int(ref[2:], 16) if ref[1:2] in ("x", "X") else int(ref[1:])
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        raise EntityParseError(f'Invalid character reference "&{ref};"')
    return chr(code)


def _attr_value(raw: str | None) -> str:
    """Unquote and unescape an attribute value as written in a tag."""
    value = raw or ""
    if value[:1] in ("'", '"'):
        value = value[1:-1]
    return _CHAR_REF_RE.sub(lambda m: _decode_char_ref(m.group(1)), value)


@dataclass
class _OpenTag:
    name: str
    offset: int
    entity: dict[str, Any] | None
    order: int  # opening order: outer entities come first among equal ranges


# Entities that can't hold another of the same group (the Bot API's rules for nesting entities).
_NOT_NESTED = {"blockquote": "blockquote", "expandable_blockquote": "blockquote", "text_link": "link"}


def _check_nesting(entity: dict[str, Any] | None, stack: list[_OpenTag]) -> None:
    """Raise when ``entity`` would open inside an open entity of its own group (a quote in a quote)."""
    group = _NOT_NESTED.get((entity or {}).get("type", ""))
    if group is None:
        return
    for open_tag in stack:
        if open_tag.entity is not None and _NOT_NESTED.get(open_tag.entity["type"]) == group:
            raise EntityParseError(f'Tag "{open_tag.name}" can\'t contain another {group}')


def _entity_for_tag(name: str, attrs: dict[str, str], raw_attrs: dict[str, str | None],
                    stack: list[_OpenTag]) -> dict[str, Any] | None:
    """The entity a start tag opens (None when it opens none), or raise for bad attributes or nesting."""
    kind = _ENTITY_TAGS[name]
    if name == "a":
        entity = {"type": kind, "url": attrs["href"]} if attrs.get("href") else None
        _check_nesting(entity, stack)
        return entity
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise EntityParseError('Tag "span" must have class "tg-spoiler"')
    if name == "blockquote":
        unknown = sorted(set(raw_attrs) - {"expandable"})
        if unknown:
            raise EntityParseError(f'Tag "blockquote" can\'t have attribute "{unknown[0]}"')
        if raw_attrs.get("expandable") is not None:
            raise EntityParseError('Attribute "expandable" of tag "blockquote" takes no value')
        entity = {"type": "expandable_blockquote" if "expandable" in raw_attrs else kind}
        _check_nesting(entity, stack)
        return entity
    if name == "tg-emoji":
        if not attrs.get("emoji-id"):
            raise EntityParseError('Tag "tg-emoji" must have attribute "emoji-id"')
        return {"type": kind, "custom_emoji_id": attrs["emoji-id"]}
    if name == "code" and stack and stack[-1].name == "pre":
        language = attrs.get("class", "")
        if language.startswith("language-") and stack[-1].entity is not None:
            stack[-1].entity["language"] = language[len("language-"):]
        return None  # <pre><code> is a single pre entity
    return {"type": kind}


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram-flavoured HTML strictly into ``(plain_text, entities)``.

    Offsets and lengths are in UTF-16 code units.  Raises :class:`EntityParseError` for
    unsupported tags, unclosed or mismatched tags, a ``<`` that starts no tag and unknown
    named character references.  A lone ``&`` or ``>`` is kept literally, as Telegram does.
    """
    out: list[str] = []
    stack: list[_OpenTag] = []
    closed: list[tuple[int, dict[str, Any]]] = []
    pos16 = i = opened = 0
    try:
        while i < len(source):
            if plain := _PLAIN_RE.match(source, i):
                piece, i = plain.group(), plain.end()
            elif source[i] == "&":
                ref = _CHAR_REF_RE.match(source, i)
                piece, i = (_decode_char_ref(ref.group(1)), ref.end()) if ref else ("&", i + 1)
            elif end := _END_TAG_RE.match(source, i):
                name = end.group(1).lower()
                if not stack:
                    raise EntityParseError(f'Unexpected end tag "</{name}>"')
                top = stack.pop()
                if top.name != name:
                    raise EntityParseError(
                        f'Unmatched end tag "</{name}>", expected "</{top.name}>"')
                if top.entity is not None and pos16 > top.offset:
                    closed.append((top.order, {**top.entity, "offset": top.offset,
                                               "length": pos16 - top.offset}))
                i = end.end()
                continue
            elif start := _START_TAG_RE.match(source, i):
                name = start.group(1).lower()
                if name not in _ENTITY_TAGS:
                    raise EntityParseError(f'Unsupported start tag "{name}"')
                found = [(m.group(1).lower(), m.group(2)) for m in _ATTR_RE.finditer(start.group(2))]
                attrs = {key: _attr_value(raw) for key, raw in found}
                raw_attrs = {key: raw for key, raw in found}
                stack.append(_OpenTag(name, pos16, _entity_for_tag(name, attrs, raw_attrs, stack), opened))
                opened += 1
                i = start.end()
                continue
            else:
                raise EntityParseError('Unexpected "<": it starts no complete tag')
            out.append(piece)
            pos16 += utf16_len(piece)
    except EntityParseError as exc:
        raise EntityParseError(f"{exc} at byte offset {len(source[:i].encode())}") from None
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    closed.sort(key=lambda item: (item[1]["offset"], -item[1]["length"], item[0]))
    return "".join(out), [entity for _, entity in closed]


def strip_text(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Trim surrounding whitespace like Telegram and shift/clip the entities to match."""
    shift = utf16_len(text[: len(text) - len(text.lstrip())])
    stripped = text.strip()
    size = utf16_len(stripped)
    result = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        end = min(entity["offset"] + entity["length"] - shift, size)
        if end > start:
            result.append({**entity, "offset": start, "length": end - start})
    return stripped, result


# --------------------------------------------------------------------------- request params

def _json_param(params: Params, key: str) -> Any:
    """A structured parameter: form bodies carry it JSON-encoded, JSON bodies carry it as is."""
    value = params.get(key)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(f"can't parse {key} JSON object") from None
    return value


def _int_param(params: Params, key: str, default: int | None = None) -> int:
    value = params.get(key)
    if value is None or value == "":
        if default is None:
            raise bad_request(f"{key} is empty")
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f'field "{key}" must be of type Integer') from None


def _bool_param(params: Params, key: str) -> bool:
    value = params.get(key)
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


def _chat_key(chat_id: Any) -> int | str:
    """Normalise a chat id: numeric ids become ints, ``@channelusername`` stays a string."""
    try:
        return int(chat_id)
    except (TypeError, ValueError):
        return str(chat_id)


def _header_param(header: str, key: str) -> str | None:
    match = re.search(rf'(?:^|;)\s*{key}=(?:"((?:[^"\\]|\\.)*)"|([^;]*))', header)
    if match is None:
        return None
    return match.group(1) if match.group(1) is not None else match.group(2).strip()


def _parse_multipart(body: bytes, boundary: str) -> Params:
    result: Params = {}
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            continue
        content = content.removesuffix(b"\r\n")
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = _header_param(disposition, "name") or ""
        filename = _header_param(disposition, "filename")
        if filename is None:
            result[name] = content.decode("utf-8")
        else:
            result[name] = UploadedFile(filename, content,
                                        headers.get("content-type", "application/octet-stream"))
    return result


def _parse_params(query: str, content_type: str, body: bytes) -> Params:
    """Merge query-string and body parameters (JSON, urlencoded form or multipart)."""
    params: Params = dict(parse_qsl(query, keep_blank_values=True))
    if not body:
        return params
    mime, _, options = content_type.partition(";")
    mime = mime.strip().lower()
    if mime == "application/json":
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("JSON body must be an object")
        params.update(data)
    elif mime == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    elif mime == "multipart/form-data":
        boundary = _header_param(options, "boundary")
        if not boundary:
            raise ValueError("multipart body without boundary")
        params.update(_parse_multipart(body, boundary))
    else:
        raise ValueError(f"unsupported content type {mime!r}")
    return params


# --------------------------------------------------------------------------- HTTP plumbing

class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0 closes every connection after its response, so stop() never waits on idle
    # keep-alive connections.
    protocol_version = "HTTP/1.0"
    server: _HTTPServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, payload, content_type = self.server.emulator.handle_http(
            self.path, self.headers.get("Content-Type", ""), body)
        if status == DROP_CONNECTION:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)  # the client sees the connection cut, no answer
            except OSError:
                pass
            return
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client (e.g. a killed bot process) went away

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every request thread
    block_on_close = True

    def __init__(self, emulator: BotApiServer):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.emulator = emulator


DROP_CONNECTION = 0  # a status handle_http returns to have the connection closed without an answer
CHAOS_KINDS = ("429", "5xx", "slow", "drop")


@dataclass
class _Chaos:
    """Random faults on a share of the calls of some methods (see ``BotApiServer.set_chaos``)."""

    rate: float
    methods: frozenset[str]
    kinds: tuple[str, ...]
    rng: random.Random
    slow_seconds: tuple[float, float]
    counts: dict[str, int]


def _json_reply(status: int, body: Any) -> tuple[int, bytes, str]:
    return status, json.dumps(body).encode(), "application/json"


# --------------------------------------------------------------------------- the emulator

class BotApiServer:
    """Bot API emulator on ``127.0.0.1:<free port>``; use as a context manager or start()/stop().

    Point PTB at it with ``base_url=server.api_url`` and ``base_file_url=server.file_url``.
    All public methods are thread-safe.
    """

    def __init__(self, token: str = "123456:TEST-TOKEN", username: str = "test_news_bot",
                 first_name: str = "Test News Bot", max_poll_timeout: float = 2.0):
        self.token = token
        self.max_poll_timeout = max_poll_timeout
        bot_id = _chat_key(token.split(":", 1)[0])
        self._bot_user: dict[str, Any] = {
            "id": bot_id if isinstance(bot_id, int) else 123456, "is_bot": True,
            "first_name": first_name, "username": username, "can_join_groups": True,
            "can_read_all_group_messages": False, "supports_inline_queries": False,
            "can_connect_to_business": False, "has_main_web_app": False}
        self._cond = threading.Condition(threading.RLock())
        self._stop_event = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 1
        self._users: dict[int, dict[str, Any]] = {}
        self._chats: dict[int | str, dict[str, Any]] = {}
        self._records: dict[int | str, dict[int, _Record]] = {}
        self._next_message_id: dict[int | str, int] = {}
        self._bot_order: dict[int | str, list[int]] = {}
        self._read_cursor: dict[int | str, int] = {}
        self._seen_edits: dict[tuple[int | str, int], int] = {}
        self._files: dict[str, _StoredFile] = {}
        self._callback_ids: set[str] = set()
        self._inline_queries: dict[str, float] = {}  # unanswered inline query id -> when it was sent
        self._inline_answers: list[dict[str, Any]] = []
        self._allowed_updates: frozenset[str] = UPDATE_KINDS
        self._next_serial = 1
        self._chat_actions: dict[int | str, list[str]] = {}
        self._answered: list[dict[str, Any]] = []
        self._commands: dict[str, list[dict[str, Any]]] = {}
        self._calls: list[tuple[str, Params]] = []
        self._errors: list[tuple[str, str]] = []
        self._faults: dict[str, list[_Fault]] = {}
        self._delays: dict[str, float] = {}
        self._chaos: _Chaos | None = None
        self._webhook_url = ""
        self._webhook_secret = ""
        self._webhook_thread: threading.Thread | None = None
        handlers: dict[str, Callable[[Params], Any]] = {
            "getMe": lambda p: dict(self._bot_user), "close": lambda p: True,
            "logOut": lambda p: True, "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook, "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info, "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands, "deleteMyCommands": self._delete_my_commands,
            "sendMessage": self._send_message, "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message, "sendChatAction": self._send_chat_action,
            "answerCallbackQuery": self._answer_callback_query, "getFile": self._get_file,
            "sendDocument": self._send_document, "answerInlineQuery": self._answer_inline_query}
        self._methods = {name.lower(): (name, fn) for name, fn in handlers.items()}

    # ---- lifecycle

    def start(self) -> BotApiServer:
        if self._httpd is None:
            self._httpd = _HTTPServer(self)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                name="botapi-emulator", daemon=True)
            self._thread.start()
            self._webhook_thread = threading.Thread(target=self._deliver_webhooks, name="botapi-webhooks",
                                                    daemon=True)
            self._webhook_thread.start()
        return self

    def stop(self) -> None:
        """Release waiting long polls, shut the server down and join all its threads."""
        with self._cond:
            self._stop_event.set()
            self._cond.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        if self._webhook_thread is not None:
            self._webhook_thread.join()

    def __enter__(self) -> BotApiServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def api_url(self) -> str:
        """Value for PTB's ``base_url`` (PTB appends the token)."""
        return f"{self.base_url}/bot"

    @property
    def file_url(self) -> str:
        """Value for PTB's ``base_file_url``."""
        return f"{self.base_url}/file/bot"

    @property
    def bot_user(self) -> dict[str, Any]:
        return dict(self._bot_user)

    # ---- fault injection

    def fail_next(self, method: str, status: int = 429, retry_after: int = 1, count: int = 1,
                  description: str | None = None) -> None:
        """Answer the next ``count`` calls of ``method`` with an error of ``status``."""
        with self._cond:
            self._faults.setdefault(method.lower(), []).append(
                _Fault(status, retry_after, count, description))

    def set_delay(self, method: str, seconds: float) -> None:
        """Sleep ``seconds`` before answering each call of ``method`` (0 removes the delay)."""
        with self._cond:
            self._delays[method.lower()] = seconds

    def set_chaos(self, rate: float, methods: tuple[str, ...] = ("sendMessage", "sendChatAction",
                                                                  "editMessageText", "getUpdates"),
                  kinds: tuple[str, ...] = CHAOS_KINDS, seed: int = 0,
                  slow_seconds: tuple[float, float] = (0.5, 2.0)) -> None:
        """From now on a share ``rate`` of the calls of ``methods`` meets one random fault of ``kinds``:
        "429" (retry after 1 s), "5xx" (502 Bad Gateway), "slow" (answered after a delay) or "drop"
        (the connection is closed before the call is carried out). The 429, 5xx and drop faults leave
        the call undone, as Telegram does. ``rate`` 0 ends it."""
        unknown = set(kinds) - set(CHAOS_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        with self._cond:
            self._chaos = _Chaos(rate, frozenset(m.lower() for m in methods), tuple(kinds), random.Random(seed),
                                 slow_seconds, {kind: 0 for kind in kinds}) if rate > 0 else None

    @property
    def chaos_counts(self) -> dict[str, int]:
        """How many faults of each kind the chaos mode has injected."""
        with self._cond:
            return dict(self._chaos.counts) if self._chaos else {}

    def _chaos_fault(self, method: str) -> str | None:
        """The fault this call meets, if any (call with the lock held)."""
        chaos = self._chaos
        if chaos is None or method.lower() not in chaos.methods or chaos.rng.random() >= chaos.rate:
            return None
        kind = chaos.rng.choice(chaos.kinds)
        chaos.counts[kind] += 1
        return kind

    # ---- HTTP entry point

    def handle_http(self, raw_path: str, content_type: str, body: bytes) -> tuple[int, bytes, str]:
        """Answer one HTTP request: returns ``(status, body, content_type)``."""
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        unauthorized = _json_reply(401, ApiError(401, "Unauthorized").payload())
        if path.startswith("/file/bot"):
            token, _, file_path = path[len("/file/bot"):].partition("/")
            if token != self.token:
                return unauthorized
            with self._cond:
                stored = next((f for f in self._files.values() if f.file_path == file_path), None)
            if stored is None:
                return _json_reply(404, ApiError(404, "Not Found: file not found").payload())
            return 200, stored.content, stored.mime_type
        if not path.startswith("/bot"):
            return _json_reply(404, ApiError(404, "Not Found").payload())
        token, _, method = path[len("/bot"):].partition("/")
        if token != self.token:
            return unauthorized
        try:
            params = _parse_params(parts.query, content_type, body)
        except (ValueError, UnicodeDecodeError) as exc:
            return _json_reply(400, bad_request(f"can't parse request: {exc}").payload())
        return self._call(method, params)

    def _call(self, method: str, params: Params) -> tuple[int, bytes, str]:
        name, handler = self._methods.get(method.lower(), (method, None))
        with self._cond:
            self._calls.append((name, params))
            self._cond.notify_all()
            delay = self._delays.get(name.lower(), 0.0)
            if handler is None:
                self._errors.append((name, "Not Found: method not found"))
                return _json_reply(404, ApiError(404, "Not Found: method not found").payload())
            fault = self._chaos_fault(name)
            if fault == "drop":
                self._errors.append((name, "chaos: connection dropped"))
                return DROP_CONNECTION, b"", ""
            if fault in {"429", "5xx"}:
                error = _Fault(429 if fault == "429" else 502, 1, 1, None).error()
                self._errors.append((name, f"chaos: {error.description}"))
                return _json_reply(error.code, error.payload())
            if fault == "slow":
                assert self._chaos is not None
                delay += self._chaos.rng.uniform(*self._chaos.slow_seconds)
        if delay > 0:
            self._stop_event.wait(delay)
        with self._cond:
            faults = self._faults.get(name.lower())
            try:
                if faults:
                    faults[0].count -= 1
                    fault = faults[0] if faults[0].count > 0 else faults.pop(0)
                    raise fault.error()
                result = handler(params)
            except ApiError as exc:
                self._errors.append((name, exc.description))
                self._cond.notify_all()
                return _json_reply(exc.code, exc.payload())
            except Exception as exc:  # an emulator bug must not hang the bot
                self._errors.append((name, f"emulator error: {exc!r}"))
                return _json_reply(500, ApiError(500, f"Internal Server Error: {exc!r}").payload())
        return _json_reply(200, {"ok": True, "result": result})

    # ---- helpers shared by the API and the test side (call with the lock held)

    def _serial(self) -> int:
        self._next_serial += 1
        return self._next_serial

    def _queue_update(self, kind: str, payload: dict[str, Any]) -> None:
        if kind not in self._allowed_updates:
            return  # the bot asked not to get this kind: Telegram never stores it
        self._updates.append({"update_id": self._next_update_id, kind: copy.deepcopy(payload)})
        self._next_update_id += 1
        self._cond.notify_all()

    def _user(self, user_id: int, first_name: str | None = None,
              username: str | None = None) -> dict[str, Any]:
        user = self._users.setdefault(
            user_id, {"id": user_id, "is_bot": False, "first_name": "Tester",
                      "language_code": "en"})
        if first_name:
            user["first_name"] = first_name
        if username:
            user["username"] = username
        return dict(user)

    def _chat(self, chat_id: int | str, chat_type: str | None = None,
              user: dict[str, Any] | None = None) -> dict[str, Any]:
        known = self._chats.get(chat_id)
        if known is not None and chat_type in (None, known["type"]):
            return dict(known)
        if chat_type is None:
            chat_type = "private" if isinstance(chat_id, int) and chat_id > 0 else "supergroup"
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = (user or {}).get("first_name", "Tester")
            if user and user.get("username"):
                chat["username"] = user["username"]
        else:
            chat["title"] = "Test Group"
        self._chats[chat_id] = chat
        return dict(chat)

    def _default_user_id(self, chat_key: int | str) -> int:
        chat = self._chats.get(chat_key)
        private = chat["type"] == "private" if chat else isinstance(chat_key, int) and chat_key > 0
        return chat_key if private and isinstance(chat_key, int) else DEFAULT_GROUP_USER_ID

    def _store(self, chat_key: int | str, sender: dict[str, Any], content: dict[str, Any],
               from_bot: bool, reply_to: int | None = None, **extra: Any) -> _Record:
        replied = None if reply_to is None else self._records.get(chat_key, {}).get(reply_to)
        if reply_to is not None and (replied is None or replied.deleted):
            raise bad_request("message to be replied not found")
        message_id = self._next_message_id.get(chat_key, 1)
        self._next_message_id[chat_key] = message_id + 1
        message: Message = {"message_id": message_id, "from": sender, "chat": self._chat(chat_key),
                            "date": int(time.time()), **content}
        if replied is not None:
            message["reply_to_message"] = {k: copy.deepcopy(v) for k, v in replied.message.items()
                                           if k != "reply_to_message"}
        record = _Record(message, from_bot, **extra)
        self._records.setdefault(chat_key, {})[message_id] = record
        if from_bot:
            self._bot_order.setdefault(chat_key, []).append(message_id)
        self._cond.notify_all()
        return record

    def _store_file(self, content: bytes, file_name: str, mime_type: str) -> _StoredFile:
        serial = self._serial()
        extension = file_name.rsplit(".", 1)[-1] if "." in file_name else "bin"
        stored = _StoredFile(f"BQACAgIAAxkBAAI{serial:06d}", f"AgAD{serial:06d}",
                             f"documents/file_{serial}.{extension}", file_name, mime_type, content)
        self._files[stored.file_id] = stored
        return stored

    @staticmethod
    def _format(text: Any, parse_mode: Any, entities: Any) -> tuple[str, list[dict[str, Any]]]:
        """Parse a text or caption into what Telegram displays: (plain text, entities)."""
        raw = "" if text is None else str(text)
        mode = str(parse_mode or "").lower()
        if mode == "html":
            try:
                plain, found = parse_html(raw)
            except EntityParseError as exc:
                raise bad_request(f"can't parse entities: {exc}") from None
        elif mode in ("", "markdown", "markdownv2"):  # Markdown is passed through unparsed
            plain, found = raw, (list(entities or []) if not mode else [])
        else:
            raise bad_request("unsupported parse_mode")
        return strip_text(plain, found)

    @staticmethod
    def _check_markup(markup: Any) -> dict[str, Any] | None:
        if markup is None or not isinstance(markup, dict) or "inline_keyboard" not in markup:
            return markup
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request("can't parse inline keyboard button: InlineKeyboardMarkup "
                              "must be an Array of Arrays")
        for button in (b for row in rows for b in row):
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise bad_request("can't parse inline keyboard button: "
                                  'Field "text" must be of type String')
            if not BUTTON_ACTIONS & button.keys():
                raise bad_request("can't parse inline keyboard button: Text buttons are "
                                  "unallowed in the inline keyboard")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA_BYTES:
                raise bad_request("BUTTON_DATA_INVALID")
            url = button.get("url")
            if url is not None and not re.match(r"(https?|tg)://\S+$", str(url)):
                raise bad_request("BUTTON_URL_INVALID")
        return markup

    def _send(self, params: Params, content: dict[str, Any], raw: str | None) -> Message:
        if params.get("chat_id") in (None, ""):
            raise bad_request("chat_id is empty")
        chat_key = _chat_key(params["chat_id"])
        markup = self._check_markup(_json_param(params, "reply_markup"))
        if isinstance(markup, dict) and markup.get("inline_keyboard"):
            content["reply_markup"] = markup
        reply = _json_param(params, "reply_parameters") or {}
        reply_to = reply.get("message_id", params.get("reply_to_message_id"))
        if reply_to is not None and (
                reply.get("allow_sending_without_reply")
                or _bool_param(params, "allow_sending_without_reply")):
            chat_records = self._records.get(chat_key, {})
            if int(reply_to) not in chat_records or chat_records[int(reply_to)].deleted:
                reply_to = None
        record = self._store(chat_key, self.bot_user, content, True,
                             None if reply_to is None else int(reply_to),
                             html=raw, reply_markup=markup)
        return copy.deepcopy(record.message)

    def _find_record(self, params: Params, missing: str) -> _Record:
        chat_key = _chat_key(params.get("chat_id"))
        record = self._records.get(chat_key, {}).get(_int_param(params, "message_id"))
        if record is None or record.deleted:
            raise bad_request(missing)
        return record

    # ---- Bot API methods (called with the lock held)

    def _set_allowed_updates(self, params: Params) -> None:
        """Keep the kinds of update the bot asks for (an empty list: the default; none given: unchanged)."""
        kinds = _json_param(params, "allowed_updates")
        if kinds is None or kinds == "":
            return
        if not isinstance(kinds, list) or not all(isinstance(kind, str) for kind in kinds):
            raise bad_request("can't parse allowed_updates JSON array")
        self._allowed_updates = frozenset(kinds) if kinds else UPDATE_KINDS

    def _get_updates(self, params: Params) -> list[dict[str, Any]]:
        if self._webhook_url:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        self._set_allowed_updates(params)
        offset = _int_param(params, "offset", 0)
        limit = min(max(_int_param(params, "limit", 100), 1), 100)
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        deadline = time.monotonic() + min(_int_param(params, "timeout", 0), self.max_poll_timeout)
        while not self._updates and not self._stop_event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)
        return copy.deepcopy(self._updates[:limit])

    def _set_webhook(self, params: Params) -> bool:
        url = str(params.get("url") or "")
        if url and urlsplit(url).hostname not in {"127.0.0.1", "localhost", "::1"}:
            raise bad_request("bad webhook: this emulator only delivers to loopback addresses")
        if _bool_param(params, "drop_pending_updates"):
            self._updates.clear()
        if url:
            self._set_allowed_updates(params)
        self._webhook_url = url
        self._webhook_secret = str(params.get("secret_token") or "")
        self._cond.notify_all()
        return True

    def _deliver_webhooks(self) -> None:
        """While a webhook is set, POST queued updates to it one by one, as Telegram does."""
        while True:
            with self._cond:
                while not self._stop_event.is_set() and not (self._webhook_url and self._updates):
                    self._cond.wait(0.2)
                if self._stop_event.is_set():
                    return
                update, url, secret = copy.deepcopy(self._updates[0]), self._webhook_url, self._webhook_secret
            headers = {"Content-Type": "application/json"}
            if secret:
                headers["X-Telegram-Bot-Api-Secret-Token"] = secret
            try:
                request = urllib.request.Request(url, data=json.dumps(update).encode(), headers=headers)
                with urllib.request.urlopen(request, timeout=5) as response:
                    delivered = 200 <= response.status < 300
            except OSError:  # URLError, HTTPError and refused connections alike
                delivered = False
            with self._cond:
                if delivered and self._updates and self._updates[0]["update_id"] == update["update_id"]:
                    self._updates.pop(0)
            if not delivered:
                self._stop_event.wait(0.3)

    def _delete_webhook(self, params: Params) -> bool:
        return self._set_webhook({"drop_pending_updates": params.get("drop_pending_updates")})

    def _get_webhook_info(self, params: Params) -> dict[str, Any]:
        return {"url": self._webhook_url, "has_custom_certificate": False,
                "pending_update_count": len(self._updates)}

    @staticmethod
    def _scope_key(params: Params) -> str:
        scope = _json_param(params, "scope") or {"type": "default"}
        key = ":".join([str(scope.get("type", "default"))]
                       + [str(scope[k]) for k in ("chat_id", "user_id") if k in scope])
        language = params.get("language_code")
        return f"{key}|{language}" if language else key

    def _set_my_commands(self, params: Params) -> bool:
        commands = _json_param(params, "commands")
        if not isinstance(commands, list):
            raise bad_request("commands is empty")
        if len(commands) > 100:
            raise bad_request("too many commands")
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        key = self._scope_key(params)
        if commands:
            self._commands[key] = [{"command": c["command"], "description": c["description"]}
                                   for c in commands]
        else:
            self._commands.pop(key, None)
        self._cond.notify_all()
        return True

    def _get_my_commands(self, params: Params) -> list[dict[str, Any]]:
        return copy.deepcopy(self._commands.get(self._scope_key(params), []))

    def _delete_my_commands(self, params: Params) -> bool:
        self._commands.pop(self._scope_key(params), None)
        return True

    def _send_message(self, params: Params) -> Message:
        text, entities = self._format(params.get("text"), params.get("parse_mode"),
                                      _json_param(params, "entities"))
        if not text:
            raise bad_request("message text is empty")
        if utf16_len(text) > MAX_TEXT_LENGTH:
            raise bad_request("message is too long")
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        return self._send(params, content, str(params.get("text")))

    def _send_document(self, params: Params) -> Message:
        document = params.get("document")
        if isinstance(document, str) and document.startswith("attach://"):
            document = params.get(document[len("attach://"):])
        if isinstance(document, UploadedFile):
            stored = self._store_file(document.content, document.filename, document.content_type)
        elif isinstance(document, str) and document in self._files:
            stored = self._files[document]
        elif document in (None, ""):
            raise bad_request("there is no document in the request")
        else:
            raise bad_request("wrong file identifier/HTTP URL specified")
        content: dict[str, Any] = {"document": stored.document()}
        caption = params.get("caption")
        if caption:
            text, entities = self._format(caption, params.get("parse_mode"),
                                          _json_param(params, "caption_entities"))
            if utf16_len(text) > MAX_CAPTION_LENGTH:
                raise bad_request("message caption is too long")
            if text:
                content["caption"] = text
            if entities:
                content["caption_entities"] = entities
        return self._send(params, content, caption)

    def _edit_message_text(self, params: Params) -> Message | bool:
        if params.get("inline_message_id"):
            return True
        record = self._find_record(params, "message to edit not found")
        text, entities = self._format(params.get("text"), params.get("parse_mode"),
                                      _json_param(params, "entities"))
        if not text:
            raise bad_request("message text is empty")
        if utf16_len(text) > MAX_TEXT_LENGTH:
            raise bad_request("MESSAGE_TOO_LONG")
        if not record.from_bot:
            raise bad_request("message can't be edited")
        if "text" not in record.message:
            raise bad_request("there is no text in the message to edit")
        return self._apply_edit(record, params, {"text": text, "entities": entities},
                                str(params.get("text")))

    def _edit_message_reply_markup(self, params: Params) -> Message | bool:
        if params.get("inline_message_id"):
            return True
        record = self._find_record(params, "message to edit not found")
        if not record.from_bot:
            raise bad_request("message can't be edited")
        return self._apply_edit(record, params, {}, record.html)

    def _apply_edit(self, record: _Record, params: Params, content: dict[str, Any],
                    raw: str | None) -> Message:
        """Apply an edit; a missing reply_markup removes the keyboard, as in Telegram."""
        markup = self._check_markup(_json_param(params, "reply_markup"))
        inline = markup if isinstance(markup, dict) and markup.get("inline_keyboard") else None
        updated = dict(record.message, **content, reply_markup=inline)

        def shown(message: Message) -> tuple[Any, ...]:
            return message.get("text"), message.get("entities") or [], message.get("reply_markup")

        if shown(updated) == shown(record.message):
            raise bad_request(NOT_MODIFIED)
        record.message = {k: v for k, v in updated.items() if v not in (None, [])}
        record.message["edit_date"] = int(time.time())
        record.html, record.reply_markup = raw, markup
        record.edit_count += 1
        self._cond.notify_all()
        return copy.deepcopy(record.message)

    def _delete_message(self, params: Params) -> bool:
        self._find_record(params, "message to delete not found").deleted = True
        self._cond.notify_all()
        return True

    def _send_chat_action(self, params: Params) -> bool:
        action = str(params.get("action") or "")
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self._chat_actions.setdefault(_chat_key(params.get("chat_id")), []).append(action)
        self._cond.notify_all()
        return True

    def _answer_callback_query(self, params: Params) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if query_id not in self._callback_ids:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid")
        self._answered.append({
            "callback_query_id": query_id, "text": params.get("text"),
            "show_alert": _bool_param(params, "show_alert"), "url": params.get("url"),
            "cache_time": _int_param(params, "cache_time", 0)})
        self._cond.notify_all()
        return True

    def _answer_inline_query(self, params: Params) -> bool:
        query_id = str(params.get("inline_query_id") or "")
        sent_at = self._inline_queries.get(query_id)
        if sent_at is None or time.monotonic() - sent_at > INLINE_QUERY_SECONDS:
            raise bad_request(QUERY_TOO_OLD)
        results = _json_param(params, "results")
        if not isinstance(results, list):
            raise bad_request("can't parse results JSON array")
        if len(results) > MAX_INLINE_RESULTS:
            raise bad_request("RESULTS_TOO_MUCH")
        checked, ids = [], set()
        for result in results:
            item = self._check_inline_result(result)
            if item["id"] in ids:
                raise bad_request("RESULT_ID_DUPLICATE")
            ids.add(item["id"])
            checked.append(item)
        next_offset = str(params.get("next_offset") or "")
        if len(next_offset.encode()) > 64:
            raise bad_request("NEXT_OFFSET_INVALID")
        del self._inline_queries[query_id]  # answered once only
        self._inline_answers.append({
            "inline_query_id": query_id, "results": checked, "cache_time": _int_param(params, "cache_time", 300),
            "is_personal": _bool_param(params, "is_personal"), "next_offset": next_offset,
            "seconds": time.monotonic() - sent_at})
        self._cond.notify_all()
        return True

    def _check_inline_result(self, result: Any) -> dict[str, Any]:
        """One InlineQueryResultArticle as Telegram would show and send it, or raise for what it refuses."""
        if not isinstance(result, dict) or result.get("type") != "article":
            raise bad_request("RESULT_TYPE_INVALID")
        result_id = result.get("id")
        if not isinstance(result_id, str) or not 1 <= len(result_id.encode()) <= MAX_INLINE_RESULT_ID_BYTES:
            raise bad_request("RESULT_ID_INVALID")
        title = result.get("title")
        if not isinstance(title, str) or not title.strip():
            raise bad_request("RESULT_TITLE_EMPTY")
        content = result.get("input_message_content")
        if not isinstance(content, dict) or "message_text" not in content:
            raise bad_request("can't parse input_message_content: message_text is required")
        text, entities = self._format(content.get("message_text"), content.get("parse_mode"),
                                      content.get("entities"))
        if not text:
            raise bad_request("MESSAGE_EMPTY")
        if utf16_len(text) > MAX_TEXT_LENGTH:
            raise bad_request("MESSAGE_TOO_LONG")
        self._check_markup(result.get("reply_markup"))
        return {"id": result_id, "title": title, "description": result.get("description"), "text": text,
                "entities": entities, "html": content.get("message_text"),
                "link_preview_options": content.get("link_preview_options")}

    def _get_file(self, params: Params) -> dict[str, Any]:
        stored = self._files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise bad_request("invalid file_id")
        return stored.file()

    # ---- test side: acting as users

    def send_text(self, chat_id: int, text: str, user_id: int | None = None,
                  chat_type: str = "private", first_name: str = "Tester",
                  username: str | None = None, reply_to_message_id: int | None = None,
                  entities: list[dict[str, Any]] | None = None) -> Message:
        """Queue a text message from a user; commands and @mentions get their entities."""
        with self._cond:
            chat_key = _chat_key(chat_id)
            uid = user_id if user_id is not None else (
                chat_id if chat_type == "private" else DEFAULT_GROUP_USER_ID)
            user = self._user(uid, first_name, username)
            self._chat(chat_key, chat_type, user)
            content: dict[str, Any] = {"text": text}
            found = self._auto_entities(text) if entities is None else entities
            if found:
                content["entities"] = found
            record = self._store(chat_key, user, content, False, reply_to_message_id)
            self._queue_update("message", record.message)
            return copy.deepcopy(record.message)

    @staticmethod
    def _auto_entities(text: str) -> list[dict[str, Any]]:
        entities = []
        command = re.match(r"/[A-Za-z0-9_]{1,64}(@[A-Za-z][A-Za-z0-9_]{3,31})?", text)
        if command:
            entities.append({"type": "bot_command", "offset": 0,
                             "length": utf16_len(command.group())})
        for mention in re.finditer(r"(?<![\w@/])@[A-Za-z][A-Za-z0-9_]{3,31}", text):
            if command is None or mention.start() >= command.end():
                entities.append({"type": "mention", "offset": utf16_len(text[: mention.start()]),
                                 "length": utf16_len(mention.group())})
        return entities

    def send_document(self, chat_id: int, filename: str, content: bytes, mime_type: str,
                      user_id: int | None = None, caption: str | None = None) -> Message:
        """Queue a document message from a user; the bytes are downloadable via getFile."""
        with self._cond:
            chat_key = _chat_key(chat_id)
            user = self._user(user_id if user_id is not None else self._default_user_id(chat_key))
            self._chat(chat_key, None, user)
            stored = self._store_file(content, filename, mime_type)
            body: dict[str, Any] = {"document": stored.document()}
            if caption:
                body["caption"] = caption
            record = self._store(chat_key, user, body, False)
            self._queue_update("message", record.message)
            return copy.deepcopy(record.message)

    def enable_inline_mode(self) -> None:
        """Switch inline mode on for the bot, as /setinline at @BotFather does (getMe then says so)."""
        with self._cond:
            self._bot_user["supports_inline_queries"] = True

    def send_inline_query(self, user_id: int, query: str, chat_type: str = "private",
                          offset: str = "") -> str:
        """Queue an inline query (the user typed ``@bot query`` in a chat of ``chat_type``); returns its id.
        It is queued only when the bot's allowed_updates take inline queries."""
        with self._cond:
            if not self._bot_user["supports_inline_queries"]:
                raise ValueError("inline mode is off for this bot: call enable_inline_mode() first")
            query_id = str(5_000_000_000_000_000 + self._serial())
            self._inline_queries[query_id] = time.monotonic()
            self._queue_update("inline_query", {
                "id": query_id, "from": self._user(user_id), "query": query, "offset": offset,
                "chat_type": chat_type})
            return query_id

    def wait_for_inline_answer(self, query_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until the bot answered the inline query: its results (each with the text and entities of
        the message it sends), cache_time, is_personal and the seconds it took."""
        def check() -> dict[str, Any] | None:
            return next((copy.deepcopy(a) for a in self._inline_answers if a["inline_query_id"] == query_id), None)

        return self.wait_until(check, timeout, lambda: f"an answer to inline query {query_id}")

    @property
    def inline_answers(self) -> list[dict[str, Any]]:
        """Every answerInlineQuery the emulator accepted, in order."""
        with self._cond:
            return copy.deepcopy(self._inline_answers)

    def press_button(self, chat_id: int, message_id: int, callback_data: str,
                     user_id: int | None = None, *, check_keyboard: bool = True) -> str:
        """Queue a callback_query for a bot message; returns the callback query id.

        With ``check_keyboard`` the data must belong to a button the message shows now.
        """
        with self._cond:
            chat_key = _chat_key(chat_id)
            record = self._records.get(chat_key, {}).get(message_id)
            if record is None or not record.from_bot or record.deleted:
                raise ValueError(f"no bot message {message_id} in chat {chat_id}")
            rows = (record.message.get("reply_markup") or {}).get("inline_keyboard", [])
            shown = [b.get("callback_data") for row in rows for b in row]
            if check_keyboard and callback_data not in shown:
                raise ValueError(
                    f"message {message_id} has no button {callback_data!r}; shown: {shown}")
            user = self._user(user_id if user_id is not None else self._default_user_id(chat_key))
            query_id = str(4_000_000_000_000_000 + self._serial())
            self._callback_ids.add(query_id)
            self._queue_update("callback_query", {
                "id": query_id, "from": user, "message": record.message,
                "chat_instance": str(zlib.crc32(str(chat_key).encode()) * 7919 + 10**12),
                "data": callback_data})
            return query_id

    # ---- test side: observing the bot

    def wait_until(self, check: Callable[[], T | None], timeout: float,
                   describe: Callable[[], str]) -> T:
        """Re-run ``check`` (under the lock) on every state change until it returns non-None."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = check()
                if result is not None:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    recent = "; ".join(f"{m}: {d}" for m, d in self._errors[-5:]) or "none"
                    raise TimeoutError(f"timed out after {timeout}s waiting for {describe()}; "
                                       f"recent API errors: {recent}")
                self._cond.wait(remaining)

    def wait_for_messages(self, chat_id: int, count: int = 1, timeout: float = 30.0,
                          predicate: Callable[[Message], bool] | None = None) -> list[Message]:
        """Wait until the bot sent ``count`` unread messages (matching ``predicate``) to the chat.

        Returns every unread matching message (current state) and marks all as read.
        """
        chat_key = _chat_key(chat_id)

        def unread() -> list[Message]:
            order = self._bot_order.get(chat_key, [])
            return [self._records[chat_key][mid].snapshot()
                    for mid in order[self._read_cursor.get(chat_key, 0):]]

        def check() -> list[Message] | None:
            matching = [m for m in unread() if predicate is None or predicate(m)]
            if len(matching) < count:
                return None
            self._read_cursor[chat_key] = len(self._bot_order.get(chat_key, []))
            return matching

        return self.wait_until(check, timeout, lambda: (
            f"{count} new bot message(s) in chat {chat_id}; unread: "
            f"{[m['text'] for m in unread()]!r}"))

    def wait_for_edit(self, chat_id: int, message_id: int, timeout: float = 30.0,
                      predicate: Callable[[Message], bool] | None = None) -> Message:
        """Wait until the message was edited since the last wait_for_edit for it."""
        key = (_chat_key(chat_id), message_id)

        def check() -> Message | None:
            record = self._records.get(key[0], {}).get(message_id)
            if record is None or record.edit_count <= self._seen_edits.get(key, 0):
                return None
            snap = record.snapshot()
            if predicate is not None and not predicate(snap):
                return None
            self._seen_edits[key] = record.edit_count
            return snap

        def describe() -> str:
            record = self._records.get(key[0], {}).get(message_id)
            state = record.snapshot()["text"] if record else "<no such message>"
            return f"an edit of message {message_id} in chat {chat_id} (now {state!r})"

        return self.wait_until(check, timeout, describe)

    def wait_for_call(self, method: str, timeout: float = 30.0,
                      predicate: Callable[[Params], bool] | None = None) -> Params:
        """Wait until the bot has called ``method`` (e.g. "getUpdates": it is polling)."""
        def check() -> Params | None:
            return next((dict(p) for m, p in self._calls if m.lower() == method.lower()
                         and (predicate is None or predicate(p))), None)

        return self.wait_until(check, timeout, lambda: f"a {method} call")

    def messages(self, chat_id: int, include_deleted: bool = False) -> list[Message]:
        """Bot-sent messages in the chat, as currently displayed (after edits)."""
        chat_key = _chat_key(chat_id)
        with self._cond:
            snaps = [self._records[chat_key][mid].snapshot()
                     for mid in self._bot_order.get(chat_key, [])]
        return [m for m in snaps if include_deleted or not m["deleted"]]

    def stored_at(self, chat_id: int, message_id: int) -> float:
        """When the emulator stored a message (a user's as it was queued, the bot's as its send call
        arrived), in ``time.monotonic()`` seconds: a reply's minus its question's is the reply time."""
        with self._cond:
            return self._records[_chat_key(chat_id)][message_id].stored_at

    def chat_actions(self, chat_id: int) -> list[str]:
        with self._cond:
            return list(self._chat_actions.get(_chat_key(chat_id), []))

    def calls_of(self, method: str) -> list[Params]:
        """Parameters of every call of ``method`` (case-insensitive), failed ones included."""
        return [p for m, p in self.calls if m.lower() == method.lower()]

    @property
    def answered_callbacks(self) -> list[dict[str, Any]]:
        with self._cond:
            return copy.deepcopy(self._answered)

    @property
    def commands(self) -> dict[str, list[dict[str, Any]]]:
        """setMyCommands results by scope key: "default", "all_private_chats", "chat:<id>",
        "chat_member:<chat>:<user>"; a language code is appended as "|<code>"."""
        with self._cond:
            return copy.deepcopy(self._commands)

    @property
    def calls(self) -> list[tuple[str, Params]]:
        """Every API call as (method, params), in order; unknown methods as sent."""
        with self._cond:
            return [(m, dict(p)) for m, p in self._calls]

    @property
    def errors(self) -> list[tuple[str, str]]:
        """Every error answer as (method, description)."""
        with self._cond:
            return list(self._errors)

    @property
    def pending_update_count(self) -> int:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        with self._cond:
            return len(self._updates)
