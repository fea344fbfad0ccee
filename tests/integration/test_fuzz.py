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


# Explicit cases the generators do not produce: JSON that Python parses but cannot echo back
# (lone surrogates; NaN, Infinity and 1e400 numbers). Each operation with a JSON body gets each.
EXPLICIT_BODIES = {
    "/search": [b'{"q": "\\ud800"}', b'{"q": "x", "k": NaN}', b'{"q": "x", "k": Infinity}', b'{"q": "x", "k": 1e400}'],
    "/report": [b'{"questions": ["\\ud800"]}', b'{"questions": ["x"], "k": NaN}', b'{"questions": ["x"], "k": -Infinity}',
                b'{"passages": [{"doc_id": "x", "start": 0, "end": 1e400}]}'],
    "/ingest": [b'{"paths": ["\\ud800"]}', b'{"paths": ["x"], "k": NaN}', b'{"paths": [1e400]}'],
    "/documents": [b'{"text": "\\udc00"}', b'{"text": "x", "id": NaN}', b'{"text": "x", "title": Infinity}',
                   b'{"text": 1e400}'],
}
GENERIC_BODIES = [b"NaN", b'{"\\ud800": Infinity}']


def test_explicit_malformed_json_cases_get_422(writable_server):
    schema = schemathesis.openapi.from_url(writable_server.url + "/openapi.json")
    covered = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        if "application/json" not in str(operation.definition.raw.get("requestBody", {})):
            continue
        covered.add(operation.path)
        for raw in EXPLICIT_BODIES.get(operation.path, []) + GENERIC_BODIES:
            case = operation.Case(media_type="application/json")
            response = case.call(data=raw, headers={"Content-Type": "application/json"}, timeout=60)
            assert response.status_code == 422, (operation.path, raw, response.status_code, response.text[:300])
            assert response.json()["detail"]
    assert covered >= set(EXPLICIT_BODIES), covered
