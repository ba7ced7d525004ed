"""Rollouts: a portal deploy run through its pipeline, step by step, as jobs on the durable runner, with
its controls, approvals, freeze windows and event stream.

What other modules use: `start_rollout`, `control`, `rollout_view`, `rollout_events`, `step_log`,
`decide_change` (deciding any change request wakes the rollout waiting on it), `ask_emergency`, and
the freeze windows (`add_freeze`, `remove_freeze`, `list_freezes`).
"""

from quarterdeck.deploys.rollouts.approvals import ask_emergency, decide_change
from quarterdeck.deploys.rollouts.controls import control
from quarterdeck.deploys.rollouts.freezes import add_freeze, list_freezes, remove_freeze
from quarterdeck.deploys.rollouts.lifecycle import JOB_KIND
from quarterdeck.deploys.rollouts.reading import (
    rollout_events,
    rollout_out,
    rollout_view,
    service_rollouts,
    step_log,
    step_logs,
)
from quarterdeck.deploys.rollouts.starting import MAX_QUEUED, start_rollout
from quarterdeck.deploys.rollouts.states import RolloutState, StepState

__all__ = [
    "JOB_KIND",
    "MAX_QUEUED",
    "RolloutState",
    "StepState",
    "add_freeze",
    "ask_emergency",
    "control",
    "decide_change",
    "list_freezes",
    "remove_freeze",
    "rollout_events",
    "rollout_out",
    "rollout_view",
    "service_rollouts",
    "start_rollout",
    "step_log",
    "step_logs",
]
