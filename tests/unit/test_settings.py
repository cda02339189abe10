"""Settings: validated at start, errors name the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from shared.settings import (
    DEV_JWT_SECRET,
    Settings,
    UnknownSettingError,
    describe_validation_error,
    load_settings,
    settings_environment,
)

GOOD_SECRET = "x" * 40


def _clean_env(**variables: str) -> dict[str, str]:
    base = {key: value for key, value in os.environ.items() if not key.startswith("PODIUM_")}
    return {**base, **variables}


def test_bad_port_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_INGEST_PORT", "abc")
    monkeypatch.setenv("PODIUM_JWT_SECRETS", GOOD_SECRET)
    with pytest.raises(ValidationError) as caught:
        load_settings()
    message = describe_validation_error(caught.value)
    assert "PODIUM_INGEST_PORT" in message
    assert "\n" not in message


def test_process_refuses_to_start_with_one_line_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "podium.cli", "serve", "ingest"],
        env=_clean_env(PODIUM_INGEST_PORT="abc", PODIUM_JWT_SECRETS=GOOD_SECRET),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "PODIUM_INGEST_PORT" in lines[0]


def test_unknown_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_INGEST_PROT", "8001")
    with pytest.raises(UnknownSettingError, match="PODIUM_INGEST_PROT"):
        load_settings(env="dev")


def test_production_requires_a_secret() -> None:
    with pytest.raises(ValidationError, match="PODIUM_JWT_SECRETS"):
        Settings(env="production")


def test_production_refuses_a_short_secret() -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(env="production", jwt_secrets="short-secret")  # type: ignore[arg-type]


def test_dev_mode_gets_a_dev_secret() -> None:
    assert Settings(env="dev").signing_secret == DEV_JWT_SECRET


def test_secret_list_from_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_JWT_SECRETS", f"{'a' * 32},{'b' * 32}")
    settings = load_settings()
    assert settings.signing_secret == "a" * 32
    assert settings.verification_secrets == ["a" * 32, "b" * 32]


def test_settings_environment_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Settings(
        env="test",
        jwt_secrets=[GOOD_SECRET, "y" * 40],  # type: ignore[list-item]
        cors_allow_origins=["https://a.example", "https://b.example"],
        ingest_port=9100,
        kafka_enable_idempotence=True,
    )
    for name, value in settings_environment(original).items():
        monkeypatch.setenv(name, value)
    assert load_settings() == original
