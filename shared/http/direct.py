"""Direct routes: a service's hottest endpoints served without Starlette's router layers.

Why: for a small request Starlette's own layers are a large share of the work. Behind the
edge, a ``POST /api/v1/scores`` passed the exception middleware, the router (a regex match
per route until one fits), ``Route.handle``, the ``request_response`` wrapper and its
exception-handling wrapper, each with a ``send`` closure of its own: ~10% of the ingest
process's samples under wrk, for a request whose real work (auth, validation, rate limit,
the broker's ack) is the rest. A direct route is looked up by its exact method and path in
one dict and called as an ordinary Starlette endpoint (``Request`` in, ``Response`` out).

What stays the same for a direct route: the edge (request id, security headers, body limits,
HTTP metrics under the route's template), tracing and CORS (they wrap this middleware), the
error contract (a domain error is answered by the same handler the exception middleware
would pick, an unexpected one reaches the server-error middleware as before). The route also
stays in the router, so other methods on its path still get the router's 405 and the OpenAPI
document lists it once. Only exact paths qualify: a path with parameters needs the router.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import cast

from starlette.requests import Request
from starlette.routing import Route
from starlette.types import (
    ASGIApp,
    ExceptionHandler,
    HTTPExceptionHandler,
    Receive,
    Scope,
    Send,
)


class DirectRoutes:
    """ASGI middleware answering ``(method, exact path)`` pairs itself, the rest unchanged."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Sequence[Route],
        exception_handlers: Mapping[type[BaseException], ExceptionHandler],
    ) -> None:
        self.app = app
        self._routes: dict[tuple[str, str], Route] = {}
        for route in routes:
            if route.param_convertors:
                raise ValueError(f"a direct route needs an exact path, not {route.path}")
            for method in route.methods or ():
                if method != "HEAD":  # Starlette adds HEAD to GET routes; the router keeps it
                    self._routes[(method, route.path)] = route
        # the handlers the exception middleware would use; ``Exception`` is the server-error
        # middleware's (outside this one), so an unexpected error is left to reach it
        self._handlers = {
            kind: handler for kind, handler in exception_handlers.items() if kind is not Exception
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (
            self._routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        )
        if route is None:
            await self.app(scope, receive, send)
            return
        # what the router would have put on the scope (the edge's metrics read the template)
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        request = Request(scope, receive, send)
        try:
            response = await route.endpoint(request)
        except Exception as error:
            handler = self._handler(error)
            if handler is None:
                raise
            answer = handler(request, error)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)

    def _handler(self, error: Exception) -> HTTPExceptionHandler | None:
        """The handler for the closest class of ``error`` (as Starlette looks them up)."""
        for kind in type(error).__mro__:
            handler = self._handlers.get(kind)
            if handler is not None:
                # a direct route is HTTP only, so its handlers are called as HTTP handlers
                return cast(HTTPExceptionHandler, handler)
        return None
