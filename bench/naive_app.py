"""The baseline a team would hand-roll instead of Podium.

One Starlette endpoint doing a bare ``ZADD`` per POST and one doing ``ZREVRANGE 0 9
WITHSCORES`` per GET: no auth, no validation, no durable log. Served by uvicorn with the same
worker count as Podium's services in the benchmark.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import orjson
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DEFAULT_KEY = "naive:leaderboard"


def create_app() -> Starlette:
    """The naive leaderboard app (``NAIVE_REDIS_URL``; its sorted set is ``NAIVE_REDIS_KEY``)."""
    redis = Redis.from_url(os.environ.get("NAIVE_REDIS_URL", "redis://127.0.0.1:6379/0"))
    key = os.environ.get("NAIVE_REDIS_KEY", DEFAULT_KEY)

    async def post_score(request: Request) -> Response:
        body = orjson.loads(await request.body())
        await redis.zadd(key, {body["user_id"]: body["value"]})
        return Response(b'{"status":"ok"}', status_code=202, media_type="application/json")

    async def top(request: Request) -> Response:
        rows: list[tuple[bytes, float]] = await redis.zrevrange(key, 0, 9, withscores=True)  # type: ignore[assignment]
        entries = [{"user_id": member.decode(), "score": score} for member, score in rows]
        return Response(orjson.dumps({"entries": entries}), media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await redis.aclose()

    return Starlette(
        routes=[Route("/scores", post_score, methods=["POST"]), Route("/top", top)],
        lifespan=lifespan,
    )
