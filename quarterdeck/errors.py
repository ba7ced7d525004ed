"""Domain errors with stable codes; web/errors.py is the only place that maps them to HTTP.

QuarterdeckError
 ├── NotFound            something named does not exist
 ├── Invalid             input is malformed; details locate each problem (field, file, line)
 ├── Conflict            duplicates, stale ETags, an entity owned by another source
 ├── Forbidden           the actor may not do this
 │    └── PreconditionFailed  a stale If-Match
 └── Unavailable         an outside system (git, a registry, ...) cannot be reached
"""

from __future__ import annotations

from typing import Any


class QuarterdeckError(Exception):
    """Base of every error a user is meant to read."""

    default_code = "error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details


class NotFound(QuarterdeckError):
    default_code = "not_found"


class Invalid(QuarterdeckError):
    default_code = "invalid"


class Conflict(QuarterdeckError):
    default_code = "conflict"


class Forbidden(QuarterdeckError):
    default_code = "forbidden"


class Unavailable(QuarterdeckError):
    default_code = "unavailable"


class PreconditionFailed(Conflict):
    """An If-Match that no longer matches: someone else changed the entity first."""

    default_code = "precondition_failed"
