"""Every metric the alerts and the dashboard use is one the running services export
(issue #9, acceptance 3).

ingest, query and notifier run as real HTTP servers and the ranker as `podium ranker`,
against the real broker, PostgreSQL and Redis. Traffic first exercises the paths whose
labelled series appear only on first use (a score accepted and applied, a poison record
dead-lettered); then /metrics of every service is scraped and each metric name in the
rendered PrometheusRule must have samples, and each in deploy/grafana/podium.json must be
registered by some service.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from devstack.processes import free_port
from podium.settings import PlatformSettings
from services.ingest.app import create_app as create_ingest
from services.notifier.app import create_app as create_notifier
from services.query.app import create_app as create_query
from shared.kafka import create_producer
from tests.support.helm import ensure_helm
from tests.support.servers import (
    podium_command,
    process_environment,
    running_app,
    running_process,
    wait_until_ready,
)

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "podium"
DASHBOARD = ROOT / "deploy" / "grafana" / "podium.json"
# Series Prometheus itself makes (not exported by a service).
PROMETHEUS_BUILTINS = {"up"}
METRIC_NAME = re.compile(r"\b(podium_[a-z0-9_]+|up)\b(?!\s*\()")


def alert_expressions() -> dict[str, str]:
    """alert name → PromQL expression, from the chart's rendered PrometheusRule."""
    rendered = subprocess.run(
        [str(ensure_helm()), "template", "podium", str(CHART)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    (rule,) = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "PrometheusRule"]
    expressions: dict[str, str] = {}
    for group in rule["spec"]["groups"]:
        for alert in group["rules"]:
            key = alert["alert"]
            if "service" in alert.get("labels", {}):
                key += f"[{alert['labels']['service']}]"
            expressions[key] = alert["expr"]
    return expressions


def dashboard_expressions() -> dict[str, str]:
    """panel title → PromQL expression(s), from the Grafana dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return {
        f"{panel['title']}#{index}": target["expr"]
        for panel in dashboard["panels"]
        for index, target in enumerate(panel.get("targets", []))
    }


def referenced_metrics(expression: str) -> set[str]:
    """Metric names in a PromQL expression (function names and label values excluded)."""
    without_strings = re.sub(r'"[^"]*"', '""', expression)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    return set(METRIC_NAME.findall(without_labels))


def exported_samples(text: str) -> set[str]:
    """Names of the samples (with _total/_bucket suffixes) in a /metrics page."""
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def registered_names(text: str) -> set[str]:
    """Every name a metric of the page may be queried by, samples or not yet (a labelled
    metric is listed with HELP/TYPE before its first use)."""
    suffixes = ("", "_total", "_bucket", "_count", "_sum", "_created")
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in suffixes
    }


def test_metric_names_are_extracted_from_promql() -> None:
    expression = (
        "histogram_quantile(0.95, sum by (service, le) (rate("
        'podium_http_request_duration_seconds_bucket{service="podium_x"}[5m]))) > 0.2'
        ' and up{job=~"podium-.*"} == 0'
    )
    assert referenced_metrics(expression) == {"podium_http_request_duration_seconds_bucket", "up"}


async def _scrape(client: httpx.AsyncClient, base_url: str) -> str:
    response = await client.get(f"{base_url}/metrics")
    assert response.status_code == 200
    return response.text


async def _wait_for(
    client: httpx.AsyncClient, base_url: str, done: Callable[[str], bool], what: str
) -> str:
    deadline = time.monotonic() + 90
    while True:
        text = await _scrape(client, base_url)
        if done(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not show on {base_url}/metrics")
        await asyncio.sleep(0.5)


async def _exercise(
    client: httpx.AsyncClient, settings: PlatformSettings, urls: dict[str, str], admin_token: str
) -> None:
    """First use of every path whose series appear only then."""
    for base_url in urls.values():
        assert (await client.get(f"{base_url}/health/ready")).status_code == 200
        assert (await client.get(f"{base_url}/no-such-route")).status_code == 404
    auth = {"Authorization": f"Bearer {admin_token}"}
    created = await client.post(
        f"{urls['ingest']}/api/v1/competitions",
        json={"id": "alerts-check", "name": "Alerts check"},
        headers=auth,
    )
    assert created.status_code == 201, created.text
    accepted = await client.post(
        f"{urls['ingest']}/api/v1/scores",
        json={"event_id": "e-1", "competition_id": "alerts-check", "user_id": "u1", "value": 5},
        headers=auth,
    )
    assert accepted.status_code == 202, accepted.text
    assert (await client.get(f"{urls['query']}/api/v1/competitions")).status_code == 200
    producer = create_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic_score_events, b"not json", key=b"alerts-check")
    finally:
        await producer.stop()


async def test_every_alert_and_dashboard_metric_is_exported(
    settings: PlatformSettings, artifacts_dir: Path, token_for: Callable[..., str]
) -> None:
    ranker_port = free_port()
    ranker_settings = settings.model_copy(update={"ranker_port": ranker_port})
    ranker_url = f"http://127.0.0.1:{ranker_port}"
    with running_process(
        podium_command("ranker"),
        process_environment(ranker_settings),
        artifacts_dir / "deploy-alerts-ranker.log",
    ) as ranker:
        async with (
            running_app(create_ingest(settings), settings) as ingest_url,
            running_app(create_query(settings), settings) as query_url,
            running_app(create_notifier(settings), settings) as notifier_url,
            httpx.AsyncClient(timeout=10) as client,
        ):
            await wait_until_ready(ranker_url, timeout_s=90)
            urls = {"ingest": ingest_url, "query": query_url, "notifier": notifier_url}
            await _exercise(client, settings, urls, token_for("ops", "admin"))
            ranker_text = await _wait_for(
                client,
                ranker_url,
                lambda text: (
                    "podium_ranker_dead_letters_total{" in text
                    and "podium_ranker_consumer_lag_seconds{" in text
                ),
                "the applied event and the dead letter",
            )
            pages = [ranker_text, *[await _scrape(client, url) for url in urls.values()]]
        assert ranker.poll() is None, "the ranker exited"

    # Alerts need series now: an alert over a metric without samples can never fire.
    exported = set().union(*(exported_samples(page) for page in pages)) | PROMETHEUS_BUILTINS
    missing = {
        alert: sorted(referenced_metrics(expression) - exported)
        for alert, expression in alert_expressions().items()
        if referenced_metrics(expression) - exported
    }
    assert not missing, f"alerts over metrics without samples: {missing}"
    # Dashboard panels may show series that appear on first use (a WebSocket message
    # type, a rejection reason); the metric must still be one a service registers.
    registered = set().union(*(registered_names(page) for page in pages))
    unknown = {
        panel: sorted(referenced_metrics(expression) - registered)
        for panel, expression in dashboard_expressions().items()
        if referenced_metrics(expression) - registered
    }
    assert not unknown, f"dashboard panels over metrics no service registers: {unknown}"
