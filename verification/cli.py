"""`python -m verification` / `verification`: the operator's command line, a client of the HTTP API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from urllib.parse import quote

import requests

# The Durable Functions management routes list and purge; the /v1 API does the rest.
INSTANCES = "/runtime/webhooks/durabletask/instances"
DURABLE_STATUSES = ("Running", "Completed", "Failed", "Terminated")

EPILOG = """\
environment:
  VERIFICATION_API_URL  the service, e.g. https://verify.example.com (default http://127.0.0.1:8000)
  VERIFICATION_API_KEY  one of the service's API_KEYS

Prints the API's JSON answer. Exit status: 0 when the API accepted the request, 1 when it answered
with an error (printed to stderr as the API's JSON), 3 when it could not be reached.
"""


class Unreachable(Exception):
    pass


class Client:
    def __init__(self, base_url: str, api_key: str, timeout: float = 10):
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"
        self.timeout = timeout

    def close(self) -> None:
        self.session.close()

    def call(self, method: str, path: str, **options) -> requests.Response:
        try:
            return self.session.request(method, self.base_url + path, timeout=self.timeout, **options)
        except requests.RequestException as exc:
            raise Unreachable(f"{self.base_url} could not be reached: {type(exc).__name__}") from None


def _id(value: str) -> str:
    return quote(value, safe="")


def start(client: Client, args) -> requests.Response:
    return client.call("POST", "/v1/verifications", json={"phone": args.phone})


def status(client: Client, args) -> requests.Response:
    return client.call("GET", f"/v1/verifications/{_id(args.id)}")


def check(client: Client, args) -> requests.Response:
    return client.call("POST", f"/v1/verifications/{_id(args.id)}/check", json={"code": args.code})


def cancel(client: Client, args) -> requests.Response:
    return client.call("POST", f"/v1/verifications/{_id(args.id)}/cancel", json={})


def purge(client: Client, args) -> requests.Response:
    return client.call("DELETE", f"{INSTANCES}/{_id(args.id)}")


def list_(client: Client, args) -> requests.Response | list:
    """Follows the continuation token until `--limit` are found; oldest first, as the index is."""
    params = {"top": str(min(args.limit, 1000))}
    if args.status:
        params["runtimeStatus"] = ",".join(args.status)
    if args.created_from:
        params["createdTimeFrom"] = args.created_from
    if args.created_to:
        params["createdTimeTo"] = args.created_to
    found, token = [], None
    while len(found) < args.limit:
        headers = {"x-ms-continuation-token": token} if token else {}
        response = client.call("GET", f"{INSTANCES}/", params=params, headers=headers)
        if not response.ok:
            return response
        found.extend(response.json())
        token = response.headers.get("x-ms-continuation-token")
        if not token:
            break
    return found[:args.limit]


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("must be a whole number of 1 or more")
    return int(text)


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(
        prog="verification", description="Operate the SMS verification service through its HTTP API.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = main_parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, handler, help_text):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    command("start", start, "start a verification: send a code by SMS").add_argument(
        "phone", help="international format, e.g. +14155550100")
    command("status", status, "show a verification").add_argument("id")
    checking = command("check", check, "check a code (a wrong one spends an attempt)")
    checking.add_argument("id")
    checking.add_argument("code")
    command("cancel", cancel, "cancel a pending verification").add_argument("id")
    listing = command("list", list_, "list verifications, oldest first (Durable status objects)")
    listing.add_argument("--status", action="append", choices=DURABLE_STATUSES,
                         help="only these (Running = pending); may be repeated")
    listing.add_argument("--from", dest="created_from", metavar="TIME", help="created at or after, ISO 8601")
    listing.add_argument("--to", dest="created_to", metavar="TIME", help="created at or before, ISO 8601")
    listing.add_argument("--limit", type=_positive, default=100, help="at most this many (default 100)")
    command("purge", purge, "delete a verification and its history now").add_argument("id")
    return main_parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    client = Client(os.environ.get("VERIFICATION_API_URL", "http://127.0.0.1:8000"),
                    os.environ.get("VERIFICATION_API_KEY", ""))
    try:
        result = args.handler(client, args)
    except Unreachable as exc:
        print(f"verification: {exc}", file=sys.stderr)
        return 3
    finally:
        client.close()
    if isinstance(result, list):
        print(json.dumps(result, indent=2))
        return 0
    try:
        body = result.json() if result.content else {}
    except ValueError:
        body = {"error": {"code": "not_json", "message": result.text[:500]}, "status": result.status_code}
    out = sys.stdout if result.ok else sys.stderr
    print(json.dumps(body, indent=2), file=out)
    return 0 if result.ok else 1
