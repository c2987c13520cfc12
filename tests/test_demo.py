"""The demo page: its routes with the Flask client, and a person's flows in headless Chromium."""

from __future__ import annotations

import contextlib
import os
import re
import shutil

import pytest

from tests.conftest import code_in, serving, wrong_code
from verification import keys
from verification.demo import masked_number

PHONE = "+14155550100"
MASKED = "+1 415 ***** 00"
API = "/demo/api/verifications"


# --- The routes, through the Flask test client ---

@pytest.mark.parametrize(("e164", "shown"), [
    ("+14155550100", "+1 415 ***** 00"),
    ("+447911123456", "+44 7911 **** 56"),
    ("+33612345678", "+33 6 ****** 78"),
    ("+4915123456789", "+49 1512 ***** 89"),
    ("+8613812345678", "+86 138 ****** 78"),
    ("+6591234567", "+65 912 *** 67"),  # one group would show too much: three digits instead
])
def test_masked_number_is_international_with_the_middle_hidden(e164, shown):
    assert masked_number(e164) == shown


def test_the_page_and_its_routes_are_absent_by_default(make_app):
    client = make_app().test_client()
    for method, path in [("get", "/"), ("get", "/demo"), ("post", API), ("get", f"{API}/x"),
                         ("get", "/demo/static/demo.js")]:
        response = getattr(client, method)(path)
        assert response.status_code == 404, path
        assert response.json["error"]["code"] == "not_found"


@pytest.mark.parametrize(("backend", "told"), [("console", True), ("twilio", False)])
def test_the_page_is_served_and_says_where_console_codes_go(make_app, backend, told):
    client = make_app(DEMO_PAGE="1", SMS_BACKEND=backend).test_client()
    root = client.get("/")
    assert root.status_code == 302
    assert root.headers["Location"] == "/demo"
    page = client.get("/demo")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    assert 'autocomplete="one-time-code"' in html and 'inputmode="numeric"' in html
    assert ("./dev run" in html) is told
    for asset, mimetype in [("demo.js", "text/javascript"), ("demo.css", "text/css")]:
        response = client.get(f"/demo/static/{asset}")
        assert response.status_code == 200 and response.mimetype == mimetype
        response.close()


@pytest.fixture
def demo(make_app, worker):
    # No Authorization header: the demo routes need no API key, although API_KEYS is set.
    return make_app(DEMO_PAGE="1").test_client()


@pytest.mark.parametrize(("body", "code"), [
    (b"not json", "invalid_json"),
    (b"[]", "invalid_json"),
    (b"{}", "missing_field"),
    (b'{"phone": "+14155550100", "admin": true}', "unknown_field"),
    (b'{"phone": 14155550100}', "invalid_phone"),
    (b'{"phone": "hello"}', "invalid_phone"),
    (b'{"phone": "+1 415 555"}', "invalid_phone"),
])
def test_start_refuses_bad_input_with_a_json_error(demo, state, body, code):
    response = demo.post(API, data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"]["code"] == code
    assert state.dbsize() == 0


def test_the_demo_api_shows_a_masked_number_and_refuses_malformed_codes_for_free(demo, state):
    started = demo.post(API, json={"phone": PHONE})
    assert started.status_code == 202
    body = started.json
    assert body["phone"] == MASKED
    assert PHONE not in started.get_data(as_text=True)
    assert body["status"] == "pending" and body["attemptsRemaining"] == 4 and body["codeLength"] == 4
    assert started.headers["Location"] == f"{API}/{body['id']}"
    assert started.headers["Cache-Control"] == "no-store"

    for bad in [{"code": "12a4"}, {"code": "١٢٣٤"}, {"code": 1234}, {"code": "123"}, {}, {"code": "1234", "x": 1}]:
        response = demo.post(f"{API}/{body['id']}/check", json=bad)
        assert response.status_code == 400, bad
        assert "error" in response.json
    assert demo.get(f"{API}/{body['id']}").json["attemptsRemaining"] == 4

    canceled = demo.post(f"{API}/{body['id']}/cancel")
    assert canceled.status_code == 200 and canceled.json["status"] == "canceled"
    again = demo.post(f"{API}/{body['id']}/check", json={"code": "1234"})
    assert again.status_code == 409 and again.json["error"]["status"] == "canceled"


def test_the_demo_routes_share_the_rate_limits(make_app, worker, state):
    demo = make_app(DEMO_PAGE="1", LIMIT_STARTS_PER_IP="1/minute", LIMIT_CHECKS_PER_IP="1/minute").test_client()
    started = demo.post(API, json={"phone": PHONE})
    assert started.status_code == 202
    refused = demo.post(API, json={"phone": "+14155550101"})
    assert refused.status_code == 429
    assert refused.json["error"]["limit"] == "starts_per_ip" and "Retry-After" in refused.headers

    check = f"{API}/{started.json['id']}/check"
    assert demo.post(check, json={"code": "0000"}).status_code == 200
    refused = demo.post(check, json={"code": "0000"})
    assert refused.status_code == 429 and refused.json["error"]["limit"] == "checks_per_ip"


@pytest.mark.parametrize("verification_id", ["0" * 32, "no:such}id", "x" * 65])
def test_unknown_ids_are_json_404s(demo, state, verification_id):
    for response in [demo.get(f"{API}/{verification_id}"),
                     demo.post(f"{API}/{verification_id}/check", json={"code": "1234"}),
                     demo.post(f"{API}/{verification_id}/cancel")]:
        assert response.status_code == 404
        assert response.json["error"]["code"] == "not_found"


# --- A person's flows, in headless Chromium ---

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
PHONE_SCREEN = {"width": 390, "height": 844}
DESKTOP = {"width": 1024, "height": 768}


@pytest.fixture(scope="session")
def browser():
    executable = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed; .ci/run installs it (apt-get install chromium).")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live_server(make_app, worker):
    """Serves the app on 127.0.0.1 in a thread; call it with settings, get the base URL."""
    with contextlib.ExitStack() as servers:
        yield lambda **settings: servers.enter_context(serving(make_app(DEMO_PAGE="1", **settings)))


class Person:
    """A browser tab and what the person does in it; every state seen is saved as a screenshot."""

    def __init__(self, browser, viewport: dict, artifacts):
        from playwright.sync_api import expect

        # Generous, for a busy machine: an expectation returns as soon as it holds.
        expect.set_options(timeout=10_000)
        self.expect = expect
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.artifacts = artifacts
        self.artifacts.mkdir(exist_ok=True)
        self.problems: list[str] = []
        self.checks: list[str] = []
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("console", self._console)
        self.page.on("request", lambda r: r.url.endswith("/check") and self.checks.append(r.post_data))
        self.shots = 0

    def _console(self, message) -> None:
        # The browser logs every 4xx answer; the page shows those to the person, so they are no fault.
        if message.type == "error" and "responded with a status of 4" not in message.text:
            self.problems.append(f"console: {message.text}")

    def snap(self, name: str) -> None:
        self.shots += 1
        self.page.screenshot(path=self.artifacts / f"{self.shots:02d}-{name}.png", full_page=True)

    def state(self, value: str) -> None:
        self.expect(self.page.locator("#demo")).to_have_attribute("data-state", value)

    def start(self, phone: str = PHONE) -> None:
        self.page.get_by_label("Phone number").fill(phone)
        self.page.get_by_role("button", name="Send code").click()
        self.state("pending")
        self.expect(self.page.get_by_label("Verification code")).to_be_focused()

    def enter(self, code: str) -> None:
        self.page.get_by_label("Verification code").fill(code)
        self.page.get_by_role("button", name="Verify").click()

    def outcome(self, status: str, title: str) -> None:
        self.state(status)
        heading = self.page.get_by_role("heading", name=title)
        self.expect(heading).to_be_visible()
        self.expect(heading).to_be_focused()
        self.expect(self.page.get_by_role("button", name="Start again")).to_be_visible()

    def fits_the_screen(self) -> bool:
        return self.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def person(browser, tmp_path):
    people = []

    def open_(viewport=DESKTOP) -> Person:
        people.append(Person(browser, viewport, tmp_path / "artifacts"))
        return people[-1]

    yield open_
    for p in people:
        p.close()
    assert not [problem for p in people for problem in p.problems]


@pytest.mark.slow
def test_a_person_verifies_a_number_on_a_phone_sized_screen(live_server, person, twilio, state):
    base = live_server()
    you = person(PHONE_SCREEN)
    page, expect = you.page, you.expect
    page.goto(base + "/")
    expect(page).to_have_url(base + "/demo")
    expect(page.get_by_label("Phone number")).to_be_focused()
    you.snap("start")

    you.start()
    code = code_in(twilio.wait_for_message(PHONE))
    expect(page.locator("#sent")).to_have_text(f"Code sent to {MASKED}")
    expect(page.locator("#attempts")).to_have_text("4")
    expect(page.get_by_role("timer")).to_have_text(re.compile(r"^1:[0-3][0-9]$"))
    you.snap("code-sent")
    assert you.fits_the_screen()

    you.enter(code[:3])
    expect(page.locator("#code-error")).to_have_text("Enter the 4-digit code, digits 0–9 only.")
    expect(page.get_by_label("Verification code")).to_have_attribute("aria-invalid", "true")
    assert you.checks == []  # refused in the page: no request, so no attempt spent
    you.snap("malformed")

    you.enter(wrong_code(code))
    expect(page.locator("#attempts")).to_have_text("3")
    expect(page.locator("#feedback")).to_have_text("Wrong code. 3 attempts left.")
    expect(page.get_by_label("Verification code")).to_be_focused()
    you.snap("wrong-code")

    you.enter(code)
    you.outcome("approved", "Phone number verified")
    expect(page.locator("#done-text")).to_have_text(f"{MASKED} is confirmed as yours.")
    you.snap("approved")
    assert you.fits_the_screen()
    newest = state.get(keys.phone(PHONE)).split(" ")[0]  # "<id> <start times>"
    assert state.hget(keys.state(newest), "status") == "approved"
    assert len(you.checks) == 2


@pytest.mark.slow
def test_the_page_shows_expiry_without_a_reload(live_server, person, twilio):
    base = live_server(VERIFICATION_WINDOW_SECONDS="3")
    you = person()
    page, expect = you.page, you.expect
    page.goto(base + "/demo")
    you.start()
    twilio.wait_for_message(PHONE)
    expect(page.locator("#sent")).to_have_text(f"Code sent to {MASKED}")
    you.snap("counting-down")

    you.outcome("expired", "The code expired")
    expect(page.get_by_role("timer")).to_be_hidden()
    you.snap("expired")

    page.get_by_role("button", name="Start again").click()
    you.state("start")
    expect(page.get_by_label("Phone number")).to_be_focused()
    expect(page.get_by_label("Phone number")).to_have_value(PHONE)


@pytest.mark.slow
def test_an_sms_reply_approves_while_the_page_waits(live_server, person, twilio, make_app):
    from twilio.request_validator import RequestValidator

    from tests.twilio_stub import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER
    from verification.webhooks import INBOUND_PATH

    you = person()
    you.page.goto(live_server() + "/demo")
    you.start()
    code = code_in(twilio.wait_for_message(PHONE))

    # The person texts the code back; Twilio's signed webhook reaches another instance of the app.
    public = "https://verify.example.com"
    form = {"MessageSid": "SM" + "1" * 32, "AccountSid": ACCOUNT_SID, "From": PHONE, "To": FROM_NUMBER,
            "Body": code}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(public + INBOUND_PATH, form)
    webhook = make_app(PUBLIC_BASE_URL=public).test_client()
    assert webhook.post(INBOUND_PATH, data=form, headers={"X-Twilio-Signature": signature}).status_code == 200

    you.outcome("approved", "Phone number verified")
    you.snap("approved-by-sms")


@pytest.mark.slow
def test_every_other_ending_has_its_own_state(live_server, person, twilio, client):
    base = live_server(VERIFICATION_MAX_ATTEMPTS="1")
    you = person(PHONE_SCREEN)
    page, expect = you.page, you.expect
    page.goto(base + "/demo")

    page.get_by_label("Phone number").fill("+1 415 555")
    page.get_by_role("button", name="Send code").click()
    expect(page.locator("#phone-error")).to_contain_text("not a valid phone number.")
    you.snap("invalid-number")

    you.start()
    you.enter(wrong_code(code_in(twilio.wait_for_message(PHONE))))
    you.outcome("max_attempts_reached", "Too many wrong codes")
    you.snap("max-attempts")

    # Finished elsewhere: canceled through the API while the page waits.
    page.get_by_role("button", name="Start again").click()
    you.start()
    twilio.wait_for_message(PHONE, count=2)
    verification_id = page.evaluate("sessionStorage.getItem('demo-verification')")
    assert client.post(f"/v1/verifications/{verification_id}/cancel").status_code == 200
    you.outcome("canceled", "Verification canceled")
    you.snap("canceled")

    # Twilio refuses the number for good: the send fails.
    twilio.plan(400, error_code=21211)
    page.get_by_role("button", name="Start again").click()
    you.start()
    you.outcome("failed", "We could not send the code")
    expect(page.locator("#done-text")).to_contain_text("Twilio error 21211")
    you.snap("failed")
