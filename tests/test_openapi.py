"""The OpenAPI document: every route and only those, valid OpenAPI 3.1, served as JSON and as a page."""

import re

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from verification import openapi

IGNORED_METHODS = {"HEAD", "OPTIONS"}
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


@pytest.fixture(params=[False, True], ids=["production", "demo"])
def spec_app(request, make_app):
    return make_app(DEMO_PAGE=request.param)


def routes(app) -> set[tuple[str, str]]:
    return {
        (openapi.openapi_path(rule.rule), method.lower())
        for rule in app.url_map.iter_rules() if rule.endpoint.rpartition(".")[2] != "static"
        for method in rule.methods - IGNORED_METHODS
    }


def documented(spec) -> set[tuple[str, str]]:
    return {(path, method) for path, item in spec["paths"].items() for method in item if method in HTTP_METHODS}


def test_every_route_is_documented_and_nothing_else(spec_app):
    spec = openapi.build(spec_app)
    assert routes(spec_app) - documented(spec) == set(), "routes missing from the document"
    assert documented(spec) - routes(spec_app) == set(), "documented routes that do not exist"


def test_the_document_is_valid_openapi_3_1(spec_app):
    spec = openapi.build(spec_app)
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_every_operation_documents_its_errors_with_the_error_shape(spec_app):
    spec = openapi.build(spec_app)
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            assert any(status[0] in "23" for status in operation["responses"]), (method, path)
            schemes = {name for option in operation.get("security", []) for name in option}
            if schemes & {"bearer", "query", "basic"}:
                assert "401" in operation["responses"], (method, path)
            if "requestBody" in operation:
                assert {"400", "413"} <= set(operation["responses"]), (method, path)


def test_the_v1_routes_are_described_as_they_behave(app):
    spec = openapi.build(app)
    start = spec["paths"]["/v1/verifications"]["post"]
    assert set(start["responses"]) >= {"202", "400", "401", "413", "429", "503"}
    assert start["security"] == [{"bearer": []}]
    check = spec["paths"]["/v1/verifications/{verification_id}/check"]["post"]
    assert set(check["responses"]) >= {"200", "400", "401", "404", "409", "413", "429", "503"}
    assert set(spec["components"]["securitySchemes"]) >= {"bearer", "query", "basic"}
    assert spec["paths"]["/healthz"]["get"].get("security") is None


def schema_validator(spec, name):
    registry = Registry().with_resource("urn:spec", DRAFT202012.create_resource(spec))
    return Draft202012Validator({"$ref": f"urn:spec#/components/schemas/{name}"}, registry=registry)


def test_real_responses_match_their_schemas(client, app):
    spec = openapi.build(app)
    started = client.post("/v1/verifications", json={"phone": "+16505550360"})
    assert started.status_code == 202
    schema_validator(spec, "Verification").validate(started.json)
    checked = client.post(f"/v1/verifications/{started.json['id']}/check", json={"code": "0000"})
    assert checked.status_code == 200
    schema_validator(spec, "CheckResult").validate(checked.json)
    missing = client.get("/v1/verifications/nope")
    assert missing.status_code == 404
    schema_validator(spec, "Error").validate(missing.json)


def test_served_as_json_and_as_a_page(client, app):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json == openapi.build(app)

    page = client.get("/docs")
    assert page.status_code == 200
    assert page.content_type.startswith("text/html")
    html = page.get_data(as_text=True)
    for path in response.json["paths"]:
        assert f"<code>{path}</code>" in html
    # Served whole: nothing loaded from elsewhere (the machines it runs on may have no internet).
    assert not re.search(r"<(script|link|img)\b", html)


def test_no_key_is_needed_to_read_the_description(app):
    anonymous = app.test_client()
    assert anonymous.get("/openapi.json").status_code == 200
    assert anonymous.get("/docs").status_code == 200
