"""schemathesis against each service's ``/openapi.json``: no 5xx, answers match the schema.

The services run as real processes (the session stack) over the real broker, Redis and
PostgreSQL. Every operation is fuzzed with schema-valid (positive) and schema-violating
(negative) requests carrying an admin token, which every operation accepts, so the requests
reach the handlers instead of stopping at the 401. The example count is kept modest for CI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.security.conftest import Stack

EXAMPLES_PER_OPERATION = 30
COMMON_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _property(
    operation: APIOperation,
    mode: GenerationMode,
    base_url: str,
    headers: dict[str, str],
    statuses: list[int],
) -> Callable[[], None]:
    """A Hypothesis test calling ``operation`` with generated cases and checking answers."""
    # a WebSocket handshake (101) cannot be made by schemathesis: over plain HTTP it gets
    # the 426 whatever its parameters, so only the answer's shape is checked there
    websocket = "101" in operation.definition.raw.get("responses", {})
    checks = [*COMMON_CHECKS]
    if mode is GenerationMode.NEGATIVE and not websocket:
        checks.append(negative_data_rejection)

    @hypothesis.settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    # the token is part of the generated case (not added afterwards), so a negative case is
    # never "missing Authorization" while the request actually carries it
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode, headers=headers))
    def call(case: Any) -> None:
        response = case.call(base_url=base_url, timeout=20)
        statuses.append(response.status_code)
        case.validate_response(response, checks=checks)

    return call  # type: ignore[no-any-return]


def _fuzz(stack: Stack, service: str, mode: GenerationMode) -> tuple[list[str], list[int]]:
    base_url = stack.urls[service]
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", timeout=20)
    headers = stack.bearer("fuzzer", "admin")
    failures: list[str] = []
    statuses: list[int] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            _property(operation, mode, base_url, headers, statuses)()
        except hypothesis.errors.Unsatisfiable:
            continue  # nothing negative to generate for this operation
        except Exception as failure:  # every operation is reported, not just the first
            failures.append(f"{operation.label}: {failure}")
    assert operations > 0, "the document lists operations"
    return failures, statuses


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("service", ["ingest", "query", "notifier"])
def test_openapi_operations_never_5xx_and_answer_as_documented(
    stack: Stack, service: str, mode: GenerationMode
) -> None:
    failures, statuses = _fuzz(stack, service, mode)
    assert not failures, "\n\n".join(failures)
    if mode is GenerationMode.POSITIVE:
        # the token went with every request: the fuzzing reached the handlers, not the 401
        assert 401 not in statuses
        assert any(200 <= status < 300 for status in statuses)
