"""Prometheus figures move after a flow: in the web app, in the worker, and summed across gunicorn's workers."""

import os
import signal
import subprocess
import sys

import pytest
import requests
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

import web
from tests.conftest import API_KEY, ROOT, Worker, code_in, wait_for, wrong_code
from verification import metrics
from verification.redis_server import free_port


def figures(text: str) -> dict:
    """{(sample name, ((label, value), ...)): value} from a Prometheus page."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(page: dict, name: str, **labels) -> float:
    return page.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return figures(response.get_data(as_text=True))


def test_web_figures_move_after_a_flow(client, twilio, worker):
    before = scrape(client)
    started = client.post("/v1/verifications", json={"phone": "+16505550310"})
    verification_id = started.json["id"]
    code = code_in(twilio.wait_for_message("+16505550310"))
    check = f"/v1/verifications/{verification_id}/check"
    assert client.post(check, json={"code": "12x4"}).status_code == 400
    assert client.post(check, json={"code": wrong_code(code)}).json["approved"] is False
    assert client.post(check, json={"code": code}).json["approved"] is True
    other = client.post("/v1/verifications", json={"phone": "+16505550311"}).json["id"]
    assert client.post(f"/v1/verifications/{other}/cancel").status_code == 200
    metrics.rate_limited("test_limit")
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("verification_started_total") == 2
    assert moved("verification_checks_total", outcome="malformed", channel="api") == 1
    assert moved("verification_checks_total", outcome="wrong", channel="api") == 1
    assert moved("verification_checks_total", outcome="approved", channel="api") == 1
    assert moved("verification_finished_total", status="approved") == 1
    assert moved("verification_finished_total", status="canceled") == 1
    assert moved("verification_time_to_verify_seconds_count") == 1
    assert moved("verification_rate_limited_total", limit="test_limit") == 1
    assert ("verification_finished_total", (("status", "expired"),)) in after


def test_the_page_needs_no_key(app):
    assert app.test_client().get("/metrics").status_code == 200


@pytest.fixture
def metrics_worker(worker_env, redis_server, tmp_path):
    """A worker of its own on a broker database of its own, with its metrics page on a free port."""
    port = free_port()
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = {**worker_env, "CELERY_BROKER_URL": f"{redis_server.url}/2",
           "PROMETHEUS_MULTIPROC_DIR": str(multiproc), "WORKER_METRICS_PORT": str(port)}
    process = Worker(env, tmp_path / "worker.log").start()
    process.metrics_url = f"http://127.0.0.1:{port}/metrics"
    yield process
    process.stop(signal.SIGKILL)


def test_worker_figures_move_after_a_send(metrics_worker, service_env, redis_server, state, twilio):
    celery_app = Celery("verification")
    celery_app.config_from_object("celeryconfig")
    celery_app.conf.broker_url = f"{redis_server.url}/2"
    app = web.create_app({**service_env, "CELERY_APP": celery_app})
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API_KEY}"

    def worker_page() -> dict:
        with requests.get(metrics_worker.metrics_url, timeout=5) as response:
            assert response.status_code == 200, metrics_worker.log()[-3000:]
            return figures(response.text)

    before = worker_page()
    assert client.post("/v1/verifications", json={"phone": "+16505550312"}).status_code == 202
    twilio.wait_for_message("+16505550312")
    after = wait_for(lambda: (page := worker_page()) and value(
        page, "verification_sms_sends_total", outcome="sent") > value(
        before, "verification_sms_sends_total", outcome="sent") and page)
    assert value(after, "verification_sms_sends_total", outcome="sent") == 1
    assert value(after, "verification_sms_send_seconds_count") == 1
    assert value(after, "verification_sms_sends_total", outcome="failed") == 0


def test_gunicorn_sums_its_workers(service_env, tmp_path):
    """Two gunicorn workers count in files of their own; either one's /metrics shows the sum."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VERIFICATION_", "TWILIO_", "PROMETHEUS_"))}
    env.update(service_env, PORT=str(port), WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    with open(tmp_path / "gunicorn.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "web:app", "--bind", f"127.0.0.1:{port}"],
                                   cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def up():
            try:
                # The master listens at once; its workers answer once they have imported the app.
                with requests.get(f"{base}/healthz", timeout=5) as response:
                    return response.status_code == 200
            except (requests.ConnectionError, requests.Timeout):
                assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
                return False

        wait_for(up, timeout=30)
        # Each worker has imported the app, and so made its files, when both files are there.
        wait_for(lambda: len(list(tmp_path.glob("counter_*.db"))) == 2, timeout=30)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        with requests.Session() as session:
            for i in range(6):
                # A new connection each time, so both workers get some of them.
                with session.post(f"{base}/v1/verifications", json={"phone": f"+1650555032{i}"},
                                  headers={**headers, "Connection": "close"}, timeout=15) as response:
                    assert response.status_code == 202
        with requests.get(f"{base}/metrics", timeout=15) as response:
            page = figures(response.text)
        assert value(page, "verification_started_total") == 6
    finally:
        process.terminate()
        process.wait(20)


def test_a_file_being_created_does_not_fail_the_scrape(tmp_path):
    """A process's new file is empty for an instant; prometheus_client's own collector fails on it."""
    script = f"""
import os
os.environ["PROMETHEUS_MULTIPROC_DIR"] = {str(tmp_path)!r}
from prometheus_client import generate_latest
from verification import metrics
metrics.started()
open(os.path.join({str(tmp_path)!r}, "counter_999999.db"), "wb").close()
assert b"verification_started_total 1.0" in generate_latest(metrics.registry())
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
