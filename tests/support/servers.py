"""Running Podium apps and processes for tests: real HTTP servers on free ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette

from devstack.processes import free_port
from services.notifier.app import websocket_limits
from services.notifier.settings import NotifierSettings
from shared.http.server import uvicorn_config
from shared.settings import CommonSettings, settings_environment


@contextlib.asynccontextmanager
async def running_app(
    app: Starlette, settings: CommonSettings, port: int | None = None
) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn in this event loop (lifespan included); yields its base URL.

    Settings that carry the notifier's fields get its WebSocket limits, as ``podium serve
    notifier`` applies them (the tests' settings carry every service's fields).
    """
    port = port or free_port()
    websocket = websocket_limits(settings) if isinstance(settings, NotifierSettings) else None
    config = uvicorn_config(app, settings, port, websocket=websocket, host="127.0.0.1")
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]  # pytest owns signals
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped during start-up")
        if time.monotonic() > deadline:
            raise TimeoutError("server did not start")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


def podium_command(*arguments: str) -> list[str]:
    """The command line running ``podium <arguments>`` with this interpreter."""
    return [sys.executable, "-m", "podium.cli", *arguments]


def process_environment(settings: CommonSettings, **extra: str) -> dict[str, str]:
    """The environment of a Podium child process: PATH etc. plus ``settings`` as variables."""
    base = {key: value for key, value in os.environ.items() if not key.startswith("PODIUM_")}
    return {**base, **settings_environment(settings), **extra}


@contextlib.contextmanager
def running_process(
    command: Sequence[str],
    env: dict[str, str],
    log_path: Path,
    *,
    stop_signal: int = signal.SIGTERM,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` in its own process group with output to ``log_path``; stop it after."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            list(command), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, stop_signal)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


async def wait_until_ready(base_url: str, timeout_s: float = 60) -> None:
    """Poll ``/health/ready`` until it answers 200."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{base_url}/health/ready")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{base_url} not ready after {timeout_s} s")
