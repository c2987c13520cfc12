"""Fuzz the whole HTTP API from its own OpenAPI document: no 5xx, no answer the document does not allow."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import API_KEY
from tests.isolated import iso_app, iso_celery, iso_env  # noqa: F401

# Per operation and mode: enough to find the usual suspects, and the whole run stays well under a minute.
EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.mark.slow
def test_api_answers_as_documented(iso_app, state):
    # schemathesis.pytest's lazy loader needs a pytest internal that pytest 9 removed, so each
    # operation gets a Hypothesis test of its own here, with the app from the fixtures.
    app = iso_app(DEMO_PAGE=True)  # its tasks queue on a broker no worker reads: no SMS goes out
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 10
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def answers_as_documented(case):
                case.call_and_validate(headers=AUTH, checks=CHECKS)

            try:
                answers_as_documented()
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE  # nothing in the request to get wrong
            except Exception as exc:  # noqa: BLE001 - every operation's failure is reported together
                failures.append(f"{mode.value} {operation.label}:\n{exc}")
    assert not failures, "\n\n".join(failures)


def test_the_v1_lifecycle_answers_as_documented(iso_app, state):
    """Random input seldom makes a verification, so walk one through every answer on purpose."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", iso_app())
    start = schema.find_operation_by_label("POST /v1/verifications")
    read = schema.find_operation_by_label("GET /v1/verifications/{verification_id}")
    check = schema.find_operation_by_label("POST /v1/verifications/{verification_id}/check")
    cancel = schema.find_operation_by_label("POST /v1/verifications/{verification_id}/cancel")

    def call(operation, status: int, **data):
        response = operation.Case(headers=AUTH, media_type="application/json", **data).call_and_validate(checks=CHECKS)
        assert response.status_code == status, response.text
        return response.json()

    created = call(start, 202, body={"phone": "+14155550100"})
    path = {"verification_id": created["id"]}
    call(read, 200, path_parameters=path)
    call(check, 200, path_parameters=path, body={"code": "0000"})
    call(check, 400, path_parameters=path, body={"code": "١٢٣٤"})
    call(cancel, 200, path_parameters=path, body={})
    call(check, 409, path_parameters=path, body={"code": "0000"})
    call(cancel, 409, path_parameters=path, body={})
    call(read, 404, path_parameters={"verification_id": "0" * 32})
    call(start, 400, body={"phone": "not a phone"})
