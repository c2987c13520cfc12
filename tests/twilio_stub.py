"""A local HTTP server that speaks Twilio's Messages API, so the real `twilio` client runs in tests."""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "stub-auth-token-0123456789abcdef"
FROM_NUMBER = "+15005550006"

_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})/Messages\.json$")


@dataclass
class Planned:
    """One scripted answer, used instead of accepting the next message."""

    status: int
    error_code: int | None = None
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Message:
    sid: str
    to: str
    from_: str
    body: str
    status_callback: str | None
    form: dict


class TwilioStub:
    def __init__(self):
        self.messages: list[Message] = []
        self.requests: list[dict] = []  # every POST, accepted or not
        self.request_times: list[float] = []  # time.monotonic() when each of `requests` arrived
        self._plans: list[Planned] = []
        self.delay = 0.0  # seconds to hold every request before answering
        self._lock = threading.Condition()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "TwilioStub":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self.requests.clear()
            self.request_times.clear()
            self._plans.clear()
            self.delay = 0.0

    def plan(self, status: int, *, error_code: int | None = None, headers: dict | None = None,
             times: int = 1, delay: float = 0.0) -> None:
        with self._lock:
            self._plans.extend(Planned(status, error_code, headers or {}, delay) for _ in range(times))

    def messages_to(self, to: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.to == to]

    def wait_for_message(self, to: str, count: int = 1, timeout: float = 15.0) -> Message:
        """The `count`-th message accepted for `to`, waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [m for m in self.messages if m.to == to]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no SMS #{count} to {to} within {timeout}s; got {len(found)}")
                self._lock.wait(left)

    def wait_for_requests(self, count: int, timeout: float = 15.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} requests to the Twilio stub, got {len(self.requests)}")
                self._lock.wait(left)
            return list(self.requests)

    def _handler(stub):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # http.server writes headers and body apart; without this Nagle holds the body ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def _answer(self, status: int, body: dict, headers: dict | None = None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, code: int, message: str, headers=None):
                self._answer(status, {"code": code, "message": message, "status": status,
                                      "more_info": f"https://www.twilio.com/docs/errors/{code}"}, headers)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
                match = _MESSAGES.match(self.path.split("?")[0])
                if not match:
                    return self._error(404, 20404, "The requested resource was not found")
                if self._credentials() != (ACCOUNT_SID, AUTH_TOKEN) or match["account"] != ACCOUNT_SID:
                    return self._error(401, 20003, "Authentication Error - invalid username")
                with stub._lock:
                    stub.requests.append(form)
                    stub.request_times.append(time.monotonic())
                    stub._lock.notify_all()
                    plan = stub._plans.pop(0) if stub._plans else None
                    delay = stub.delay
                time.sleep(delay + (plan.delay if plan else 0))
                if plan:
                    if plan.error_code:
                        return self._error(plan.status, plan.error_code, "Planned error", plan.headers)
                    return self._answer(plan.status, {"message": "Planned failure", "status": plan.status},
                                        plan.headers)
                if "To" not in form or "Body" not in form:
                    return self._error(400, 21604, "A 'To' phone number is required.")
                if not form.get("From") and not form.get("MessagingServiceSid"):
                    return self._error(400, 21603, "A 'From' phone number is required.")
                sid = "SM" + secrets.token_hex(16)
                message = Message(sid, form["To"], form.get("From", ""), form["Body"], form.get("StatusCallback"), form)
                now = formatdate(usegmt=True)
                body = {
                    "account_sid": ACCOUNT_SID, "api_version": "2010-04-01", "body": form["Body"],
                    "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
                    "error_code": None, "error_message": None, "from": form.get("From") or None,
                    "messaging_service_sid": form.get("MessagingServiceSid"), "num_media": "0",
                    "num_segments": "1", "price": None, "price_unit": "USD", "sid": sid, "status": "queued",
                    "subresource_uris": {"media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media.json"},
                    "to": form["To"], "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
                }
                with stub._lock:
                    stub.messages.append(message)
                    stub._lock.notify_all()
                self._answer(201, body)

            def _credentials(self):
                header = self.headers.get("Authorization", "")
                if not header.startswith("Basic "):
                    return None
                try:
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                except ValueError:
                    return None
                return user, password

        return Handler
