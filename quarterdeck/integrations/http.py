"""The one way adapters talk HTTP: a client factory and the mapping of httpx failures to domain errors.

No httpx exception reaches a domain or a route: a timeout or refused connection becomes
`Unavailable(system)`, an upstream 5xx `Unavailable`, a 404 `NotFound`, other 4xx `Invalid`. Why a
system cannot be reached is said in words ("its host name does not resolve"), never as an errno.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from quarterdeck import __version__
from quarterdeck.errors import Invalid, NotFound, Unavailable

USER_AGENT = f"quarterdeck/{__version__}"
DEFAULT_TIMEOUT = httpx.Timeout(5.0, connect=2.0)


def make_client(
    base_url: str = "",
    *,
    timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Client:
    """An httpx client with the portal's user agent and short timeouts (pages wait on these calls)."""
    return httpx.Client(
        base_url=base_url,
        timeout=timeout,
        transport=transport,
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        follow_redirects=True,
    )


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


_TIMEOUT_WORDS: dict[type[httpx.TimeoutException], str] = {
    httpx.ConnectTimeout: "it did not accept a connection in time",
    httpx.ReadTimeout: "it accepted the connection but did not answer in time",
    httpx.WriteTimeout: "it did not take the request in time",
    httpx.PoolTimeout: "no connection to it was free in time",
}


def transport_reason(exc: httpx.TransportError) -> tuple[str, str]:
    """(a stable kind, words a person reads) for why a request did not get an answer: `dns`,
    `refused`, `tls`, `timeout`, `network` or `other`. Read from the exception's causes (httpx wraps
    httpcore, which wraps the socket error)."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout", _TIMEOUT_WORDS.get(type(exc), "it did not answer in time")
    for cause in _causes(exc):
        if isinstance(cause, socket.gaierror):
            if cause.errno in (socket.EAI_AGAIN, getattr(socket, "EAI_NODATA", socket.EAI_AGAIN)):
                return "dns", "its host name could not be looked up (DNS did not answer)"
            return "dns", "its host name does not resolve"
        if isinstance(cause, ConnectionRefusedError):
            return "refused", "nothing accepts connections at that address (connection refused)"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return "tls", f"its TLS certificate is not trusted ({cause.verify_message})"
        if isinstance(cause, ssl.SSLError):
            return "tls", "the TLS handshake failed (is it plain HTTP?)"
        if isinstance(cause, OSError) and cause.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "network", "there is no network route to it"
        if isinstance(cause, ConnectionResetError):
            return "network", "it closed the connection"
    words = str(exc).split("] ", 1)[-1] if str(exc).startswith("[Errno") else str(exc)
    return "other", (words or type(exc).__name__).rstrip(".").lower()


@contextmanager
def mapped_errors(system: str) -> Iterator[None]:
    """Translate transport failures of a call to `system` into `Unavailable`, chained to the cause;
    `details` carries the reason's kind and words (see transport_reason)."""
    try:
        yield
    except httpx.TransportError as exc:
        kind, words = transport_reason(exc)
        timeout = kind == "timeout"
        raise Unavailable(
            f"{system} {'did not answer' if timeout else 'cannot be reached'}: {words}",
            code=f"{system}.timeout" if timeout else f"{system}.unreachable",
            details={"reason": kind, "words": words},
        ) from exc


def check_status(system: str, response: httpx.Response, what: str) -> None:
    """Raise the domain error an upstream status means; `what` names the thing asked for."""
    status = response.status_code
    if status < 400:
        return
    excerpt = response.text[:200].strip()
    if status == 404:
        raise NotFound(f"{system} has no {what}", code=f"{system}.not_found", details={"status": status})
    if status >= 500 or status == 429:
        raise Unavailable(
            f"{system} answered {status} for {what}: {excerpt}",
            code=f"{system}.upstream_error",
            details={"status": status},
        )
    raise Invalid(
        f"{system} refused {what} with {status}: {excerpt}",
        code=f"{system}.refused",
        details={"status": status},
    )
