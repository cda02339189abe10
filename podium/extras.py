"""Which of the ``podium`` tool commands this installation can run.

``pip install podium`` installs the services and their commands only; ``podium dev``,
``podium soak`` and ``podium bench`` also need their code (the ``devstack``, ``soak`` and
``bench`` packages, which the container image leaves out) and their extra's distributions
(``pip install 'podium[soak]'``). A tool whose code is missing is no command at all; one
whose code is there but whose extra is not is hidden from ``--help`` and, when run, fails
with a one-line message naming the install command.

The extras are read from the installed distribution's metadata (pyproject.toml is the only
list). Without that metadata (the source tree on ``PYTHONPATH``) nothing can be said, so the
tool is taken as runnable: its imports then fail as they would anyway.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass

DISTRIBUTION = "podium"

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[([^\]]*)\])?")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


@dataclass(frozen=True, slots=True)
class Tool:
    """A command that runs on the local stack rather than in production."""

    command: str
    extra: str
    packages: tuple[str, ...]


TOOLS = (
    Tool("dev", "devstack", ("podium.dev", "devstack")),
    Tool("soak", "soak", ("soak", "devstack")),
    Tool("bench", "bench", ("bench", "devstack")),
)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def code_present(tool: Tool) -> bool:
    """Whether every package holding the tool's code is importable."""
    try:
        return all(importlib.util.find_spec(package) is not None for package in tool.packages)
    except ModuleNotFoundError:  # a parent package is missing
        return False


def extra_requirements(extra: str) -> list[str] | None:
    """The distribution names ``podium[extra]`` requires (its own extras followed), or None
    when podium's metadata is not installed."""
    try:
        requirements = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    by_extra: dict[str, list[tuple[str, list[str]]]] = {}
    for requirement in requirements:
        requirement_part, _, marker = requirement.partition(";")
        marked = _EXTRA_MARKER.search(marker)
        named = _NAME.match(requirement_part)
        if marked is None or named is None:
            continue
        extras = [part.strip() for part in (named.group(2) or "").split(",") if part.strip()]
        by_extra.setdefault(marked.group(1), []).append((named.group(1), extras))
    names: list[str] = []
    pending, seen = [extra], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for name, extras in by_extra.get(current, []):
            if _canonical(name) == DISTRIBUTION:
                pending.extend(extras)
            elif name not in names:
                names.append(name)
    return names


def missing_distributions(extra: str) -> list[str]:
    """The distributions of ``podium[extra]`` that are not installed."""
    missing = []
    for name in extra_requirements(extra) or []:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def install_hint(tool: Tool, missing: list[str]) -> str:
    """The one-line message for a tool whose extra is not installed."""
    return (
        f"podium {tool.command} needs the {tool.extra!r} extra "
        f"(missing: {', '.join(missing)}): pip install 'podium[{tool.extra}]'"
    )
