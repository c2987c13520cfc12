"""API keys: `Authorization: Bearer <key>`, and for Durable-style routes `?code=<key>` or HTTP Basic."""

from __future__ import annotations

import hmac

from flask import current_app, g, request

from verification.errors import ApiError
from verification.ratelimits import key_fingerprint


def presented_key(allow_url_forms: bool) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    if allow_url_forms:
        if request.authorization and request.authorization.type == "basic":
            # The key is the user name, as Stripe does; `http://<key>:@host/` carries it this way.
            return request.authorization.username or None
        if request.args.get("code"):
            return request.args["code"]
    return None


def is_valid(key: str | None, keys) -> bool:
    if not key:
        return False
    # Compare against every key, in constant time each, so timing says nothing about which matched.
    matched = False
    for candidate in keys:
        matched |= hmac.compare_digest(key.encode(), candidate.encode())
    return matched


def require_api_key(blueprint, *, allow_url_forms: bool = False) -> None:
    """Guard every route of `blueprint` with the keys in API_KEYS."""
    # The OpenAPI document reads this to describe each route's security.
    blueprint.api_key_forms = ("bearer", "query", "basic") if allow_url_forms else ("bearer",)

    @blueprint.before_request
    def _check_key():
        settings = current_app.extensions["verification.settings"]
        if not settings.API_KEYS and settings.DEVELOPMENT_MODE:
            return None
        key = presented_key(allow_url_forms)
        if not is_valid(key, settings.API_KEYS):
            raise ApiError("A valid API key is required: Authorization: Bearer <key>.",
                           code="unauthorized", http_status=401,
                           headers={"WWW-Authenticate": 'Bearer realm="verification"'})
        # For the per-key rate limit: a fingerprint, so the key itself never reaches Redis.
        g.api_key_id = key_fingerprint(key)
        return None
