"""Settings: config.toml defaults, overridden by environment variables, as plain objects."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from index.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config.toml"
ENV_PREFIX = "NEWSBOT_"
# Short environment names that win over NEWSBOT_<SECTION>_<KEY>.
ENV_ALIASES = {
    "NEWSBOT_DATA_DIR": ("library", "data_dir"),
    "NEWSBOT_ADMIN_IDS": ("bot", "admin_ids"),
    "TELEGRAM_API_BASE_URL": ("bot", "api_base_url"),
    "NEWSBOT_POSTGRES_DSN": ("postgres", "dsn"),
}


LIBRARY_STORES = ("embedded", "postgres")


@dataclass(frozen=True)
class LibrarySettings:
    store: str = "embedded"
    data_dir: Path = Path("data")
    lock_timeout: float = 10.0
    index_save_seconds: float = 5.0
    max_file_bytes: int = 10_000_000
    min_article_words: int = 30
    near_duplicate_threshold: float = 0.8

    def __post_init__(self) -> None:
        object.__setattr__(self, "store", str(self.store).strip().lower())
        if self.store not in LIBRARY_STORES:
            raise ConfigError(f"[library] store: must be one of {', '.join(LIBRARY_STORES)}, not {self.store!r}")


@dataclass(frozen=True)
class PostgresSettings:
    dsn: str = ""
    pool_min: int = 1
    pool_max: int = 8
    hnsw_m: int = 16
    hnsw_ef_construction: int = 64
    hnsw_ef_search: int = 400
    # Answers kept for the "More passages" and "Sources" buttons (index/stores/postgres/results.py).
    result_ttl_hours: float = 48.0
    result_max_per_chat: int = 100

    def __post_init__(self) -> None:
        if self.result_ttl_hours <= 0:
            raise ConfigError(f"[postgres] result_ttl_hours: must be above 0, not {self.result_ttl_hours:g}")
        if self.result_max_per_chat < 1:
            raise ConfigError(f"[postgres] result_max_per_chat: must be at least 1, not {self.result_max_per_chat}")


EMBEDDING_PRECISIONS = ("auto", "fp32", "bf16")
EMBEDDING_RUNTIMES = ("auto", "torch", "openvino")


@dataclass(frozen=True)
class EmbeddingSettings:
    model: str = "bundled"
    device: str = "cpu"
    batch_size: int = 32
    threads: int = 0
    precision: str = "auto"
    runtime: str = "auto"

    def __post_init__(self) -> None:
        for name, choices in (("precision", EMBEDDING_PRECISIONS), ("runtime", EMBEDDING_RUNTIMES)):
            value = str(getattr(self, name)).strip().lower()
            object.__setattr__(self, name, value)
            if value not in choices:
                raise ConfigError(f"[embedding] {name}: must be one of {', '.join(choices)}, not {value!r}")
        if self.batch_size < 1:
            raise ConfigError(f"[embedding] batch_size: must be at least 1, not {self.batch_size}")


@dataclass(frozen=True)
class ChunkingSettings:
    max_tokens: int = 192
    overlap_tokens: int = 32
    title_prefix: bool = True


@dataclass(frozen=True)
class SearchSettings:
    k: int = 3
    candidates: int = 100
    rrf_k: int = 60
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    recency_weight: float = 0.02
    recency_days: float = 7.0
    lexical_budget: int = 20_000
    min_dense_score: float = 0.30
    dedup_similarity: float = 0.95
    sentence_keyword_weight: float = 0.3


@dataclass(frozen=True)
class VectorSettings:
    exact_limit: int = 100_000
    probe_lists: int = 24


@dataclass(frozen=True)
class RerankerSettings:
    model: str = "off"
    candidates: int = 20
    fusion: str = "rank"
    weight: float = 2.0
    min_probability: float = -1.0
    precision: str = "auto"
    mark_sentences: bool = True


@dataclass(frozen=True)
class FetchSettings:
    timeout: float = 15.0
    max_redirects: int = 5
    user_agent: str = "news-answers-bot/0.1"
    allow_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeedSettings:
    poll_minutes: float = 30.0
    max_entries_per_poll: int = 20
    check_seconds: float = 60.0


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


@dataclass(frozen=True)
class Settings:
    library: LibrarySettings = field(default_factory=LibrarySettings)
    postgres: PostgresSettings = field(default_factory=PostgresSettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    chunking: ChunkingSettings = field(default_factory=ChunkingSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    vectors: VectorSettings = field(default_factory=VectorSettings)
    reranker: RerankerSettings = field(default_factory=RerankerSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    feeds: FeedSettings = field(default_factory=FeedSettings)
    bot: BotSettings = field(default_factory=BotSettings)

    def bot_token(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The Telegram token from the environment variable named by bot.token_env."""
        env = os.environ if environ is None else environ
        token = env.get(self.bot.token_env, "").strip()
        return token or None

    def replace(self, section: str, **values: Any) -> "Settings":
        """A copy with some keys of one section changed."""
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **values)})


def coerce(value: Any, default: Any, where: str, type_hint: str = "") -> Any:
    """Turn a TOML or environment value into the type of the field's default (tuples: ints unless the
    field is declared as a tuple of str)."""
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in {"1", "true", "yes", "on"}:
                    return True
                if lowered in {"0", "false", "no", "off"}:
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, Path):
            return Path(value)
        if isinstance(default, tuple):
            items = value.replace(";", ",").split(",") if isinstance(value, str) else list(value)
            convert = str if "str" in type_hint else int
            return tuple(convert(str(item).strip()) for item in items if str(item).strip())
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot use {value!r} ({exc})") from None


def load_settings(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read config.toml (or NEWSBOT_CONFIG, or ``path``) and apply environment overrides."""
    env = os.environ if environ is None else environ
    config_path = Path(path or env.get("NEWSBOT_CONFIG") or DEFAULT_CONFIG)
    raw: dict[str, Any] = {}
    if config_path.exists():
        try:
            raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: {exc}") from None
    elif path is not None:
        raise ConfigError(f"config file not found: {config_path}")
    base_dir = config_path.resolve().parent

    sections: dict[str, Any] = {}
    for section_field in dataclasses.fields(Settings):
        name = section_field.name
        defaults = section_field.default_factory()  # type: ignore[misc]
        given = raw.get(name, {})
        unknown = set(given) - {f.name for f in dataclasses.fields(defaults)}
        if unknown:
            raise ConfigError(f"{config_path}: unknown key(s) in [{name}]: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for key_field in dataclasses.fields(defaults):
            key = key_field.name
            default = getattr(defaults, key)
            value = given.get(key, default)
            env_name = f"{ENV_PREFIX}{name}_{key}".upper()
            if env_name in env:
                value = env[env_name]
            for alias, target in ENV_ALIASES.items():
                if target == (name, key) and alias in env:
                    value = env[alias]
            values[key] = coerce(value, default, f"[{name}] {key}", str(key_field.type))
        sections[name] = dataclasses.replace(defaults, **values)

    settings = Settings(**sections)
    data_dir = settings.library.data_dir.expanduser()
    if not data_dir.is_absolute():
        data_dir = base_dir / data_dir
    return settings.replace("library", data_dir=data_dir)
