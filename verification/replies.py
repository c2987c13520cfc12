"""What an SMS reply does: find the number's verification, check the code in it, and say what happened."""

from __future__ import annotations

from dataclasses import dataclass

from verification import codes, phone as phones
from verification.errors import Conflict, NotFound
from verification.model import EXPIRED, MAX_ATTEMPTS_REACHED, PENDING, Verification
from verification.service import VerificationService

# No text ever names the code: a reply shows on lock screens, and the code is not ours to repeat.
TEXTS = {
    "approved": "Thank you, your number is verified.",
    "wrong": "That code is not right. You have {left} {tries} left.",
    "no_attempts": "That code is no longer accepted: no attempts are left. Please request a new code.",
    "expired": "That code has expired. Please request a new code.",
    "nothing_pending": "There is no verification waiting for a reply from this number.",
    "help": "To verify your number, reply with just the code from our message.",
}


@dataclass(frozen=True)
class Reply:
    kind: str  # a key of TEXTS
    verification_id: str | None = None
    attempts_left: int = 0

    @property
    def text(self) -> str:
        tries = "attempt" if self.attempts_left == 1 else "attempts"
        return TEXTS[self.kind].format(left=self.attempts_left, tries=tries)


@dataclass(frozen=True)
class Candidate:
    """A code found in a reply, for the verification its sender's number points at."""

    verification_id: str
    code: str
    phone: str  # the sender, E.164: the verification must be for this number


def find(service: VerificationService, sender: str, body: str) -> Reply | Candidate:
    """The code to check, or the reply when there is none to check. Spends no attempt.

    A newer start for a number supersedes the older one, so the number's index names the one
    verification a reply can be meant for.
    """
    try:
        e164 = phones.parse(sender)
    except phones.InvalidPhone:
        return Reply("nothing_pending")
    verification_id = service.store.newest_for(e164)
    if not verification_id:
        return Reply("nothing_pending")
    code = codes.first_code_in(body)
    if code is not None:
        return Candidate(verification_id, code, e164)
    try:
        verification = service.get(verification_id)
    except NotFound:
        return Reply("nothing_pending")
    if verification.phone != e164:  # the index outlived its record, whose id now names another's
        return Reply("nothing_pending")
    if verification.status == PENDING:
        return Reply("help", verification_id, verification.attempts_remaining)
    return _final(verification.status, verification_id)


def check(service: VerificationService, candidate: Candidate) -> Reply:
    """The same atomic check as the API's: spends at most one attempt."""
    verification_id = candidate.verification_id
    try:
        verification, approved = service.check(verification_id, candidate.code, channel="sms",
                                               of_phone=candidate.phone)
    except NotFound:
        return Reply("nothing_pending", verification_id)
    except Conflict as conflict:
        return _final(conflict.details.get("status", ""), verification_id)
    if approved:
        return Reply("approved", verification_id)
    return _wrong(verification)


def _wrong(verification: Verification) -> Reply:
    if verification.status == MAX_ATTEMPTS_REACHED or verification.attempts_remaining <= 0:
        return Reply("no_attempts", verification.id)
    return Reply("wrong", verification.id, verification.attempts_remaining)


def _final(status: str, verification_id: str) -> Reply:
    # Expired and exhausted verifications say why; approved, canceled or failed ones await nothing.
    if status == EXPIRED:
        return Reply("expired", verification_id)
    if status == MAX_ATTEMPTS_REACHED:
        return Reply("no_attempts", verification_id)
    return Reply("nothing_pending", verification_id)
