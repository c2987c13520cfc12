"""SMS senders behind one small interface, picked by configuration: Twilio or the console."""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3 import exceptions as urllib3_errors

from verification.phone import mask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sent:
    sid: str


class SendError(Exception):
    """The provider did not accept the message."""

    def __init__(self, message: str, *, transient: bool, error_code: int | None = None,
                 retry_after: float | None = None, maybe_sent: bool = False):
        super().__init__(message)
        self.transient = transient
        self.error_code = error_code
        self.retry_after = retry_after
        # The request left but no answer came back: Twilio may have accepted it. Retrying could send
        # a second SMS, so the caller must not.
        self.maybe_sent = maybe_sent


class ConsoleSender:
    """Prints the SMS for local use; the terminal stands in for the phone."""

    def __init__(self, stream=None):
        # sys.__stdout__: past the redirect of stdout into logging that Celery workers set up.
        self.stream = stream or sys.__stdout__

    def send(self, to: str, body: str, status_callback: str | None = None) -> Sent:
        # The console is this sender's delivery channel, like the SMS itself, so the message goes
        # to the terminal directly and never through `logging`.
        print(f"\n=== SMS to {to} ===\n{body}\n{'=' * 24}\n", file=self.stream, flush=True)
        log.info("console SMS written for %s", mask(to))
        return Sent(sid="console")


# Twilio error codes that no retry can fix.
PERMANENT_TWILIO_ERRORS = {21211, 21614, 21610, 21608, 21606, 20003}


class TwilioSender:
    """Sends through the official `twilio` library; TWILIO_API_BASE_URL may point at a stand-in."""

    def __init__(self, account_sid: str, auth_token: str, from_number: str = "",
                 messaging_service_sid: str = "", base_url: str = "https://api.twilio.com",
                 timeout: float = 10):
        self.http = _RecordingHttpClient(timeout=timeout)
        self.client = Client(account_sid, auth_token, http_client=self.http)
        base_url = base_url.rstrip("/")
        if base_url != "https://api.twilio.com":
            self.client.api.base_url = base_url
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid

    def send(self, to: str, body: str, status_callback: str | None = None) -> Sent:
        options = {"to": to, "body": body}
        if self.messaging_service_sid:
            options["messaging_service_sid"] = self.messaging_service_sid
        else:
            options["from_"] = self.from_number
        if status_callback:
            options["status_callback"] = status_callback
        try:
            message = self.client.messages.create(**options)
        except TwilioRestException as exc:
            transient = exc.status == 429 or exc.status >= 500
            if exc.code in PERMANENT_TWILIO_ERRORS:
                transient = False
            raise SendError(f"Twilio answered {exc.status} (error {exc.code})", transient=transient,
                            error_code=exc.code, retry_after=self.http.retry_after()) from None
        except requests.RequestException as exc:
            if _never_sent(exc):
                raise SendError(f"Twilio unreachable: {type(exc).__name__}", transient=True) from None
            raise SendError(f"No answer from Twilio ({type(exc).__name__}); the SMS may have been sent",
                            transient=False, maybe_sent=True) from None
        return Sent(sid=message.sid)


# Failures of the connection itself (refused, DNS, connect timeout, TLS handshake, proxy): they
# happen before a byte of the request is sent, so a retry cannot make a second SMS.
_CONNECT_FAILURES = (urllib3_errors.NewConnectionError, urllib3_errors.ConnectTimeoutError,
                     urllib3_errors.SSLError, urllib3_errors.ProxyError)


def _never_sent(exc: requests.RequestException) -> bool:
    """Whether the request certainly never reached Twilio.

    The client does not retry, so urllib3 wraps errors of the connect phase in MaxRetryError and
    raises errors after the request went out (read timeout, connection reset, a cut-off response)
    as they are; those are the ambiguous ones.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    cause = exc.args[0] if exc.args else None
    return isinstance(cause, urllib3_errors.MaxRetryError) and isinstance(cause.reason, _CONNECT_FAILURES)


class _RecordingHttpClient(TwilioHttpClient):
    """Keeps the last response's headers: the library's exception drops `Retry-After`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._local = threading.local()

    def request(self, *args, **kwargs):
        response = super().request(*args, **kwargs)
        self._local.headers = response.headers or {}
        return response

    def retry_after(self) -> float | None:
        headers = getattr(self._local, "headers", {})
        value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        try:
            return max(float(value), 0.0) if value is not None else None
        except ValueError:
            return None


def make_sender(settings):
    if settings.sms_backend == "console":
        return ConsoleSender()
    if settings.sms_backend == "twilio":
        return TwilioSender(
            settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN,
            from_number=settings.TWILIO_PHONE_NUMBER,
            messaging_service_sid=settings.TWILIO_MESSAGING_SERVICE_SID,
            base_url=settings.TWILIO_API_BASE_URL,
            timeout=settings.TWILIO_TIMEOUT_SECONDS,
        )
    raise ValueError(f"unknown SMS_BACKEND {settings.sms_backend!r}")
