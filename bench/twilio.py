"""A lean Twilio Messages API stand-in that answers at once and notes when each SMS arrived."""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

# The same credentials as tests/twilio_stub.py, so the worker's settings look alike.
ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "stub-auth-token-0123456789abcdef"
FROM_NUMBER = "+15005550006"
CODE = re.compile(r"[0-9]{4,10}")


class TwilioStandIn:
    """Accepts every message with 201; `received[phone]` = (time.time() on arrival, code)."""

    def __init__(self):
        self.received: dict[str, tuple[float, str]] = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "TwilioStandIn":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def _handler(stand_in):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Twilio's API speaks it
            # Headers and body leave in two writes; with Nagle on, the body waits for the client's
            # delayed ACK of the headers (40 ms on Linux), and the worker with it.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                arrived = time.time()
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                to, body = form.get("To", ""), form.get("Body", "")
                code = CODE.search(body)
                with stand_in.lock:
                    stand_in.received[to] = (arrived, code.group(0) if code else "")
                sid = "SM" + secrets.token_hex(16)
                data = json.dumps({"sid": sid, "account_sid": ACCOUNT_SID, "to": to, "from": form.get("From"),
                                   "body": body, "status": "queued", "num_segments": "1"}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
