import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import index.config
from index.config import DEFAULT_CONFIG, SECTIONS, Settings, coerce, load_settings, section_defaults
from index.errors import ConfigError
from tests.support.helpers import PROJECT, run_cli


def test_defaults_come_from_config_toml() -> None:
    settings = load_settings(environ={})
    assert settings.embedding.model == "bundled"
    assert settings.library.data_dir.is_absolute()
    assert settings.bot.token_env == "TELEGRAM_BOT_TOKEN"


def test_environment_overrides_every_key_and_short_names_win() -> None:
    env = {
        "NEWSBOT_SEARCH_K": "5",
        "NEWSBOT_CHUNKING_TITLE_PREFIX": "false",
        "NEWSBOT_LIBRARY_DATA_DIR": "/tmp/long-name",
        "NEWSBOT_DATA_DIR": "/tmp/short-name",
        "NEWSBOT_ADMIN_IDS": "12, 34",
        "TELEGRAM_API_BASE_URL": "http://127.0.0.1:9",
        "TELEGRAM_BOT_TOKEN": "1:abc",
    }
    settings = load_settings(environ=env)
    assert settings.search.k == 5
    assert settings.chunking.title_prefix is False
    assert settings.library.data_dir == Path("/tmp/short-name")
    assert settings.bot.admin_ids == (12, 34)
    assert settings.bot.api_base_url == "http://127.0.0.1:9"
    assert settings.bot_token(env) == "1:abc"


def test_bad_values_and_unknown_keys_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="search.*k"):
        load_settings(environ={"NEWSBOT_SEARCH_K": "many"})
    config = tmp_path / "config.toml"
    config.write_text("[search]\nkk = 3\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_settings(config, environ={})
    config.write_text("[library]\ndata_dir = 'rel'\n")
    assert load_settings(config, environ={}).library.data_dir == tmp_path / "rel"


# The config file itself: each problem is one ConfigError naming the file and what is wrong.

def _config(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "config.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_an_unknown_section_is_refused_with_the_list_of_sections(tmp_path: Path) -> None:
    config = _config(tmp_path, "[serch]\nk = 5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    message = str(caught.value)
    assert str(config) in message
    assert "unknown section [serch]" in message
    assert ", ".join(SECTIONS) in message


def test_an_unknown_key_is_refused_with_the_keys_of_its_section(tmp_path: Path) -> None:
    config = _config(tmp_path, "[search]\nkk = 3\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    message = str(caught.value)
    assert str(config) in message and "[search]: kk" in message
    assert "k, candidates, rrf_k" in message


@pytest.mark.parametrize("text", ["library = 3\n", "search = 'fast'\n", "bot = [1, 2]\n"])
def test_a_section_given_as_a_value_is_refused(tmp_path: Path, text: str) -> None:
    config = _config(tmp_path, text)
    name = text.split(" ")[0]
    with pytest.raises(ConfigError, match=rf"{name} must be a section \(\[{name}\]") as caught:
        load_settings(config, environ={})
    assert str(config) in str(caught.value)


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, "[fetch]\nuser_agent = 'caf\u00e9 bot'\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8 text") as caught:
        load_settings(config, environ={})
    assert str(config) in str(caught.value)


def test_a_bad_toml_line_is_reported_with_its_line(tmp_path: Path) -> None:
    config = _config(tmp_path, "[search]\nk = 3\ncandidates = \n")
    with pytest.raises(ConfigError, match=r"not valid TOML.*line 3") as caught:
        load_settings(config, environ={})
    assert str(config) in str(caught.value)


def test_a_folder_given_as_the_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder, not a config file"):
        load_settings(tmp_path, environ={})
    with pytest.raises(ConfigError, match="NEWSBOT_CONFIG.*is a folder"):
        load_settings(environ={"NEWSBOT_CONFIG": str(tmp_path)})


def test_a_file_that_cannot_be_read_is_refused(tmp_path: Path) -> None:
    not_a_folder = _config(tmp_path, "[search]\n")
    with pytest.raises(ConfigError, match="cannot be read") as caught:
        load_settings(not_a_folder / "config.toml", environ={})  # its "folder" is a file: fails even as root
    assert str(not_a_folder) in str(caught.value)


def test_a_missing_file_named_by_newsbot_config_or_given_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "config.toml"
    with pytest.raises(ConfigError, match=r"named by NEWSBOT_CONFIG\): no such file") as caught:
        load_settings(environ={"NEWSBOT_CONFIG": str(missing)})
    assert str(missing) in str(caught.value)
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(missing, environ={})
    assert not (tmp_path / "nowhere").exists()


# Values: range checks in each section, named by where the value came from.

OUT_OF_RANGE = [
    ("search", "k", 0, "at least 1"),
    ("search", "k", -1, "at least 1"),
    ("search", "candidates", 2, "at least k (3)"),
    ("search", "rrf_k", -1, "at least 0"),
    ("search", "dense_weight", -0.5, "at least 0"),
    ("search", "recency_days", 0.0, "above 0"),
    ("search", "min_dense_score", 1.5, "between -1 and 1"),
    ("search", "dedup_similarity", 0.0, "above 0 and at most 1"),
    ("search", "lexical_budget", -1, "at least 0"),
    ("chunking", "max_tokens", 8, "at least 16"),
    ("chunking", "overlap_tokens", -1, "at least 0"),
    ("chunking", "overlap_tokens", 192, "below max_tokens (192)"),
    ("embedding", "threads", -2, "at least 0"),
    ("embedding", "batch_size", 0, "at least 1"),
    ("vectors", "exact_limit", 0, "at least 1"),
    ("vectors", "probe_lists", 0, "at least 1"),
    ("fetch", "timeout", 0.0, "above 0"),
    ("fetch", "max_redirects", -1, "at least 0"),
    ("feeds", "poll_minutes", 0.0, "above 0"),
    ("feeds", "check_seconds", -1.0, "above 0"),
    ("feeds", "max_entries_per_poll", 0, "at least 1"),
    ("bot", "webhook_port", 0, "between 1 and 65535"),
    ("bot", "webhook_port", 70000, "between 1 and 65535"),
    ("bot", "list_page_size", 0, "at least 1"),
    ("bot", "poll_timeout", -1, "at least 0"),
    ("library", "max_file_bytes", 0, "at least 1"),
    ("library", "near_duplicate_threshold", 1.5, "between 0 and 1"),
    ("library", "index_save_seconds", -1.0, "at least 0"),
    ("postgres", "pool_min", -1, "at least 0"),
    ("postgres", "pool_max", 0, "at least 1 and at least pool_min"),
    ("postgres", "hnsw_m", 1, "between 2 and 100"),
    ("postgres", "hnsw_ef_construction", 1001, "between 4 and 1000"),
    ("postgres", "hnsw_ef_search", 0, "between 1 and 1000"),
    ("postgres", "result_ttl_hours", 0.0, "above 0"),
    ("reranker", "candidates", -1, "at least 0"),
    ("reranker", "weight", -1.0, "at least 0"),
    ("reranker", "min_probability", 1.5, "at most 1 (negative: the calibrated threshold)"),
]


@pytest.mark.parametrize(("section", "key", "value", "allowed"), OUT_OF_RANGE,
                         ids=[f"{s}.{k}={v}" for s, k, v, _ in OUT_OF_RANGE])
def test_out_of_range_values_are_refused_naming_file_key_and_range(tmp_path: Path, section: str, key: str,
                                                                   value: float, allowed: str) -> None:
    config = _config(tmp_path, f"[{section}]\n{key} = {value!r}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert str(caught.value) == f"{config}: [{section}] {key}: must be {allowed}, not {value:g}"

    variable = f"NEWSBOT_{section}_{key}".upper()
    with pytest.raises(ConfigError, match=rf"^environment {variable}: \[{section}\] {key}: must be"):
        load_settings(environ={variable: str(value)})


@pytest.mark.parametrize(("text", "expected"), [
    ("[search]\nk = 2.5\n", "[search] k: must be a whole number, not 2.5"),
    ("[search]\nk = true\n", "[search] k: must be a whole number, not True"),
    ("[search]\nmin_dense_score = nan\n", "[search] min_dense_score: must be a finite number, not nan"),
    ("[chunking]\ntitle_prefix = 'maybe'\n", "[chunking] title_prefix: must be true or false, not 'maybe'"),
    ("[fetch]\nuser_agent = 3\n", "[fetch] user_agent: must be a text, not 3"),
    ("[bot]\nadmin_ids = ['me']\n", "[bot] admin_ids: must be a list of whole numbers, not ['me']"),
])
def test_values_of_the_wrong_kind_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    config = _config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert str(caught.value) == f"{config}: {expected}"


# Checks across keys: at load, not when the bot runs or a search starts.

@pytest.mark.parametrize(("text", "expected"), [
    ("[bot]\nmode = 'webhook'\n", "[bot] webhook_url: must be an http:// or https:// address when mode is "
                                  "\"webhook\", not ''"),
    ("[bot]\nmode = 'webhook'\nwebhook_url = 'bot.example.org'\n", "[bot] webhook_url: must be an http:// or "
                                                                   "https:// address"),
    ("[bot]\nmode = 'push'\n", "[bot] mode: must be one of polling, webhook, not 'push'"),
    ("[bot]\napi_base_url = 'api.telegram.org'\n", "[bot] api_base_url: must be an http:// or https:// address"),
    ("[reranker]\nfusion = 'sum'\n", "[reranker] fusion: must be one of rank, probability, not 'sum'"),
    ("[reranker]\nprecision = 'fp16'\n", "[reranker] precision: must be one of auto, int8, bf16, fp32, not 'fp16'"),
    ("[search]\nsentence_choice = 'vectors'\n",
     "[search] sentence_choice: must be one of words+meaning, words, not 'vectors'"),
    ("[search]\nk = 20\ncandidates = 10\n", "[search] candidates: must be at least k (20), not 10"),
    ("[postgres]\npool_min = 10\npool_max = 4\n", "[postgres] pool_max: must be at least 1 and at least pool_min"),
    ("[postgres]\nhnsw_m = 48\n", "[postgres] hnsw_ef_construction: must be at least twice hnsw_m (96), not 64"),
    ("[library]\nstore = 'postgres'\n[search]\ncandidates = 1500\n",
     "[search] candidates: must be at most 1000 with [library] store = \"postgres\""),
])
def test_checks_across_keys_fire_at_load(tmp_path: Path, text: str, expected: str) -> None:
    config = _config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert str(caught.value).startswith(f"{config}: {expected}")


def test_webhook_mode_with_its_address_loads_and_choices_are_normalised(tmp_path: Path) -> None:
    config = _config(tmp_path, "[bot]\nmode = ' Webhook '\nwebhook_url = 'https://bot.example.org'\n"
                               "[reranker]\nfusion = 'Probability'\nprecision = 'INT8'\n")
    settings = load_settings(config, environ={})
    assert (settings.bot.mode, settings.reranker.fusion, settings.reranker.precision) == \
        ("webhook", "probability", "int8")


def test_settings_changed_in_code_are_checked_too() -> None:
    settings = load_settings(environ={})
    with pytest.raises(ConfigError, match=r"\[search\] k: must be at least 1, not 0"):
        settings.replace("search", k=0)
    with pytest.raises(ConfigError, match=r"\[bot\] webhook_url"):
        settings.replace("bot", mode="webhook")
    with pytest.raises(ConfigError, match=r"\[search\] candidates: must be at most 1000"):
        settings.replace("search", candidates=5000).replace("library", store="postgres")


# One source for the defaults.

def test_config_toml_says_exactly_the_dataclass_defaults() -> None:
    written = tomllib.loads(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    assert sorted(written) == sorted(SECTIONS)
    for section in SECTIONS:
        defaults = section_defaults(section)
        keys = [f.name for f in dataclasses.fields(defaults)]
        assert sorted(written[section]) == sorted(keys), f"[{section}] in config.toml lists other keys than the code"
        for key_field in dataclasses.fields(defaults):
            default = getattr(defaults, key_field.name)
            value = coerce(written[section][key_field.name], default, f"[{section}] {key_field.name}",
                           str(key_field.type))
            assert value == default, f"[{section}] {key_field.name}: config.toml says {value!r}, the code {default!r}"


def test_loading_is_the_same_with_or_without_config_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_file = load_settings(environ={})
    monkeypatch.setattr(index.config, "DEFAULT_CONFIG", tmp_path / "config.toml")  # as after an install without it
    without_file = load_settings(environ={})
    assert without_file.library.data_dir == tmp_path / "data"
    assert without_file.replace("library", data_dir=with_file.library.data_dir) == with_file
    assert with_file.fetch.user_agent == "news-answers-bot/0.1 (+https://example.org/bot)"
    assert Settings() == with_file.replace("library", data_dir=Path("data"))


# Relative paths.

def test_relative_paths_are_taken_from_the_config_files_folder(tmp_path: Path) -> None:
    config = _config(tmp_path, "[library]\ndata_dir = 'library'\n[reranker]\nmodel = 'models/reranker.safetensors'\n"
                               "[embedding]\nmodel = 'sentence-transformers/all-MiniLM-L6-v2'\n")
    settings = load_settings(config, environ={})
    assert settings.library.data_dir == tmp_path / "library"
    assert settings.reranker.model == str(tmp_path / "models" / "reranker.safetensors")
    assert settings.embedding.model == "sentence-transformers/all-MiniLM-L6-v2"  # a model name, kept as written
    from_env = load_settings(config, environ={"NEWSBOT_RERANKER_MODEL": "other.safetensors"})
    assert from_env.reranker.model == str(tmp_path / "other.safetensors")
    assert load_settings(config, environ={"NEWSBOT_RERANKER_MODEL": "off"}).reranker.model == "off"
    assert load_settings(config, environ={"NEWSBOT_RERANKER_MODEL": "/abs/r.st"}).reranker.model == "/abs/r.st"


# End to end: the commands print one line and no traceback.

BROKEN_CONFIGS = {
    "unknown section": b"[serch]\nk = 3\n",
    "scalar section": b"library = 3\n",
    "not utf-8": b"[fetch]\nuser_agent = 'caf\xe9'\n",
    "bad toml": b"[search]\nk = \n",
    "out of range": b"[search]\nk = 0\n",
    "webhook without url": b"[bot]\nmode = 'webhook'\n",
}


def _assert_one_clear_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("name", list(BROKEN_CONFIGS))
def test_index_command_with_a_broken_config_prints_one_line(tmp_path: Path, name: str) -> None:
    config = tmp_path / "config.toml"
    config.write_bytes(BROKEN_CONFIGS[name])
    result = run_cli("stats", data_dir=tmp_path / "data", env={"NEWSBOT_CONFIG": str(config)})
    _assert_one_clear_line(result, str(config))
    assert not (tmp_path / "data").exists()


def test_index_command_with_a_missing_or_folder_config_prints_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    result = run_cli("stats", data_dir=tmp_path / "data", env={"NEWSBOT_CONFIG": str(missing)})
    _assert_one_clear_line(result, str(missing), "no such file")
    result = run_cli("--config", str(tmp_path), "stats", data_dir=tmp_path / "data")
    _assert_one_clear_line(result, str(tmp_path), "folder")
    assert not (tmp_path / "data").exists()


def test_bot_with_a_broken_config_prints_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_bytes(BROKEN_CONFIGS["webhook without url"])
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "NEWSBOT_CONFIG": str(config),
           "NEWSBOT_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "-m", "bot"], cwd=PROJECT, env=env, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=300)
    _assert_one_clear_line(result, str(config), "webhook_url")
    assert not (tmp_path / "data").exists()
