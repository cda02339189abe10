"""The Helm chart's `podium prune` CronJob and dedup horizon value (issue #18)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import CommonSettings
from tests.support.helm import HelmUnavailableError, ensure_helm
from tests.unit.test_deploy_chart import _pod_environment, _settings_from, of_kind, render


@pytest.fixture(scope="module")
def helm() -> Path:
    try:
        return ensure_helm()
    except HelmUnavailableError as error:
        pytest.fail(f"no Helm for the chart tests: {error}")


def test_prune_runs_daily_by_default_with_a_valid_environment(
    helm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = render(helm)
    (cronjob,) = of_kind(manifests, "CronJob").values()
    assert cronjob["metadata"]["name"] == "podium-prune"
    assert cronjob["spec"]["schedule"] == "17 3 * * *"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["enableServiceLinks"] is False
    (container,) = pod["containers"]
    assert container["args"] == ["prune"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    (configmap,) = of_kind(manifests, "ConfigMap").values()
    settings = _settings_from(_pod_environment(configmap, container), monkeypatch, CommonSettings)
    assert settings.dedup_horizon_days == 30


def test_the_horizon_value_reaches_every_pod_and_prune_can_be_turned_off(helm: Path) -> None:
    manifests = render(helm, "postgres.dedupHorizonDays=45", "prune.enabled=false")
    assert of_kind(manifests, "CronJob") == {}
    (configmap,) = of_kind(manifests, "ConfigMap").values()
    assert configmap["data"]["PODIUM_DEDUP_HORIZON_DAYS"] == "45"  # ingest, ranker, prune agree
