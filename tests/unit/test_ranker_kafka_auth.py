"""The ranker maps Kafka security settings onto faust credentials."""

from __future__ import annotations

import faust
import pytest

from services.ranker.agent import broker_credentials
from services.ranker.settings import RankerSettings

SECRET = "unit-secret-0123456789-0123456789-abcdef"


def _settings(**fields: object) -> RankerSettings:
    return RankerSettings(env="test", jwt_secrets=[SECRET], **fields)  # type: ignore[arg-type]


def test_plaintext_needs_no_credentials() -> None:
    assert broker_credentials(_settings()) is None


def test_sasl_ssl_carries_user_password_mechanism_and_tls() -> None:
    credentials = broker_credentials(
        _settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="ranker",
            kafka_sasl_password="pw",
        )
    )
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password) == ("ranker", "pw")
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.ssl_context is not None


def test_ssl_uses_a_tls_context() -> None:
    assert isinstance(
        broker_credentials(_settings(kafka_security_protocol="SSL")), faust.SSLCredentials
    )


def test_sasl_without_mechanism_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="PODIUM_KAFKA_SASL_MECHANISM"):
        broker_credentials(_settings(kafka_security_protocol="SASL_PLAINTEXT"))
