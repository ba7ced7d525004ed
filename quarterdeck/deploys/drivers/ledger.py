"""The record of idempotency keys a driver has applied: one small JSON file per key in a folder of the
driver's state, each held under an exclusive lock (flock) while its effect is carried out.

Why files and not a table: a driver runs where its effects happen (the local driver's processes and
HAProxy are on one machine), is built without a database session, and must keep its record even when
the job's transaction rolls back (the effect happened; the job's completion did not). The lock makes a
second worker that holds the same key wait for the first and then find the key applied. Workers on
several machines share one record only when they share the folder (QD_DEPLOY_STATE_DIR on a shared
file system with working locks); otherwise the command itself must honour `{idempotency_key}`.

A key's record is written after its effect: a worker killed in between leaves the key unapplied, so
the retry carries the effect out again. Effects are written to be harmless twice (absolute weights,
"start unless running"), which is what makes that window safe.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from quarterdeck.deploys.drivers.base import DriverError

MAX_KEY_LENGTH = 500
RECORD_LOG_LINES = 50
"""Lines of a step's log kept with its key, shown again when the key comes back."""


@dataclass(frozen=True)
class KeyRecord:
    key: str
    effect: str
    """What the key was applied to, e.g. `set_traffic checkout in staging: 1.4.2 at 10 %`."""
    at: datetime
    log_tail: tuple[str, ...]


class HeldKey:
    """A key locked by this process: its record if it was applied, and `save()` once the effect is done."""

    def __init__(self, key: str, handle: IO[bytes], record: KeyRecord | None) -> None:
        self.key = key
        self.record = record
        self._handle = handle

    def save(self, effect: str, at: datetime, log_tail: tuple[str, ...]) -> None:
        body = {"key": self.key, "effect": effect, "at": at.isoformat(), "log_tail": list(log_tail)}
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(json.dumps(body, ensure_ascii=False).encode())
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.record = KeyRecord(self.key, effect, at, log_tail)


class KeyLedger:
    """Applied keys under `folder` (made when first needed)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_of(self, key: str) -> Path:
        # Keys are the orchestrator's (`deploy:12:step:3`): hashed so any text makes a safe file name.
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:40]}.json"

    @contextmanager
    def hold(self, key: str) -> Iterator[HeldKey]:
        """The key, locked against every other holder on this machine until the block ends."""
        if not key or len(key) > MAX_KEY_LENGTH or "\x00" in key:
            raise DriverError(
                f"idempotency key {key[:60]!r} is not usable: expected 1 to {MAX_KEY_LENGTH} characters "
                "and no NUL",
                code="deploys.bad_idempotency_key",
            )
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle = open(self.path_of(key), "a+b")  # noqa: SIM115 - held open for the lock's lifetime
        except OSError as exc:
            raise DriverError(
                f"cannot record idempotency keys in {self.folder}: {exc.strerror or exc}",
                code="deploys.driver_state",
            ) from exc
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield HeldKey(key, handle, _read(handle, key))
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def records(self) -> list[KeyRecord]:
        """Every applied key, oldest first: the driver's call log (fault tests read it to prove that
        no step was applied twice)."""
        found = []
        for path in self.folder.glob("*.json") if self.folder.is_dir() else ():
            with open(path, "rb") as handle:
                raw = handle.read()
            try:
                key = json.loads(raw)["key"] if raw else None
            except (ValueError, KeyError, TypeError):
                key = None
            if isinstance(key, str) and (record := self.find(key)) is not None:
                found.append(record)
        return sorted(found, key=lambda record: (record.at, record.key))

    def find(self, key: str) -> KeyRecord | None:
        """The key's record without locking it (for status pages and tests)."""
        try:
            with open(self.path_of(key), "rb") as handle:
                return _read(handle, key)
        except FileNotFoundError:
            return None


def _read(handle: IO[bytes], key: str) -> KeyRecord | None:
    """The record in an open key file; None when it is empty (held, never saved) or torn by a crash
    mid-write, which counts as not applied: the effect is carried out again, as at-least-once allows."""
    handle.seek(0)
    raw = handle.read()
    if not raw:
        return None
    try:
        body = json.loads(raw)
        if body["key"] != key:
            return None
        return KeyRecord(
            key, str(body["effect"]), datetime.fromisoformat(body["at"]), tuple(body["log_tail"])
        )
    except (ValueError, KeyError, TypeError):
        return None
