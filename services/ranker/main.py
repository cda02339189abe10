"""The ranker process: ``podium ranker`` runs the faust worker (agent, health and metrics)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from services.ranker.agent import create_faust_app, run_worker
from services.ranker.settings import RankerSettings


def run(settings: RankerSettings) -> int:
    """Run the ranker until SIGINT/SIGTERM; returns the exit status (2: bad configuration)."""
    with tempfile.TemporaryDirectory(prefix="podium-ranker-") as datadir:
        try:
            app = create_faust_app(settings, Path(datadir))
        except ValueError as error:
            print(f"podium: invalid configuration: {error}", file=sys.stderr)
            return 2
        return run_worker(app, settings.log_level)
