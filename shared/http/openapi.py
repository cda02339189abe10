"""A small OpenAPI 3.1 builder: routes declared once, served and documented from that one list.

A service describes each endpoint as an :class:`Operation` (method, path, summary,
parameters, request model, response models by status, required scopes) and gets both its
Starlette routes and its document from the same list, so the document cannot drift from
the app::

    operations = [
        Operation("POST", "/api/v1/things", "Create a thing", create_thing,
                  request_model=ThingIn, responses={201: Thing, **error_responses(401, 422)},
                  scopes=("admin",)),
    ]
    document = build_openapi("Podium things", "1.0.0", [*standard_operations(), *operations])
    routes = [*operation_routes(operations), openapi_route(document)]

JSON schemas come from the pydantic models (request models in validation mode, response
models in serialization mode) and live under ``components/schemas``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.http.responses import JSONResponse
from shared.schemas.errors import ErrorResponse

Endpoint = Callable[[Request], Awaitable[Response]]
ResponseSpec = type[BaseModel] | str
"""A response: a pydantic model (JSON body) or a description of a non-JSON/empty body."""

OPENAPI_PATH = "/openapi.json"
_REF_TEMPLATE = "#/components/schemas/{model}"
_CONVERTOR = re.compile(r"{([^}:]+):[^}]+}")


@dataclass(frozen=True, slots=True)
class Parameter:
    """A path, query or header parameter (path parameters are always required)."""

    name: str
    location: Literal["path", "query", "header"]
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False

    def document(self) -> dict[str, Any]:
        """The OpenAPI parameter object."""
        return {
            "name": self.name,
            "in": self.location,
            "description": self.description,
            "required": self.required or self.location == "path",
            "schema": dict(self.schema),
        }


@dataclass(frozen=True, slots=True)
class Operation:
    """One documented endpoint. ``endpoint`` None means documented but routed elsewhere
    (e.g. the shared health routes)."""

    method: str
    path: str
    summary: str
    endpoint: Endpoint | None
    responses: Mapping[int, ResponseSpec]
    request_model: type[BaseModel] | None = None
    parameters: Sequence[Parameter] = ()
    scopes: Sequence[str] = ()
    description: str = ""
    tags: Sequence[str] = ()
    auth_optional: bool = False
    direct: bool = False
    """Served without the router's layers too (:mod:`shared.http.direct`): for the hottest
    exact-path endpoint of a service."""

    def route(self) -> Route:
        """The Starlette route serving this operation."""
        if self.endpoint is None:
            raise ValueError(f"{self.method} {self.path} has no endpoint")
        return Route(self.path, self.endpoint, methods=[self.method])


def error_responses(*status_codes: int) -> dict[int, ResponseSpec]:
    """``{status: ErrorResponse}`` for each status code."""
    return dict.fromkeys(status_codes, ErrorResponse)


def operation_routes(operations: Iterable[Operation]) -> list[Route]:
    """One route per operation (several methods on one path are separate routes)."""
    return [operation.route() for operation in operations]


def direct_routes(operations: Iterable[Operation]) -> list[Route]:
    """The routes of the operations marked ``direct`` (they stay in the router's list too)."""
    return [operation.route() for operation in operations if operation.direct]


def standard_operations() -> list[Operation]:
    """Documentation of the routes every Podium service has: health, metrics, this document."""
    return [
        Operation(
            "GET", "/health/live", "Liveness: the process answers", None, {200: "ok"}, tags=("ops",)
        ),
        Operation(
            "GET",
            "/health/ready",
            "Readiness: every dependency answers",
            None,
            {200: "ready", 503: "a dependency does not answer"},
            tags=("ops",),
        ),
        Operation(
            "GET", "/metrics", "Prometheus metrics", None, {200: "text format"}, tags=("ops",)
        ),
        Operation(
            "GET", OPENAPI_PATH, "This OpenAPI document", None, {200: "OpenAPI 3.1"}, tags=("ops",)
        ),
    ]


def build_openapi(
    title: str, version: str, operations: Sequence[Operation], *, description: str = ""
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations``."""
    models = _models(operations)
    schemas: dict[str, Any] = {}
    refs: Mapping[tuple[Any, JsonSchemaMode], Any] = {}
    if models:
        refs, definitions = models_json_schema(models, ref_template=_REF_TEMPLATE)
        schemas = definitions.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        path = _CONVERTOR.sub(r"{\1}", operation.path)
        method = operation.method.lower()
        if method in paths.get(path, {}):
            raise ValueError(f"{operation.method} {path} is declared twice")
        paths.setdefault(path, {})[method] = _operation_document(operation, refs)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
    if description:
        document["info"]["description"] = description
    return document


def openapi_route(document: Mapping[str, Any]) -> Route:
    """``GET /openapi.json`` serving ``document``."""

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    return Route(OPENAPI_PATH, openapi, methods=["GET"])


def _models(operations: Sequence[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for operation in operations:
        if operation.request_model is not None:
            wanted.append((operation.request_model, "validation"))
        for spec in operation.responses.values():
            if not isinstance(spec, str):
                wanted.append((spec, "serialization"))
    return list(dict.fromkeys(wanted))


def _operation_document(
    operation: Operation, refs: Mapping[tuple[Any, JsonSchemaMode], Any]
) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, spec in sorted(operation.responses.items()):
        phrase = HTTPStatus(status).phrase
        if isinstance(spec, str):
            responses[str(status)] = {"description": f"{phrase}: {spec}"}
        else:
            responses[str(status)] = {
                "description": phrase,
                "content": {"application/json": {"schema": refs[(spec, "serialization")]}},
            }
    document: dict[str, Any] = {
        "summary": operation.summary,
        "operationId": _operation_id(operation),
        "responses": responses,
    }
    if operation.description:
        document["description"] = operation.description
    if operation.tags:
        document["tags"] = list(operation.tags)
    if operation.parameters:
        document["parameters"] = [parameter.document() for parameter in operation.parameters]
    if operation.request_model is not None:
        document["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": refs[(operation.request_model, "validation")]}
            },
        }
    if operation.scopes:
        document["security"] = [{"bearer": []}, {}] if operation.auth_optional else [{"bearer": []}]
        document.setdefault("description", "")
        document["description"] = (
            document["description"]
            + f"\n\nRequires one of the scopes: {', '.join(operation.scopes)}."
        ).strip()
    return document


def _operation_id(operation: Operation) -> str:
    words = re.findall(r"[A-Za-z0-9]+", _CONVERTOR.sub(r"{\1}", operation.path))
    return "_".join([operation.method.lower(), *words])
