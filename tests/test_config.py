"""Configuration: file < environment, validation that names the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedisocial.config import example_toml, load_settings
from fedisocial.errors import ConfigError

REPO = Path(__file__).parent.parent


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    # Given a config file naming one URL
    path = tmp_path / "fedisocial.toml"
    path.write_text('base_url = "https://file.example"\ninstance_name = "From file"\n')
    # When the environment names another
    settings = load_settings(path, environ={"FEDISOCIAL_BASE_URL": "https://env.example/"})
    # Then the environment wins, the file fills the rest, the slash is trimmed
    assert settings.base_url == "https://env.example"
    assert settings.instance_name == "From file"
    assert settings.netloc == "env.example"


@pytest.mark.parametrize(
    ("environ", "field", "hint"),
    [
        ({"FEDISOCIAL_BASE_URL": "http://social.example"}, "base_url", "https"),
        ({"FEDISOCIAL_BASE_URL": "social.example"}, "base_url", "absolute URL"),
        ({"FEDISOCIAL_BASE_URL": "https://a.example/sub"}, "base_url", "path"),
        ({"FEDISOCIAL_REGISTRATIONS": "maybe"}, "registrations", "open, approval, closed"),
        ({"FEDISOCIAL_DATABASE_URL": "mysql://x"}, "database_url", "postgresql+asyncpg"),
        ({"FEDISOCIAL_ALLOW_PRIVATE_NETWORKS": "perhaps"}, "allow_private_networks", "true"),
        ({"FEDISOCIAL_HTTP_TIMEOUT": "soon"}, "http_timeout", "number"),
        ({"FEDISOCIAL_HTTP_TIMEOUT": "0"}, "http_timeout", "greater than zero"),
    ],
)
def test_invalid_values_name_the_field(
    tmp_path: Path, environ: dict[str, str], field: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "absent.toml", environ=environ)
    assert caught.value.field == field
    assert hint in caught.value.message


def test_loopback_http_is_allowed(tmp_path: Path) -> None:
    for url in ("http://127.0.0.1:8001", "http://localhost:8000", "http://[::1]:9000"):
        assert load_settings(tmp_path / "x.toml", environ={"FEDISOCIAL_BASE_URL": url}).base_url


def test_unknown_keys_and_bad_toml_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "fedisocial.toml"
    path.write_text('base_uri = "https://typo.example"\n')
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(path, environ={})
    path.write_text("base_url = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path, environ={})


def test_secrets_are_masked() -> None:
    settings = load_settings(
        "/nonexistent.toml",
        environ={"FEDISOCIAL_DATABASE_URL": "postgresql+asyncpg://u:hunter2@db.example/social"},
    )
    shown = " ".join(value for _, value, _ in settings.describe())
    assert "hunter2" not in shown
    assert "u:***@db.example" in shown


def test_example_config_is_current_and_loads(tmp_path: Path) -> None:
    # The shipped example is exactly what `fedisocial init` writes, and it is valid.
    example = REPO / "conf" / "fedisocial.example.toml"
    assert example.read_text() == example_toml()
    assert load_settings(example, environ={}).base_url == "http://127.0.0.1:8000"


def test_ai_images_section_and_key_fallback(tmp_path: Path) -> None:
    # Given an [ai.images] table and a key only in OPENAI_API_KEY
    path = tmp_path / "fedisocial.toml"
    path.write_text('[ai.images]\nbase_url = "http://127.0.0.1:9999/v1"\nmodel = "dall-e-3"\n')
    settings = load_settings(path, environ={"OPENAI_API_KEY": "sk-secret-1234"})
    # Then the table fills the fields, the key is found, and the provider follows
    assert settings.ai_images_model == "dall-e-3"
    assert settings.ai_images_api_key == "sk-secret-1234"
    assert settings.image_provider == "openai"
    shown = {name: value for name, value, _ in settings.describe()}
    assert shown["ai.images.api_key"] == "********" and "sk-secret" not in str(shown)
    # and our own variable wins over OpenAI's
    both = {"OPENAI_API_KEY": "sk-a", "FEDISOCIAL_OPENAI_API_KEY": "sk-b"}
    assert load_settings(path, environ=both).ai_images_api_key == "sk-b"
    # and with nothing configured, the offline renderer is the default
    assert load_settings(tmp_path / "none.toml", environ={}).image_provider == "local"
    path.write_text("[ai.images]\nmodle = 1\n")
    with pytest.raises(ConfigError, match=r"ai\.images\.modle"):
        load_settings(path, environ={})


def test_assistant_section_and_its_bounds(tmp_path: Path) -> None:
    # Given an [assistant] table
    path = tmp_path / "fedisocial.toml"
    path.write_text('[assistant]\nusername = "helper"\nper_actor_per_hour = 2\nenabled = false\n')
    settings = load_settings(path, environ={})
    assert (settings.assistant_username, settings.assistant_per_actor_per_hour) == ("helper", 2)
    assert settings.assistant_enabled is False and settings.assistant_per_actor_per_day == 20
    # A quota of zero is refused, naming the setting as the file spells it
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={"FEDISOCIAL_ASSISTANT_THREAD_DEPTH": "0"})
    assert caught.value.field == "assistant.thread_depth"
