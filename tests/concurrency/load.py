"""Concurrent writers and readers against a running server, and the checks of what they leave behind.

Shared by the concurrency suite (tests/concurrency) and `make bench` (bench/concurrency.py): the same
load, asserted on in one and measured in the other.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access import audit
from quarterdeck.access.schemas import AuditEntryOut
from tests.helpers import Json

SEARCH_TERMS = ["svc", "load", "hot", "team", "service 1", "svc-0", "svc-2"]


@dataclass
class LoadResult:
    seconds: float
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    write_ms: list[float] = field(default_factory=list)
    read_ms: list[float] = field(default_factory=list)

    def count(self, kind: str, predicate: Any = lambda status: True) -> int:
        return sum(n for (k, status), n in self.statuses.items() if k == kind and predicate(status))

    @property
    def server_errors(self) -> int:
        return sum(n for (_k, status), n in self.statuses.items() if status >= 500)

    @staticmethod
    def percentile(samples: list[float], pct: float) -> float:
        if not samples:
            return 0.0
        ordered = sorted(samples)
        return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]

    def summary(self) -> Json:
        ok_writes = self.count("write", lambda s: s == 200)
        return {
            "seconds": round(self.seconds, 1),
            "writes_ok": ok_writes,
            "writes_refused_412": self.count("write", lambda s: s == 412),
            "writes_per_s": round(ok_writes / self.seconds, 1),
            "write_p50_ms": round(self.percentile(self.write_ms, 50), 1),
            "write_p99_ms": round(self.percentile(self.write_ms, 99), 1),
            "reads": self.count("read"),
            "reads_per_s": round(self.count("read") / self.seconds, 1),
            "read_p50_ms": round(self.percentile(self.read_ms, 50), 1),
            "read_p99_ms": round(self.percentile(self.read_ms, 99), 1),
            "read_max_ms": round(max(self.read_ms, default=0.0), 1),
            "server_errors": self.server_errors,
            "statuses": {f"{k} {s}": n for (k, s), n in sorted(self.statuses.items())},
        }


async def _timed(
    client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await client.request(method, url, **kwargs)
    return response, (time.perf_counter() - started) * 1000


async def _hot_writer(client: httpx.AsyncClient, hot: str, stop: float, result: LoadResult, n: int) -> None:
    """Read the hot service, then change it only if nobody did in between (If-Match): 200 or 412."""
    i = 0
    while time.monotonic() < stop:
        got, _ = await _timed(client, "GET", f"/api/v1/services/{hot}")
        result.statuses[("read", got.status_code)] += 1
        if got.status_code != 200:
            continue
        body = {"description": f"writer {n} change {i}", "custom": {"writer": n, "change": i}}
        response, ms = await _timed(
            client, "PATCH", f"/api/v1/services/{hot}", json=body, headers={"If-Match": got.headers["etag"]}
        )
        result.statuses[("write", response.status_code)] += 1
        result.write_ms.append(ms)
        i += 1


async def _spread_writer(
    client: httpx.AsyncClient, services: list[str], stop: float, result: LoadResult, n: int
) -> None:
    """Change a random service without If-Match: every such write must land, in some order."""
    rng = random.Random(n)
    i = 0
    while time.monotonic() < stop:
        slug = rng.choice(services)
        body = {"description": f"spread writer {n} change {i}", "tier": rng.randint(2, 4)}
        response, ms = await _timed(client, "PATCH", f"/api/v1/services/{slug}", json=body)
        result.statuses[("write", response.status_code)] += 1
        result.write_ms.append(ms)
        i += 1


async def _reader(
    client: httpx.AsyncClient, services: list[str], stop: float, result: LoadResult, n: int
) -> None:
    rng = random.Random(1000 + n)
    while time.monotonic() < stop:
        if rng.random() < 0.7:
            url = f"/api/v1/services/{rng.choice(services)}"
        else:
            url = f"/api/v1/search?q={rng.choice(SEARCH_TERMS)}"
        response, ms = await _timed(client, "GET", url)
        result.statuses[("read", response.status_code)] += 1
        result.read_ms.append(ms)


async def _load(
    base: str, token: str, *, hot: str, services: list[str], writers: int, readers: int, seconds: float
) -> LoadResult:
    limits = httpx.Limits(max_connections=writers + readers + 8, max_keepalive_connections=writers + readers)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as client:
        result = LoadResult(seconds)
        stop = time.monotonic() + seconds
        tasks = [
            _hot_writer(client, hot, stop, result, n)
            if n % 2 == 0
            else _spread_writer(client, services, stop, result, n)
            for n in range(writers)
        ]
        tasks += [_reader(client, services, stop, result, n) for n in range(readers)]
        await asyncio.gather(*tasks)
        return result


def run_load(
    base: str,
    token: str,
    *,
    hot: str,
    services: list[str],
    writers: int = 32,
    readers: int = 8,
    seconds: float = 20.0,
) -> LoadResult:
    """`writers` concurrent writers (half on the one `hot` service with If-Match, half spread over
    `services` without) and `readers` readers (service lookups and searches) for `seconds`."""
    return asyncio.run(
        _load(base, token, hot=hot, services=services, writers=writers, readers=readers, seconds=seconds)
    )


async def _all_at_once(base: str, requests: list[tuple[str, str, str, Json | None]]) -> list[httpx.Response]:
    """Send every (method, path, token, body) at the same moment, each on its own connection."""
    async with httpx.AsyncClient(
        base_url=base, timeout=60, limits=httpx.Limits(max_connections=len(requests))
    ) as client:
        return await asyncio.gather(
            *(
                client.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
                for method, path, token, body in requests
            )
        )


def race(base: str, requests: list[tuple[str, str, str, Json | None]]) -> list[httpx.Response]:
    return asyncio.run(_all_at_once(base, requests))


def lost_updates(sessions: sessionmaker[Session], target_type: str) -> list[str]:
    """Every audit entry of `target_type` whose `before` is not what the previous entry for the same
    object left (`after`): a write made over a value its writer never saw. Empty when none."""
    with sessions() as session:
        entries, _total = audit.search(
            session, audit.AuditFilters(target_type=target_type), per_page=1_000_000
        )
    known: dict[str, Json] = defaultdict(dict)
    problems = []
    for entry in sorted(entries, key=lambda e: e.seq):
        state = known[entry.target_id]
        before = entry.before if isinstance(entry.before, dict) else {}
        for key, value in before.items():
            if key in state and state[key] != value:
                problems.append(
                    f"entry {entry.seq} ({entry.action} {entry.target_id}): {key} was {state[key]!r} "
                    f"after entry {_last_seq(entries, entry, key)}, but this write saw {value!r}"
                )
        if isinstance(entry.after, dict):
            state.update(entry.after)
    return problems


def _last_seq(entries: list[AuditEntryOut], entry: AuditEntryOut, key: str) -> int | None:
    earlier = [
        e.seq
        for e in entries
        if e.target_id == entry.target_id
        and e.seq < entry.seq
        and isinstance(e.after, dict)
        and key in e.after
    ]
    return max(earlier, default=None)
