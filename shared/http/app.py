"""Building a Podium Starlette app with the shared edge already in place."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Route
from starlette.types import Lifespan

from shared import tracing
from shared.http.direct import DirectRoutes
from shared.http.errors import EXCEPTION_HANDLERS
from shared.http.health import health_routes
from shared.http.middleware import EdgeMiddleware
from shared.settings import CommonSettings
from shared.tracing import HttpTracingMiddleware


def create_service_app(
    service: str,
    settings: CommonSettings,
    routes: Sequence[BaseRoute],
    lifespan: Lifespan[Starlette] | None = None,
    inner_middleware: Sequence[Middleware] = (),
    direct_routes: Sequence[Route] = (),
) -> Starlette:
    """A Starlette app with health/metrics routes, JSON errors, the edge middleware and CORS.

    The service's lifespan should put its readiness checks on ``app.state.readiness_checks``.
    ``inner_middleware`` runs inside the shared layers (e.g. the read limits of the query API).
    ``direct_routes`` (exact paths, also listed in ``routes``) are answered without the
    router's layers, inside every middleware (:mod:`shared.http.direct`).
    With tracing on (:data:`shared.tracing.ENABLED`, set before the app is built), the
    OpenTelemetry middleware is the outermost layer, so the edge's own work is in the span.
    """
    middleware = [
        Middleware(
            EdgeMiddleware,
            service=service,
            max_body_bytes=settings.max_body_bytes,
            body_timeout_s=settings.http_body_timeout_s,
        ),
    ]
    if tracing.ENABLED:
        middleware.insert(0, Middleware(HttpTracingMiddleware))
    if settings.cors_allow_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_allow_origins,
                allow_methods=["GET", "POST", "PATCH", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "If-None-Match", "X-Request-ID"],
                expose_headers=["ETag", "Retry-After", "X-Request-ID"],
                max_age=600,
            )
        )
    middleware.extend(inner_middleware)
    if direct_routes:
        middleware.append(
            Middleware(
                DirectRoutes,
                routes=list(direct_routes),
                exception_handlers=EXCEPTION_HANDLERS,
            )
        )
    app = Starlette(
        routes=[*health_routes(), *routes],
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.service_name = service
    app.state.settings = settings
    app.state.readiness_checks = {}
    return app
