"""Fuzz the HTTP API from its own OpenAPI schema (schemathesis): no input may give a 5xx.

Valid and deliberately invalid requests (wrong types, out-of-range values, missing
fields) for every operation, sent over HTTP to a real server on 127.0.0.1.
"""

from __future__ import annotations

import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings

EXAMPLES_PER_OPERATION = 30


def test_no_input_gives_a_server_error(writable_server):
    schema = schemathesis.openapi.from_url(writable_server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:
        cases = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)

        @given(case=cases)
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def no_server_error(case) -> None:
            response = case.call(timeout=60)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}")

        no_server_error()
