"""The ingest OpenAPI document is valid OpenAPI 3 and lists exactly the app's routes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel
from starlette.routing import Route

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from shared.http.openapi import Operation, Parameter, build_openapi, error_responses

SECRET = "unit-test-secret-0123456789-0123456789-ab"


async def _document() -> tuple[Any, dict[str, Any]]:
    app = create_app(IngestSettings(env="test", jwt_secrets=[SECRET]))  # type: ignore[arg-type]
    # ASGITransport does not run the lifespan, so no client is opened
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    return app, response.json()


async def test_document_is_valid_openapi_3() -> None:
    _, document = await _document()
    validate(document)
    assert document["openapi"].startswith("3.")


async def test_document_lists_exactly_the_app_routes() -> None:
    app, document = await _document()
    served = {
        (method, route.path)
        for route in app.routes
        if isinstance(route, Route)
        for method in (route.methods or set()) - {"HEAD"}
    }
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert documented == served
    assert ("POST", "/api/v1/scores") in documented
    assert ("POST", "/api/v1/competitions/{competition_id}/users/{user_id}/ban") in documented


async def test_score_operation_references_the_pydantic_schemas() -> None:
    _, document = await _document()
    post = document["paths"]["/api/v1/scores"]["post"]
    body_ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert set(schema["required"]) == {"event_id", "competition_id", "user_id", "value"}
    assert post["security"] == [{"bearer": []}]
    assert {"202", "401", "403", "413", "415", "422", "429", "503"} <= set(post["responses"])


class _Thing(BaseModel):
    name: str


async def _endpoint(request: Any) -> Any:  # pragma: no cover - never called
    raise NotImplementedError


def test_builder_strips_convertors_and_refuses_duplicates() -> None:
    operation = Operation(
        "GET",
        "/things/{thing_id:int}",
        "Read a thing",
        _endpoint,
        responses={200: _Thing, **error_responses(404)},
        parameters=(Parameter("thing_id", "path", "The id.", schema={"type": "integer"}),),
    )
    document = build_openapi("things", "1", [operation])
    validate(document)
    assert "/things/{thing_id}" in document["paths"]
    assert operation.route().path == "/things/{thing_id:int}"
    with pytest.raises(ValueError, match="declared twice"):
        build_openapi("things", "1", [operation, operation])
