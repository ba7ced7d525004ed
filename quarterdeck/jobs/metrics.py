"""The job queue on /metrics: read from the database at scrape time, so every worker process and
server replica reports the same, whole queue."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.clock import Clock, SystemClock
from quarterdeck.jobs import figures
from quarterdeck.jobs.states import JobState

log = logging.getLogger("quarterdeck.jobs")
LAG_WINDOW = timedelta(minutes=5)


def _families() -> tuple[
    GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily, GaugeMetricFamily
]:
    return (
        GaugeMetricFamily(
            "quarterdeck_jobs",
            "Jobs per kind and state (succeeded ones are not counted)",
            labels=["kind", "state"],
        ),
        GaugeMetricFamily(
            "quarterdeck_jobs_oldest_due_lag_seconds",
            "How long the oldest due job of each kind has waited for a worker",
            labels=["kind"],
        ),
        GaugeMetricFamily(
            "quarterdeck_jobs_start_lag_seconds",
            f"Seconds from due to started of attempts started in the last {LAG_WINDOW.seconds // 60} minutes",
            labels=["kind", "stat"],
        ),
        CounterMetricFamily(
            "quarterdeck_jobs_failures",
            "Failed attempts per kind (errors, permanent failures, expired leases)",
            labels=["kind"],
        ),
        GaugeMetricFamily("quarterdeck_jobs_up", "1 when the job figures could be read from the database"),
    )


class JobsCollector(Collector):
    """Register with a prometheus_client registry: `registry.register(JobsCollector(sessions))`."""

    def __init__(self, sessions: sessionmaker[Session], *, clock: Clock | None = None) -> None:
        self.sessions = sessions
        self.clock = clock or SystemClock()

    def describe(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        # Without describe(), registering would run a scrape (and queries) at once.
        return _families()

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        depth, oldest, lag, failures, up = _families()
        now = self.clock.now()
        try:
            with self.sessions() as session:
                counts = figures.depth(session)
                waiting = figures.oldest_due(session, now)
                started = figures.start_lag(session, now - LAG_WINDOW)
                failed = figures.failures(session)
        except SQLAlchemyError as exc:
            log.warning("jobs: metrics could not be read (%s)", exc)
            up.add_metric([], 0)
            return [up]
        kinds = sorted({kind for kind, _, _ in counts} | set(waiting) | set(failed))
        seen = {(kind, state): count for kind, state, count in counts}
        for kind in kinds:
            for state in JobState:
                if state is not JobState.SUCCEEDED:
                    depth.add_metric([kind, state.value], seen.get((kind, state), 0))
            failures.add_metric([kind], failed.get(kind, 0))
            lagging = waiting.get(kind)
            oldest.add_metric([kind], (now - lagging).total_seconds() if lagging else 0.0)
        for kind, (mean, largest, _count) in sorted(started.items()):
            lag.add_metric([kind, "mean"], mean)
            lag.add_metric([kind, "max"], largest)
        up.add_metric([], 1)
        return [depth, oldest, lag, failures, up]
