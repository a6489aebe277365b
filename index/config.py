"""Settings: one frozen dataclass per config.toml section, checked when it is built.

The dataclass defaults are the only source of default values; config.toml repeats them for the reader
(tests/test_config.py keeps the two equal), so loading works the same with or without that file.
``load_settings`` reads a config file and the environment, and every value that cannot be used ends in
one ConfigError naming where it came from, the key, and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, NoReturn

from index.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config.toml"
CONFIG_ENV = "NEWSBOT_CONFIG"
ENV_PREFIX = "NEWSBOT_"
# Short environment names that win over NEWSBOT_<SECTION>_<KEY>.
ENV_ALIASES = {
    "NEWSBOT_DATA_DIR": ("library", "data_dir"),
    "NEWSBOT_ADMIN_IDS": ("bot", "admin_ids"),
    "TELEGRAM_API_BASE_URL": ("bot", "api_base_url"),
    "NEWSBOT_POSTGRES_DSN": ("postgres", "dsn"),
}

LIBRARY_STORES = ("embedded", "postgres")
# postgres.keyword_index: postings lists on each process's disk, kept current from the database's change
# log (index/stores/postgres/keyword_mirror.py), or BM25 computed in SQL (PostgresStore.lexical_search).
POSTGRES_KEYWORD_INDEXES = ("local", "database")
# postgres.vector_index: pgvector's HNSW graph, or its IVFFlat lists refitted as the library grows
# (index/stores/postgres/vector_layout.py).
POSTGRES_VECTOR_INDEXES = ("hnsw", "ivfflat")
EMBEDDING_PRECISIONS = ("auto", "fp32", "bf16")
EMBEDDING_RUNTIMES = ("auto", "torch", "openvino")
# How a passage's answering sentence is chosen: by the question's words it holds, or also by its
# embedding's closeness to the question's (every sentence of the page embedded at each question).
SENTENCE_CHOICES = ("words+meaning", "words")
RERANKER_FUSIONS = ("rank", "probability")
RERANKER_PRECISIONS = ("auto", "int8", "bf16", "fp32")
RERANKER_OFF = ("", "off", "none", "false")  # reranker.model values that switch reranking off
BOT_MODES = ("polling", "webhook")
# pgvector's limits on its HNSW index: build parameters, and hnsw.ef_search (which is also at least the
# number of candidates a search asks for).
HNSW_M = (2, 100)
HNSW_EF_CONSTRUCTION = (4, 1000)
HNSW_EF_SEARCH = (1, 1000)
IVFFLAT_PROBES = (1, 32768)


class SettingError(ConfigError):
    """A value one section cannot use: names the section and key, so that the loader can say where the
    value came from."""

    def __init__(self, section: str, key: str, allowed: str, value: Any) -> None:
        self.section = section
        self.key = key
        super().__init__(f"[{section}] {key}: must be {allowed}, not {_show(value)}")


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (str, Path)):
        return repr(str(value))
    return str(value)


class _Checks:
    """The range checks of one section's values, each failure a SettingError naming its key."""

    def __init__(self, section: str, values: Any) -> None:
        self.section = section
        self.values = values

    def fail(self, key: str, allowed: str) -> NoReturn:
        raise SettingError(self.section, key, allowed, getattr(self.values, key))

    def at_least(self, key: str, low: float, named: str = "") -> None:
        # Written as "not (x >= low)" so that NaN fails too.
        if not getattr(self.values, key) >= low:
            self.fail(key, f"at least {named or _show(low)}")

    def above(self, key: str, low: float, named: str = "") -> None:
        if not getattr(self.values, key) > low:
            self.fail(key, f"above {named or _show(low)}")

    def between(self, key: str, low: float, high: float) -> None:
        if not low <= getattr(self.values, key) <= high:
            self.fail(key, f"between {_show(low)} and {_show(high)}")

    def one_of(self, key: str, choices: tuple[str, ...]) -> None:
        """Also normalises the value (case and surrounding spaces do not matter)."""
        value = str(getattr(self.values, key)).strip().lower()
        object.__setattr__(self.values, key, value)
        if value not in choices:
            self.fail(key, f"one of {', '.join(choices)}")

    def web_address(self, key: str, when: str = "") -> None:
        if not str(getattr(self.values, key)).lower().startswith(("http://", "https://")):
            self.fail(key, f"an http:// or https:// address{when}")


@dataclass(frozen=True)
class LibrarySettings:
    store: str = "embedded"
    data_dir: Path = Path("data")
    lock_timeout: float = 10.0  # negative: wait as long as it takes
    index_save_seconds: float = 5.0
    max_file_bytes: int = 10_000_000
    min_article_words: int = 30
    near_duplicate_threshold: float = 0.8  # 0: no near-duplicate check

    def __post_init__(self) -> None:
        check = _Checks("library", self)
        check.one_of("store", LIBRARY_STORES)
        check.at_least("index_save_seconds", 0)
        check.at_least("max_file_bytes", 1)
        check.at_least("min_article_words", 0)
        check.between("near_duplicate_threshold", 0, 1)


@dataclass(frozen=True)
class PostgresSettings:
    dsn: str = ""
    pool_min: int = 1
    pool_max: int = 8
    hnsw_m: int = 16
    hnsw_ef_construction: int = 64
    hnsw_ef_search: int = 400
    # The vector index's method (POSTGRES_VECTOR_INDEXES), and the lists an IVFFlat search reads.
    vector_index: str = "hnsw"
    ivfflat_probes: int = 10
    # Answers kept for the "More passages" and "Sources" buttons (index/stores/postgres/results.py).
    result_ttl_hours: float = 48.0
    result_max_per_chat: int = 100
    # Streaming standbys that serve searches (index/stores/postgres/replicas.py), and how far behind one may be.
    read_dsns: tuple[str, ...] = ()
    replica_max_lag_seconds: float = 5.0
    # Where the keyword search's BM25 runs: POSTGRES_KEYWORD_INDEXES.
    keyword_index: str = "local"

    def __post_init__(self) -> None:
        check = _Checks("postgres", self)
        check.one_of("keyword_index", POSTGRES_KEYWORD_INDEXES)
        check.one_of("vector_index", POSTGRES_VECTOR_INDEXES)
        check.between("ivfflat_probes", *IVFFLAT_PROBES)
        check.at_least("replica_max_lag_seconds", 0)
        check.at_least("pool_min", 0)
        check.at_least("pool_max", max(1, self.pool_min), "1 and at least pool_min")
        check.between("hnsw_m", *HNSW_M)
        check.between("hnsw_ef_construction", *HNSW_EF_CONSTRUCTION)
        check.at_least("hnsw_ef_construction", 2 * self.hnsw_m, f"twice hnsw_m ({2 * self.hnsw_m})")
        check.between("hnsw_ef_search", *HNSW_EF_SEARCH)
        check.above("result_ttl_hours", 0)
        check.at_least("result_max_per_chat", 1)


@dataclass(frozen=True)
class EmbeddingSettings:
    model: str = "bundled"
    device: str = "cpu"
    batch_size: int = 32
    threads: int = 0  # 0: one per core
    precision: str = "auto"
    runtime: str = "auto"
    # Text put before each question / each passage ("" = the model's own prompt, if it has one).
    query_prompt: str = ""
    document_prompt: str = ""

    def __post_init__(self) -> None:
        check = _Checks("embedding", self)
        check.one_of("precision", EMBEDDING_PRECISIONS)
        check.one_of("runtime", EMBEDDING_RUNTIMES)
        if not self.model.strip():
            check.fail("model", '"bundled", a model name or a folder')
        check.at_least("batch_size", 1)
        check.at_least("threads", 0)


@dataclass(frozen=True)
class ChunkingSettings:
    max_tokens: int = 192
    overlap_tokens: int = 32
    title_prefix: bool = True

    def __post_init__(self) -> None:
        check = _Checks("chunking", self)
        check.at_least("max_tokens", 16)  # the chunker's own floor (index/ingest/chunking.py)
        check.at_least("overlap_tokens", 0)
        if not self.overlap_tokens < self.max_tokens:
            check.fail("overlap_tokens", f"below max_tokens ({self.max_tokens})")


@dataclass(frozen=True)
class SearchSettings:
    k: int = 3
    candidates: int = 100
    rrf_k: int = 60
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    recency_weight: float = 0.02
    recency_days: float = 7.0
    lexical_budget: int = 20_000  # 0: always every word
    min_dense_score: float = 0.30
    dedup_similarity: float = 0.95
    sentence_choice: str = "words+meaning"
    sentence_keyword_weight: float = 0.3

    def __post_init__(self) -> None:
        check = _Checks("search", self)
        check.one_of("sentence_choice", SENTENCE_CHOICES)
        check.at_least("k", 1)
        check.at_least("candidates", self.k, f"k ({self.k})")
        check.at_least("rrf_k", 0)
        for weight in ("dense_weight", "lexical_weight", "recency_weight", "sentence_keyword_weight"):
            check.at_least(weight, 0)
        check.above("recency_days", 0)
        check.at_least("lexical_budget", 0)
        # Both compare with the cosine of unit vectors; a dedup_similarity of 0 or less would drop
        # every passage after the first.
        check.between("min_dense_score", -1, 1)
        if not 0 < self.dedup_similarity <= 1:
            check.fail("dedup_similarity", "above 0 and at most 1")


@dataclass(frozen=True)
class VectorSettings:
    exact_limit: int = 100_000
    probe_lists: int = 24

    def __post_init__(self) -> None:
        check = _Checks("vectors", self)
        check.at_least("exact_limit", 1)
        check.at_least("probe_lists", 1)


@dataclass(frozen=True)
class RerankerSettings:
    model: str = "off"
    candidates: int = 20  # 0: no reranking
    fusion: str = "rank"
    weight: float = 2.0
    min_probability: float = -1.0  # negative: the threshold calibrated when the file was trained
    precision: str = "auto"
    mark_sentences: bool = True

    def __post_init__(self) -> None:
        check = _Checks("reranker", self)
        check.at_least("candidates", 0)
        check.one_of("fusion", RERANKER_FUSIONS)
        check.at_least("weight", 0)
        if not self.min_probability <= 1:
            check.fail("min_probability", "at most 1 (negative: the calibrated threshold)")
        check.one_of("precision", RERANKER_PRECISIONS)


@dataclass(frozen=True)
class SentenceSettings:
    scorer: str = "off"  # "shipped", a file from `python -m index train-sentence-scorer`, or "off"
    weight: float = 1.0  # how much its probability adds to a sentence's cosine-and-keyword score
    precision: str = "auto"

    def __post_init__(self) -> None:
        check = _Checks("sentences", self)
        check.at_least("weight", 0)
        check.one_of("precision", RERANKER_PRECISIONS)


@dataclass(frozen=True)
class FetchSettings:
    timeout: float = 15.0
    max_redirects: int = 5
    user_agent: str = "news-answers-bot/0.1 (+https://example.org/bot)"
    allow_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check = _Checks("fetch", self)
        check.above("timeout", 0)
        check.at_least("max_redirects", 0)
        if not self.user_agent.strip():
            check.fail("user_agent", "a name for the bot's downloads")


@dataclass(frozen=True)
class FeedSettings:
    poll_minutes: float = 30.0
    max_entries_per_poll: int = 20
    check_seconds: float = 60.0

    def __post_init__(self) -> None:
        check = _Checks("feeds", self)
        check.above("poll_minutes", 0)
        check.at_least("max_entries_per_poll", 1)
        check.above("check_seconds", 0)


@dataclass(frozen=True)
class BotSettings:
    token_env: str = "TELEGRAM_BOT_TOKEN"
    api_base_url: str = "https://api.telegram.org"
    admin_ids: tuple[int, ...] = ()
    mode: str = "polling"
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    webhook_url: str = ""
    poll_timeout: int = 10
    list_page_size: int = 10
    inline: bool = True  # answer inline queries (@thebot question in any chat)

    def __post_init__(self) -> None:
        check = _Checks("bot", self)
        if not self.token_env.strip():
            check.fail("token_env", "the name of an environment variable")
        check.web_address("api_base_url")
        check.one_of("mode", BOT_MODES)
        if self.mode == "webhook":
            check.web_address("webhook_url", ' when mode is "webhook"')
        check.between("webhook_port", 1, 65535)
        check.at_least("poll_timeout", 0)
        check.at_least("list_page_size", 1)


@dataclass(frozen=True)
class ConversationSettings:
    ttl_minutes: float = 30.0  # a question this long after the chat's last one starts afresh
    turns: int = 3  # earlier questions a follow-up is read with

    def __post_init__(self) -> None:
        check = _Checks("conversation", self)
        check.above("ttl_minutes", 0)
        check.between("turns", 1, 20)


@dataclass(frozen=True)
class InsightsSettings:
    enabled: bool = True  # false: no question or vote is stored
    retention_days: float = 30.0  # stored questions and votes are deleted after this many days
    period_days: float = 7.0  # the period /insights and `python -m index insights` report by default
    group_similarity: float = 0.75  # open questions at least this alike (cosine) are one group
    groups_shown: int = 10
    reask_limit: int = 200  # open questions asked again after each add, newest first
    digest: bool = False  # a weekly digest of the report to every admin

    def __post_init__(self) -> None:
        check = _Checks("insights", self)
        check.above("retention_days", 0)
        check.above("period_days", 0)
        check.between("group_similarity", 0, 1)
        check.at_least("groups_shown", 1)
        check.at_least("reask_limit", 0)


@dataclass(frozen=True)
class AlertSettings:
    enabled: bool = True  # false: /follow is refused and no topic is matched
    max_topics: int = 10  # per reader
    max_per_day: int = 5  # alerts a reader gets in any 24 hours
    min_score: float = 0.55  # a passage's cosine with the topic, at least (see docs/benchmarks.md)
    candidates: int = 5  # passages of the topic's hybrid ranking a new article's passage must be among
    send_seconds: float = 15.0  # how often the bot sends the alerts and notices that wait

    def __post_init__(self) -> None:
        check = _Checks("alerts", self)
        check.at_least("max_topics", 1)
        check.at_least("max_per_day", 1)
        check.between("min_score", -1, 1)
        check.at_least("candidates", 1)
        check.above("send_seconds", 0)


@dataclass(frozen=True)
class Settings:
    library: LibrarySettings = field(default_factory=LibrarySettings)
    postgres: PostgresSettings = field(default_factory=PostgresSettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    chunking: ChunkingSettings = field(default_factory=ChunkingSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    vectors: VectorSettings = field(default_factory=VectorSettings)
    reranker: RerankerSettings = field(default_factory=RerankerSettings)
    sentences: SentenceSettings = field(default_factory=SentenceSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    feeds: FeedSettings = field(default_factory=FeedSettings)
    bot: BotSettings = field(default_factory=BotSettings)
    conversation: ConversationSettings = field(default_factory=ConversationSettings)
    insights: InsightsSettings = field(default_factory=InsightsSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)

    def __post_init__(self) -> None:
        """Checks across sections."""
        limit = HNSW_EF_SEARCH[1]
        if self.library.store == "postgres" and self.search.candidates > limit:
            raise SettingError("search", "candidates", f'at most {limit} with [library] store = "postgres" '
                               "(pgvector's hnsw.ef_search limit)", self.search.candidates)

    def bot_token(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The Telegram token from the environment variable named by bot.token_env."""
        env = os.environ if environ is None else environ
        token = env.get(self.bot.token_env, "").strip()
        return token or None

    def replace(self, section: str, **values: Any) -> "Settings":
        """A copy with some keys of one section changed (checked like loaded values)."""
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **values)})


SECTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Settings))


def section_defaults(section: str) -> Any:
    """The default settings of one section (the dataclass with its defaults)."""
    return next(f for f in dataclasses.fields(Settings) if f.name == section).default_factory()  # type: ignore[misc]


def coerce(value: Any, default: Any, where: str, type_hint: str = "") -> Any:
    """Turn a TOML or environment value into the type of the field's default (tuples: ints unless the
    field is declared as a tuple of str)."""
    kind = _kind(default, type_hint)
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in {"1", "true", "yes", "on"}:
                    return True
                if lowered in {"0", "false", "no", "off"}:
                    return False
                raise ValueError(value)
            if not isinstance(value, (bool, int)):
                raise TypeError(value)
            return bool(value)
        if isinstance(value, bool):
            raise TypeError(value)  # true/false where a number or a text is expected
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(value)
            return number
        if isinstance(default, Path):
            return Path(value)
        if isinstance(default, tuple):
            items = value.replace(";", ",").split(",") if isinstance(value, str) else list(value)
            convert = str if "str" in type_hint else int
            return tuple(convert(str(item).strip()) for item in items if str(item).strip())
        if not isinstance(value, str):
            raise TypeError(value)
        return value
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{where}: must be {kind}, not {value!r}") from None


def _kind(default: Any, type_hint: str) -> str:
    """What a key's values must be, in words."""
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "a whole number"
    if isinstance(default, float):
        return "a finite number"
    if isinstance(default, Path):
        return "a path"
    if isinstance(default, tuple):
        return "a list of texts" if "str" in type_hint else "a list of whole numbers"
    return "a text"


def load_settings(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (else the file NEWSBOT_CONFIG names, else config.toml beside the package, whose
    absence means the defaults) and apply environment overrides."""
    env = os.environ if environ is None else environ
    if path is not None:
        config_path, named_as = Path(path), f"config file {path}"
    elif env.get(CONFIG_ENV):
        config_path, named_as = Path(env[CONFIG_ENV]), f"{env[CONFIG_ENV]} (named by {CONFIG_ENV})"
    else:
        config_path, named_as = DEFAULT_CONFIG, ""
    raw = _read_config(config_path, named_as)
    source = str(config_path) if raw is not None else "defaults"
    raw = raw or {}
    _check_sections(raw, source)
    base_dir = config_path.expanduser().resolve().parent

    sections: dict[str, Any] = {}
    origins: dict[tuple[str, str], str] = {}
    for name in SECTIONS:
        defaults = section_defaults(name)
        given = raw.get(name, {})
        values: dict[str, Any] = {}
        for key_field in dataclasses.fields(defaults):
            key = key_field.name
            value, origins[name, key] = _given_value(name, key, given, env, source)
            try:
                value = coerce(value, getattr(defaults, key), f"[{name}] {key}", str(key_field.type))
            except ConfigError as exc:
                raise ConfigError(f"{origins[name, key]}: {exc}") from None
            values[key] = _resolved_path(name, key, value, base_dir)
        try:
            sections[name] = dataclasses.replace(defaults, **values)
        except SettingError as exc:
            raise ConfigError(f"{origins[exc.section, exc.key]}: {exc}") from None
    try:
        return Settings(**sections)
    except SettingError as exc:
        raise ConfigError(f"{origins[exc.section, exc.key]}: {exc}") from None


def _read_config(config_path: Path, named_as: str) -> dict[str, Any] | None:
    """The parsed file; None when the default config.toml is absent. A file named by the caller or by
    NEWSBOT_CONFIG (``named_as`` says how) must exist."""
    where = named_as or str(config_path)
    try:
        mode = config_path.expanduser().stat().st_mode
    except FileNotFoundError:
        if not named_as:
            return None
        raise ConfigError(f"{where}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise ConfigError(f"{where}: is a folder, not a config file")
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{where}: is not a regular file")
    try:
        data = config_path.expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{config_path}: is not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x}); "
                          "save it as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: not valid TOML: {exc}") from None


def _check_sections(raw: Mapping[str, Any], source: str) -> None:
    """Every top-level name is a known section holding known keys."""
    for name, given in raw.items():
        if name not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [{name}]; the sections are: {', '.join(SECTIONS)}")
        if not isinstance(given, dict):
            raise ConfigError(f"{source}: {name} must be a section ([{name}] with its keys below it), "
                              f"not {given!r}")
        known = [f.name for f in dataclasses.fields(section_defaults(name))]
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) in [{name}]: {', '.join(unknown)}; "
                              f"the keys of [{name}] are: {', '.join(known)}")


def _given_value(section: str, key: str, given: Mapping[str, Any], env: Mapping[str, str],
                 source: str) -> tuple[Any, str]:
    """A key's value and where it came from: a short environment name, else NEWSBOT_<SECTION>_<KEY>,
    else the config file, else the default."""
    for alias, target in ENV_ALIASES.items():
        if target == (section, key) and alias in env:
            return env[alias], f"environment {alias}"
    env_name = f"{ENV_PREFIX}{section}_{key}".upper()
    if env_name in env:
        return env[env_name], f"environment {env_name}"
    if key in given:
        return given[key], source
    return getattr(section_defaults(section), key), source


def _resolved_path(section: str, key: str, value: Any, base_dir: Path) -> Any:
    """library.data_dir, and reranker.model and sentences.scorer when they name a file, with a relative
    path taken from the config file's folder (wherever the value came from)."""
    if (section, key) == ("library", "data_dir"):
        path = value.expanduser()
        return path if path.is_absolute() else base_dir / path
    if (section, key) in {("reranker", "model"), ("sentences", "scorer")} and \
            value.strip().lower() not in RERANKER_OFF + ("shipped",):
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else base_dir / path)
    return value
