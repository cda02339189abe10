"""The Helm chart's tracing values become OpenTelemetry's standard variables (issue #13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.tracing import TracingSettings
from tests.support.helm import HelmUnavailableError, ensure_helm
from tests.unit.test_deploy_chart import SERVICES, containers, of_kind, render


@pytest.fixture(scope="module")
def helm() -> Path:
    try:
        return ensure_helm()
    except HelmUnavailableError as error:
        pytest.fail(f"no Helm for the chart tests: {error}")


def _otel_env(helm: Path, *sets: str) -> dict[str, dict[str, str]]:
    deployments = of_kind(render(helm, *sets), "Deployment")
    found = {}
    for service in SERVICES:
        (container,) = containers(deployments[f"podium-{service}"])
        found[service] = {
            item["name"]: item["value"]
            for item in container.get("env", [])
            if item["name"].startswith("OTEL_")
        }
    return found


def test_tracing_is_off_by_default(helm: Path) -> None:
    assert _otel_env(helm) == {service: {} for service in SERVICES}


def test_an_endpoint_and_ratio_reach_every_service(
    helm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = _otel_env(
        helm, "tracing.otlpEndpoint=http://otel-collector:4318", "tracing.samplingRatio=0.25"
    )
    expected = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
    }
    assert rendered == {service: expected for service in SERVICES}
    # and Podium reads them as tracing on
    for name, value in expected.items():
        monkeypatch.setenv(name, value)
    settings = TracingSettings()
    assert settings.enabled
    assert settings.otel_traces_sampler_arg == "0.25"
