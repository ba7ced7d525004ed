"""Short-lived values a browser carries for us (the OIDC sign-in state), signed with the secret key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from quarterdeck.errors import Forbidden


def _mac(secret: str, payload: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.new(secret.encode(), payload, hashlib.sha256).digest()).decode()


def sign(data: dict[str, Any], *, secret: str, at: datetime) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"at": at.timestamp(), "data": data}).encode())
    return payload.decode() + "." + _mac(secret, payload)


def unsign(token: str, *, secret: str, at: datetime, max_age_seconds: float) -> dict[str, Any]:
    """The data back, if the signature holds and it is not older than `max_age_seconds`."""
    payload, _, mac = token.rpartition(".")
    if not payload or not hmac.compare_digest(mac, _mac(secret, payload.encode())):
        raise Forbidden("the sign-in state was tampered with; start again", code="access.bad_signed_state")
    body = json.loads(base64.urlsafe_b64decode(payload.encode()))
    if at.timestamp() - float(body["at"]) > max_age_seconds:
        raise Forbidden("the sign-in took too long; start again", code="access.expired_signed_state")
    data: dict[str, Any] = body["data"]
    return data
