"""API keys on every management route, and which destinations may receive a code."""

import base64
import importlib.util

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType

import web
from tests.conftest import API_KEY
from verification import keys, phone
from verification.config import ConfigError, Settings

# Routes anyone may call: probes, metrics (behind the operator's network), Twilio's signed webhooks,
# the API description and the demo page.
PUBLIC = {"/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"}


def is_public(rule) -> bool:
    return (rule.rule in PUBLIC or rule.rule.startswith(("/twilio/", "/demo"))
            or rule.endpoint == "static" or rule.endpoint.endswith(".static"))


def management_routes(app, value: str = "1"):
    """(method, url) of every route that needs a key, with `value` for each of the URL's variables."""
    adapter = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        if is_public(rule):
            continue
        url = adapter.build(rule.endpoint, {name: value for name in rule.arguments})
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, url


@pytest.fixture
def everything(make_app):
    """The app with every optional part switched on, so each of its routes is looked at."""
    return make_app(DEMO_PAGE="1")


def basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("authorization", [
    None,
    "Bearer wrong-key",
    f"Bearer {API_KEY[:-1]}",
    f"Bearer {API_KEY}x",
    "Bearer ",
    API_KEY,
    f"Token {API_KEY}",
])
def test_every_management_route_refuses_a_missing_or_wrong_key(everything, state, authorization):
    client = everything.test_client()
    headers = {"Authorization": authorization} if authorization else {}
    routes = list(management_routes(everything))
    assert ("POST", "/v1/verifications") in routes
    for method, url in routes:
        response = client.open(url, method=method, json={}, headers=headers)
        assert response.status_code == 401, (method, url, response.status_code)
        assert response.json["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert state.dbsize() == 0


def test_v1_takes_bearer_keys_and_only_those(make_app, state):
    client = make_app(API_KEYS=f"old-key-0123456789,{API_KEY}").test_client()
    for key in (API_KEY, "old-key-0123456789"):
        for scheme in ("Bearer", "bearer"):
            response = client.get("/v1/verifications/nope", headers={"Authorization": f"{scheme} {key}"})
            assert response.status_code == 404, (scheme, key)
    # The URL and Basic forms are for the Durable-compatible routes only: keys in URLs end up in logs.
    assert client.get(f"/v1/verifications/nope?code={API_KEY}").status_code == 401
    assert client.get("/v1/verifications/nope", headers={"Authorization": basic(API_KEY)}).status_code == 401


def durable_routes(app):
    spec = importlib.util.find_spec("verification.durable")
    if spec is None:
        return []
    from verification import durable

    prefix = f"{durable.bp.name}."
    return [(method, url) for method, url in management_routes(app)
            if app.url_map.bind("localhost").match(url, method=method)[0].startswith(prefix)]


def presenting(form: str, key: str) -> dict:
    """Request options that present `key` in one of the accepted forms."""
    if form == "bearer":
        return {"headers": {"Authorization": f"Bearer {key}"}}
    if form == "basic":
        return {"headers": {"Authorization": basic(key)}}
    return {"query_string": {"code": key}}


@pytest.mark.parametrize("form", ["bearer", "query", "basic"])
def test_durable_routes_take_every_key_form(everything, state, form):
    routes = durable_routes(everything)
    if not routes:
        pytest.skip("no Durable-compatible routes in this build")
    client = everything.test_client()
    for method, url in routes:
        response = client.open(url, method=method, json={}, **presenting(form, API_KEY))
        assert response.status_code != 401, (form, method, url)
        wrong = client.open(url, method=method, json={}, **presenting(form, "wrong-key"))
        assert wrong.status_code == 401, (form, method, url)


def test_the_service_refuses_to_start_without_api_keys(service_env, celery_app, monkeypatch):
    monkeypatch.delenv("API_KEYS", raising=False)
    monkeypatch.delenv("DEVELOPMENT_MODE", raising=False)
    config = {**service_env, "API_KEYS": "", "CELERY_APP": celery_app}
    with pytest.raises(ConfigError, match="API_KEYS"):
        web.create_app(config)
    # The explicit development flag lets it run keyless, for local use.
    app = web.create_app({**config, "DEVELOPMENT_MODE": "1"})
    assert app.test_client().get("/v1/verifications/nope").status_code == 404


def example(region: str, kind: int) -> str:
    return phonenumbers.format_number(phonenumbers.example_number_for_type(region, kind),
                                      phonenumbers.PhoneNumberFormat.E164)


@pytest.mark.parametrize(("number", "kind"), [
    (example("GB", PhoneNumberType.FIXED_LINE), "fixed_line"),
    (example("GB", PhoneNumberType.PREMIUM_RATE), "premium_rate"),
    (example("US", PhoneNumberType.TOLL_FREE), "toll_free"),
    (example("DE", PhoneNumberType.SHARED_COST), "shared_cost"),
    (example("GB", PhoneNumberType.PERSONAL_NUMBER), "personal_number"),
    (example("GB", PhoneNumberType.PAGER), "pager"),
    (example("GB", PhoneNumberType.UAN), "uan"),
    (example("DE", PhoneNumberType.VOICEMAIL), "voicemail"),
])
def test_numbers_that_cannot_read_a_code_are_refused(client, state, number, kind):
    response = client.post("/v1/verifications", json={"phone": number})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "number_type_not_allowed"
    assert response.json["error"]["numberType"] == kind
    assert state.dbsize() == 0


@pytest.mark.parametrize("number", [
    "+14155550100",  # North America: FIXED_LINE_OR_MOBILE, which phonenumbers cannot tell apart
    example("GB", PhoneNumberType.MOBILE),
    example("DE", PhoneNumberType.MOBILE),
    example("GB", PhoneNumberType.VOIP),
])
def test_mobile_and_undecidable_numbers_pass_by_default(number):
    phone.check_destination(phone.parse_number(number), (), Settings.BLOCKED_NUMBER_TYPES)


def test_blocked_types_are_configurable(make_app, state, twilio, worker):
    landline = example("GB", PhoneNumberType.FIXED_LINE)
    client = make_app(BLOCKED_NUMBER_TYPES="none").test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API_KEY}"
    assert client.post("/v1/verifications", json={"phone": landline}).status_code == 202
    only_premium = make_app(BLOCKED_NUMBER_TYPES="premium_rate").test_client()
    only_premium.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API_KEY}"
    assert only_premium.post("/v1/verifications", json={"phone": example("GB", PhoneNumberType.TOLL_FREE)}
                             ).status_code == 202
    assert only_premium.post("/v1/verifications", json={"phone": example("GB", PhoneNumberType.PREMIUM_RATE)}
                             ).status_code == 400


def test_allowed_countries(make_app, state, twilio, worker):
    client = make_app(ALLOWED_COUNTRIES="us, ca").test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API_KEY}"
    response = client.post("/v1/verifications", json={"phone": example("GB", PhoneNumberType.MOBILE)})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "country_not_allowed"
    assert response.json["error"]["country"] == "GB"
    assert not state.exists(keys.CREATED)
    assert client.post("/v1/verifications", json={"phone": "+14155550100"}).status_code == 202
    assert client.post("/v1/verifications", json={"phone": "+16135550123"}).status_code == 202  # Ottawa


@pytest.mark.parametrize(("name", "value"), [
    ("ALLOWED_COUNTRIES", "US,XX"),
    ("BLOCKED_NUMBER_TYPES", "FIXED_LINE,LANDLINE"),
])
def test_unknown_countries_and_types_are_configuration_errors(make_app, name, value):
    with pytest.raises(ConfigError, match=name):
        make_app(**{name: value})
