"""The query service's /openapi.json is valid OpenAPI and true to the running app."""

from __future__ import annotations

from typing import Any

import httpx
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from starlette.routing import Route

from podium.settings import PlatformSettings
from services.query.app import create_app
from shared.db import create_pool
from shared.leaderboard_store import LeaderboardStore
from shared.redis_client import create_redis
from shared.schemas.competition import ResetSchedule
from tests.support.query_seed import make_rows, seed_competition, seed_standings
from tests.support.servers import running_app


def _check(document: dict[str, Any], path: str, status: int, body: Any) -> None:
    content = document["paths"][path]["get"]["responses"][str(status)]["content"]
    schema = content["application/json"]["schema"]
    OAS31Validator({**schema, "components": document["components"]}).validate(body)


async def test_document_is_valid_and_matches_routes_and_responses(
    settings: PlatformSettings,
) -> None:
    app = create_app(settings)
    pool = await create_pool(settings)
    redis = create_redis(settings)
    try:
        store = LeaderboardStore(redis, settings.redis_key_prefix)
        competition = await seed_competition(pool, id="doc", reset=ResetSchedule.MONTHLY)
        await seed_standings(pool, store, competition, make_rows("alltime", 12))
        async with running_app(app, settings) as url, httpx.AsyncClient() as client:
            document = (await client.get(f"{url}/openapi.json")).json()
            validate(document)

            routed = {
                (route.path, method.lower())
                for route in app.routes
                if isinstance(route, Route)
                for method in (route.methods or ())
                if method != "HEAD"
            }
            documented = {
                (path, method) for path, item in document["paths"].items() for method in item
            }
            assert routed == documented

            samples = {
                "/api/v1/leaderboards/{cid}/top": "/api/v1/leaderboards/doc/top?limit=5",
                "/api/v1/leaderboards/{cid}/users/{uid}": "/api/v1/leaderboards/doc/users/u0003",
                "/api/v1/leaderboards/{cid}/around/{uid}": "/api/v1/leaderboards/doc/around/u0003",
                "/api/v1/leaderboards/{cid}/users": "/api/v1/leaderboards/doc/users?ids=u0001,zz",
                "/api/v1/competitions": "/api/v1/competitions",
                "/api/v1/competitions/{cid}": "/api/v1/competitions/doc",
            }
            for template, sample in samples.items():
                response = await client.get(f"{url}{sample}")
                assert response.status_code == 200, sample
                _check(document, template, 200, response.json())
            errors = {
                "/api/v1/leaderboards/{cid}/top": ("/api/v1/leaderboards/doc/top?limit=0", 400),
                "/api/v1/competitions/{cid}": ("/api/v1/competitions/nope", 404),
            }
            for template, (sample, status) in errors.items():
                response = await client.get(f"{url}{sample}")
                assert response.status_code == status
                _check(document, template, status, response.json())
    finally:
        await redis.aclose()
        await pool.close()
