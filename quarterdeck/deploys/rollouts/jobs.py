"""The rollouts' job handler: `deploys.rollout_step` runs a rollout's current step, or its rollback
(running.py)."""

from __future__ import annotations

from quarterdeck.deploys.rollouts.lifecycle import JOB_KIND
from quarterdeck.deploys.rollouts.running import run_step
from quarterdeck.jobs import Backoff, JobRegistry

STEP_LEASE_SECONDS = 120.0
"""Renewed every third of it while a step runs (a driver call, a command with its own timeout)."""


def register_jobs(registry: JobRegistry) -> None:
    registry.register(
        JOB_KIND,
        run_step,
        backoff=Backoff(max_attempts=5, base_seconds=5.0, factor=2.0, jitter=0.2),
        lease_seconds=STEP_LEASE_SECONDS,
    )
