"""The one way adapters talk HTTP: a client factory and the mapping of httpx failures to domain errors.

No httpx exception reaches a domain or a route: a timeout or refused connection becomes
`Unavailable(system)`, an upstream 5xx `Unavailable`, a 404 `NotFound`, other 4xx `Invalid`.
"""

from __future__ import annotations

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


@contextmanager
def mapped_errors(system: str) -> Iterator[None]:
    """Translate transport failures of a call to `system` into `Unavailable`, chained to the cause."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise Unavailable(f"{system} did not answer in time ({exc})", code=f"{system}.timeout") from exc
    except httpx.TransportError as exc:
        raise Unavailable(f"{system} cannot be reached: {exc}", code=f"{system}.unreachable") from exc


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
