"""docs/operations.md only shows commands that work (issue #9, acceptance 4).

Each `podium ...` line in a shell block must name an existing command with options it
accepts (checked on the click command and by running its ``--help``); each `helm lint` /
`helm template` line runs for real against the chart.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import click
import pytest

from podium.cli import main
from tests.support.helm import ensure_helm
from tests.support.servers import podium_command

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operations.md"


def shell_lines(prefix: str) -> list[str]:
    """Logical lines (backslash continuations joined) in ```sh blocks starting with prefix."""
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            stripped = line.strip()
            if stripped.startswith(prefix + " "):
                lines.append(stripped)
    return lines


PODIUM_LINES = shell_lines("podium")
HELM_LINES = [line for line in shell_lines("helm") if line.split()[1] in ("lint", "template")]


def test_the_runbook_covers_the_required_topics() -> None:
    text = DOC.read_text()
    for heading in (
        "## Deploying with Helm",
        "## Scaling",
        "## Blue-green and canary",
        "## Secret rotation (JWT)",
        "## Backups and disaster recovery",
        "## Troubleshooting",
        "### Production Kafka",
        "### TLS",
    ):
        assert heading in text
    for fact in ("replication factor 3", "min.insync.replicas=2", "acks=all", "py-spy"):
        assert fact in text
    assert {line.split()[1] for line in PODIUM_LINES} >= {"backup", "restore", "rebuild"}
    assert len(HELM_LINES) >= 3


@pytest.mark.parametrize("line", PODIUM_LINES)
def test_podium_command_exists_with_its_options(line: str) -> None:
    words = shlex.split(line)[1:]
    command = main.commands.get(words[0])
    assert command is not None, f"no `podium {words[0]}`"
    known = {opt for param in command.params for opt in getattr(param, "opts", [])}
    for word in words[1:]:
        if word.startswith("--"):
            assert word in known, f"`podium {words[0]}` has no option {word}"
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    for argument in arguments:
        choices = getattr(argument.type, "choices", None)
        if choices:
            assert any(word in choices for word in words[1:]), line
    result = subprocess.run(
        podium_command(words[0], "--help"), capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert f"Usage: python -m podium.cli {words[0]}" in result.stdout


@pytest.mark.parametrize("line", HELM_LINES)
def test_helm_command_runs_against_the_chart(line: str) -> None:
    words = shlex.split(line)
    result = subprocess.run(
        [str(ensure_helm()), *words[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_kubectl_lines_name_resources_the_chart_creates() -> None:
    rendered = subprocess.run(
        [str(ensure_helm()), "template", "podium", str(ROOT / "deploy/helm/podium")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    names = set(re.findall(r"^  name: (\S+)$", rendered, flags=re.MULTILINE))
    for line in shell_lines("kubectl"):
        for resource in re.findall(r"deployment/(\S+)", line):
            assert resource in names, line
