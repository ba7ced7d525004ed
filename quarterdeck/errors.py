"""Domain errors with stable codes; web/errors.py is the only place that maps them to HTTP.

QuarterdeckError
 ├── NotFound            something named does not exist
 ├── Invalid             input is malformed; details locate each problem (field, file, line)
 ├── Conflict            duplicates, stale ETags, an entity owned by another source
 │    ├── PreconditionFailed  a stale If-Match
 │    ├── InvalidTransition   a state change that is not allowed from the current state
 │    └── LeaseLost           a job's lease passed to another worker before its completion was written
 ├── Unauthenticated     no valid session or token where one is needed
 ├── Forbidden           the actor may not do this
 ├── RateLimited         too many attempts; try again later
 └── Unavailable         an outside system (git, a registry, ...) cannot be reached
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


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

    @classmethod
    def from_validation(
        cls, exc: ValidationError, *, code: str = "request.invalid", where: str = "body"
    ) -> Invalid:
        """A Pydantic validation failure as the API reports bad input: one detail per field."""
        details = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            message = (
                f"unknown field {field.rsplit('.', 1)[-1]!r}"
                if error["type"] == "extra_forbidden"
                else error["msg"]
            )
            details.append({"field": field or None, "in": where, "message": message})
        first = details[0]
        summary = f"{first['field']}: {first['message']}" if first["field"] else str(first["message"])
        return cls(summary, code=code, details=details)


class Conflict(QuarterdeckError):
    default_code = "conflict"


class Forbidden(QuarterdeckError):
    default_code = "forbidden"


class Unavailable(QuarterdeckError):
    default_code = "unavailable"


class PreconditionFailed(Conflict):
    """An If-Match that no longer matches: someone else changed the entity first."""

    default_code = "precondition_failed"


class InvalidTransition(Conflict):
    default_code = "invalid_transition"


class LeaseLost(Conflict):
    """A worker tried to finish a job it no longer holds (its lease expired and was taken over, or an
    admin cancelled it): nothing the handler wrote is kept."""

    default_code = "lease_lost"


class Unauthenticated(QuarterdeckError):
    default_code = "unauthenticated"


class RateLimited(QuarterdeckError):
    default_code = "rate_limited"
