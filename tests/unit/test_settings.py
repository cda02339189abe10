"""Settings: validated at start, errors name the variable, each service checks only its own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from podium.apps import ingest_app
from podium.ops.settings_doc import SECTIONS, own_fields, settings_table
from podium.settings import (
    SERVICE_SETTINGS,
    PlatformSettings,
    load_settings,
    load_settings_or_exit,
    unknown_environment_variables,
)
from services.ingest.settings import IngestSettings
from services.ranker.settings import RankerSettings
from shared.settings import (
    DEV_JWT_SECRET,
    CommonSettings,
    UnknownSettingError,
    describe_validation_error,
    settings_environment,
)

GOOD_SECRET = "x" * 40


def _clean_env(**variables: str) -> dict[str, str]:
    base = {key: value for key, value in os.environ.items() if not key.startswith("PODIUM_")}
    return {**base, **variables}


def _podium(*arguments: str, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podium.cli", *arguments],
        env=_clean_env(**variables),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(autouse=True)
def _no_podium_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from an environment without ``PODIUM_*`` variables."""
    for name in [name for name in os.environ if name.upper().startswith("PODIUM_")]:
        monkeypatch.delenv(name)


def test_bad_port_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_INGEST_PORT", "abc")
    monkeypatch.setenv("PODIUM_JWT_SECRETS", GOOD_SECRET)
    with pytest.raises(ValidationError) as caught:
        load_settings(IngestSettings)
    message = describe_validation_error(caught.value)
    assert "PODIUM_INGEST_PORT" in message
    assert "\n" not in message


def test_process_refuses_to_start_with_one_line_error() -> None:
    result = _podium(
        "serve",
        "ingest",
        PODIUM_INGEST_PORT="abc",
        PODIUM_RANKER_BATCH_SIZE="abc",
        PODIUM_JWT_SECRETS=GOOD_SECRET,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "PODIUM_INGEST_PORT" in lines[0]
    # the ranker's value is the ranker's business: ingest neither reads nor checks it
    assert "PODIUM_RANKER_BATCH_SIZE" not in lines[0]


def test_unknown_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_INGEST_PROT", "8001")
    for settings_class in (CommonSettings, *SERVICE_SETTINGS.values(), PlatformSettings):
        with pytest.raises(UnknownSettingError, match="PODIUM_INGEST_PROT"):
            load_settings(settings_class, env="dev")


def test_a_typo_stops_podium_serve_ingest_with_one_line() -> None:
    result = _podium("serve", "ingest", PODIUM_INGEST_PROT="1", PODIUM_JWT_SECRETS=GOOD_SECRET)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["podium: invalid configuration: unknown setting PODIUM_INGEST_PROT"]


def test_another_services_bad_value_does_not_stop_ingest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_RANKER_BATCH_SIZE", "abc")
    monkeypatch.setenv("PODIUM_QUERY_CACHE_TTL_MS", "-1")
    monkeypatch.setenv("PODIUM_WS_QUEUE_SIZE", "many")
    monkeypatch.setenv("PODIUM_INGEST_PORT", "9101")
    monkeypatch.setenv("PODIUM_JWT_SECRETS", GOOD_SECRET)
    settings = load_settings_or_exit(IngestSettings)
    assert settings.ingest_port == 9101
    assert not hasattr(settings, "ranker_batch_size")
    # what each uvicorn worker of `podium serve ingest` calls: it builds (and does not exit)
    assert ingest_app().state.settings == settings
    # the ranker itself is stopped by it
    with pytest.raises(ValidationError, match="ranker_batch_size"):
        load_settings(RankerSettings)


def test_another_services_bad_value_stops_only_that_service() -> None:
    variables = {"PODIUM_RANKER_BATCH_SIZE": "abc", "PODIUM_JWT_SECRETS": GOOD_SECRET}
    token = _podium("token", "--sub", "ops", "--scope", "admin", **variables)
    assert token.returncode == 0, token.stderr
    ranker = _podium("ranker", **variables)
    assert ranker.returncode == 2
    assert "PODIUM_RANKER_BATCH_SIZE" in ranker.stderr.strip().splitlines()[0]


def test_every_service_variable_is_a_known_name() -> None:
    environment = {
        name: "1"
        for settings_class in SERVICE_SETTINGS.values()
        for name in settings_environment(settings_class(env="dev"))
    }
    assert unknown_environment_variables({**environment, "PODIUM_DEV_DATA_DIR": "x"}) == []
    assert unknown_environment_variables({"podium_ingest_prot": "1"}) == ["podium_ingest_prot"]


def test_service_classes_share_only_the_common_fields() -> None:
    common = set(CommonSettings.model_fields)
    owned = [set(own_fields(settings_class)) for settings_class in SERVICE_SETTINGS.values()]
    for index, fields in enumerate(owned):
        assert not fields & common
        for other in owned[index + 1 :]:
            assert not fields & other
    assert set(PlatformSettings.model_fields) == common.union(*owned) | {"dev_data_dir"}


def test_the_reference_table_names_who_reads_each_variable() -> None:
    rows = [line.split(" | ") for line in settings_table().splitlines()[2:]]
    used_by = {row[0].strip("| `"): row[1] for row in rows}
    assert len(rows) == len(used_by) == len(PlatformSettings.model_fields)
    assert used_by["PODIUM_JWT_SECRETS"] == "all services"
    assert used_by["PODIUM_RATE_PLAYER_PER_S"] == "ingest"
    assert used_by["PODIUM_RANKER_BATCH_SIZE"] == "ranker"
    assert used_by["PODIUM_DATABASE_READ_URL"] == "all services"
    assert used_by["PODIUM_WS_MAX_MESSAGE_BYTES"] == "notifier"
    assert used_by["PODIUM_DEV_DATA_DIR"] == "`podium dev`"
    assert [settings_class for settings_class, _ in SECTIONS][1:5] == list(
        SERVICE_SETTINGS.values()
    )


def test_production_requires_a_secret() -> None:
    with pytest.raises(ValidationError, match="PODIUM_JWT_SECRETS"):
        CommonSettings(env="production")


def test_production_refuses_a_short_secret() -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        IngestSettings(env="production", jwt_secrets="short-secret")  # type: ignore[arg-type]


def test_dev_mode_gets_a_dev_secret() -> None:
    assert RankerSettings(env="dev").signing_secret == DEV_JWT_SECRET


def test_secret_list_from_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_JWT_SECRETS", f"{'a' * 32},{'b' * 32}")
    settings = load_settings(CommonSettings)
    assert settings.signing_secret == "a" * 32
    assert settings.verification_secrets == ["a" * 32, "b" * 32]


def test_settings_environment_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    original = PlatformSettings(
        env="test",
        jwt_secrets=[GOOD_SECRET, "y" * 40],  # type: ignore[list-item]
        cors_allow_origins=["https://a.example", "https://b.example"],
        trusted_proxies=["10.0.0.0/8", "192.0.2.1"],
        ingest_port=9100,
        kafka_enable_idempotence=True,
    )
    for name, value in settings_environment(original).items():
        monkeypatch.setenv(name, value)
    assert load_settings(PlatformSettings) == original
    ingest = load_settings(IngestSettings)
    assert ingest.trusted_proxies == ["10.0.0.0/8", "192.0.2.1"]
    assert ingest.model_dump() == original.model_dump(include=set(IngestSettings.model_fields))
