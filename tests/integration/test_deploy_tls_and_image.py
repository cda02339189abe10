"""TLS for direct exposure, the container healthcheck, and the Dockerfile's shape (issue #9).

No Docker engine runs here, so the image is checked as a file: stages, user, healthcheck,
and that the build context it copies holds what it needs.
"""

from __future__ import annotations

import ast
import asyncio
import fnmatch
import os
import re
import ssl
import subprocess
import sys
from pathlib import Path

import httpx

from devstack.processes import free_port
from podium.settings import PlatformSettings
from services.query.app import create_app as create_query
from tests.support.servers import running_app

ROOT = Path(__file__).resolve().parents[2]
HEALTHCHECK = ROOT / "deploy" / "docker" / "healthcheck.py"


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1, made with the openssl CLI."""
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key_path), "-out", str(cert_path), "-days", "1",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )  # fmt: skip
    return cert_path, key_path


async def _healthcheck(environment: dict[str, str]) -> tuple[int, str]:
    """Run the container HEALTHCHECK script without blocking the loop serving the app."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HEALTHCHECK),
        env={**base, **environment},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_service_serves_https_with_the_configured_certificate(
    settings: PlatformSettings, tmp_path: Path
) -> None:
    cert_path, key_path = _self_signed(tmp_path)
    tls_settings = settings.model_copy(
        update={"tls_certfile": str(cert_path), "tls_keyfile": str(key_path)}
    )
    port = free_port()
    async with running_app(create_query(tls_settings), tls_settings, port=port):
        async with httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=cert_path), timeout=10
        ) as client:
            live = await client.get(f"https://127.0.0.1:{port}/health/live")
            assert live.status_code == 200
            assert live.headers["strict-transport-security"].startswith("max-age=")
        async with httpx.AsyncClient(timeout=10) as plain:
            refused = False
            try:
                await plain.get(f"http://127.0.0.1:{port}/health/live")
            except httpx.HTTPError:
                refused = True
            assert refused, "plain HTTP must not be served on the TLS port"
        # the container healthcheck speaks HTTPS when a certificate is configured
        status, errors = await _healthcheck(
            {"PODIUM_QUERY_PORT": str(port), "PODIUM_TLS_CERTFILE": "x"}
        )
        assert status == 0, errors


async def test_container_healthcheck_follows_the_service_port(settings: PlatformSettings) -> None:
    port = free_port()
    async with running_app(create_query(settings), settings, port=port):
        other_ports = {
            "PODIUM_INGEST_PORT": str(free_port()),
            "PODIUM_NOTIFIER_PORT": str(free_port()),
            "PODIUM_RANKER_PORT": str(free_port()),
        }
        status, errors = await _healthcheck({**other_ports, "PODIUM_QUERY_PORT": str(port)})
        assert status == 0, errors
    status, errors = await _healthcheck({**other_ports, "PODIUM_QUERY_PORT": str(port)})
    assert status == 1
    assert "no /health/live answered" in errors


def _stages(dockerfile: str) -> list[str]:
    return re.split(r"(?m)^FROM ", dockerfile)[1:]


def test_dockerfile_is_multi_stage_slim_non_root_with_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = _stages(dockerfile)
    assert len(stages) == 2
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in dockerfile
    build, runtime = stages
    assert build.startswith("${PYTHON_IMAGE} AS build")
    assert runtime.startswith("${PYTHON_IMAGE} AS runtime")
    # runtime dependencies (and the backup extra's client tools) only, and nothing is
    # installed in the final stage
    installs = re.findall(r"pip install [^\n]*", build)
    assert installs == ['pip install --no-compile -c constraints.txt ".[backup]" \\'], installs
    instructions = [ln for ln in dockerfile.splitlines() if not ln.lstrip().startswith("#")]
    for extra in ("dev", "devstack", "soak", "bench"):
        assert not [ln for ln in instructions if re.search(rf"[\[,]{extra}[\],]", ln)], extra
    assert "pip install" not in runtime
    assert "apt-get" not in runtime
    assert re.search(r"(?m)^USER 10001:10001$", runtime)
    assert re.search(
        r"(?m)^HEALTHCHECK .*\n\s+CMD \[\"python\", \"/opt/podium/healthcheck.py\"\]", runtime
    )
    assert 'ENTRYPOINT ["podium"]' in runtime
    # the chart runs the same uid
    values = (ROOT / "deploy/helm/podium/values.yaml").read_text()
    assert "runAsUser: 10001" in values


def _copied_sources(dockerfile: str) -> list[str]:
    sources = []
    for line in re.findall(r"(?m)^COPY (?!--from)(.+)$", dockerfile):
        *from_context, _destination = line.split()
        sources.extend(from_context)
    return sources


def _in_build_context(path: str, patterns: list[str]) -> bool:
    """Whether Docker sends ``path`` (relative to the context): the last .dockerignore
    pattern matching it or one of its parent directories decides; ``!`` re-includes."""
    parts = path.split("/")
    candidates = ["/".join(parts[: end + 1]) for end in range(len(parts))]
    included = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!").strip("/")
        globs = {glob, glob.removeprefix("**/")}
        if any(fnmatch.fnmatchcase(candidate, g) for candidate in candidates for g in globs):
            included = negated
    return included


def test_docker_build_context_holds_what_the_dockerfile_copies() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    for source in _copied_sources(dockerfile):
        assert (ROOT / source).exists(), source
        assert _in_build_context(source, patterns), source
    assert _in_build_context("services/notifier/static/leaderboard.js", patterns)
    assert _in_build_context("shared/migrations/__init__.py", patterns)
    for left_out in (
        ".git", ".venv", ".ci", "tests", "test-artifacts", "docs", "deploy/helm", "Makefile",
        "devstack", "soak", "bench", "podium/__pycache__", "podium.egg-info",
    ):  # fmt: skip
        assert not _in_build_context(left_out, patterns), left_out


def test_the_image_holds_the_production_commands_code_and_no_tool() -> None:
    """podium/, shared/ and services/ go in; devstack/, soak/ and bench/ stay out, so the CLI
    in the image has no dev, soak or bench (podium.extras), and nothing else it runs imports
    them (the tool commands import their package when run)."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    build = _stages(dockerfile)[0]
    copied = {source.rstrip("/") for source in _copied_sources(build)}
    assert copied == {
        "pyproject.toml", "constraints.txt", "README.md", "podium", "shared", "services",
    }  # fmt: skip
    tools = {"devstack", "soak", "bench"}
    tool_commands = {"dev", "soak", "bench"}
    for top in ("podium", "shared", "services"):
        for path in (ROOT / top).rglob("*.py"):
            if path.relative_to(ROOT).as_posix() == "podium/dev.py":
                continue  # the dev command's own module
            tree = ast.parse(path.read_text())
            allowed: set[int] = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef) and node.name in tool_commands:
                    allowed.update(id(inner) for inner in ast.walk(node))
            for node in ast.walk(tree):
                if id(node) in allowed:
                    continue
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                assert not {name.split(".")[0] for name in names} & tools, (path, names)
                assert "podium.dev" not in names, path
