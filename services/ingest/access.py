"""Who is calling and how much they may: authentication, scopes and rate limits per request."""

from __future__ import annotations

from starlette.requests import Request

from services.ingest.context import IngestContext
from shared.auth import Principal, Scope
from shared.errors import AuthenticationError, PermissionDeniedError
from shared.http.auth import require_principal
from shared.http.client_ip import client_ip
from shared.rate_limit.buckets import RateDecision
from shared.rate_limit.policy import enforce_rate_limit


async def authenticate(request: Request, context: IngestContext) -> Principal:
    """The verified caller. A caller without a valid token is charged to its IP's bucket
    (so guessing tokens is rate limited too) and then gets the 401."""
    try:
        return require_principal(request, context.settings)
    except AuthenticationError:
        address = client_ip(request, context.trusted_proxies)
        await enforce_rate_limit(context.limiter, context.policies.anonymous, address)
        raise


def require_score_writer(principal: Principal) -> None:
    """403 unless the token may post scores at all."""
    if not (principal.has(Scope.SCORES_WRITE) or principal.has(Scope.SCORES_WRITE_ANY)):
        raise PermissionDeniedError(
            "posting scores needs the 'scores:write' or 'scores:write:any' scope",
            details={"required_scope": [Scope.SCORES_WRITE.value, Scope.SCORES_WRITE_ANY.value]},
        )


async def limit_score_writer(
    context: IngestContext, principal: Principal, events: int
) -> RateDecision:
    """Charge a score request: trusted servers pay per event, players per request."""
    if principal.has(Scope.SCORES_WRITE_ANY):
        cost = max(1, min(events, context.settings.ingest_batch_max_events))
        return await enforce_rate_limit(
            context.limiter, context.policies.server, principal.subject, cost
        )
    return await enforce_rate_limit(context.limiter, context.policies.player, principal.subject)


async def authenticate_admin(
    request: Request, context: IngestContext
) -> tuple[Principal, RateDecision]:
    """Authenticate, require the ``admin`` scope and charge the admin bucket."""
    principal = await authenticate(request, context)
    principal.require(Scope.ADMIN)
    decision = await enforce_rate_limit(context.limiter, context.policies.admin, principal.subject)
    return principal, decision
