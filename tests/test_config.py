from pathlib import Path

import pytest

from index.config import load_settings
from index.errors import ConfigError


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
