"""How idle worker threads learn that there may be work: a shared wake-up signal, and on PostgreSQL a
connection that LISTENs for the NOTIFY every enqueue, retry and reap sends when it commits."""

from __future__ import annotations

import logging
import threading

import psycopg
from sqlalchemy import URL

from quarterdeck.jobs.store import CHANNEL

log = logging.getLogger("quarterdeck.jobs")


class Wakeups:
    """A counter that idle threads wait on: a thread notes it, looks for work, and sleeps only if it has
    not moved since, so a wake-up that comes while it looks is never lost."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._generation = 0

    @property
    def generation(self) -> int:
        with self._changed:
            return self._generation

    def wake(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def wait(self, seen: int, timeout: float) -> bool:
        """Sleep until woken after `seen`, or `timeout` seconds; whether woken."""
        with self._changed:
            return self._changed.wait_for(lambda: self._generation != seen, timeout=max(0.0, timeout))


class Listener:
    """A thread holding one PostgreSQL connection in LISTEN quarterdeck_jobs; each notification wakes
    the worker's threads. It reconnects after a lost connection, and wakes everyone on each (re)connect
    because notifications sent while it was away are gone."""

    def __init__(self, url: URL, wakeups: Wakeups) -> None:
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._wakeups = wakeups
        self._stop = threading.Event()
        self.listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jobs-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    self._wakeups.wake()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            self._wakeups.wake()
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning("jobs: listening for new jobs failed (%s); reconnecting", exc)
                self._stop.wait(1.0)
