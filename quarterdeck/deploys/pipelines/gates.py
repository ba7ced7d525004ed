"""The approvals of a pipeline as gates a deploy passes, and whether a new version of a pipeline keeps
every gate the old one had. Only admins may remove or loosen a gate where the two-person rule applies
(service.py decides where). Pure."""

from __future__ import annotations

from dataclasses import dataclass

from quarterdeck.deploys.pipelines.format import ApprovalStep, DeployStep, Pipeline, TeamApprover


@dataclass(frozen=True)
class Gate:
    who: str
    """"team_role:owner", "team_role:member" (of the owning team) or "team:<slug>"."""
    two_person: bool
    before_traffic: bool
    """Whether it stands before the new version takes any traffic."""

    def words(self) -> str:
        kind, _, value = self.who.partition(":")
        article = "an" if value[:1] in "aeiou" else "a"
        who = f"{article} {value} of the owning team" if kind == "team_role" else f"team {value}"
        second = ", a second person" if self.two_person else ""
        when = "before any traffic" if self.before_traffic else "after traffic has moved"
        return f"the approval by {who}{second}, {when}"


def gates(pipeline: Pipeline) -> list[Gate]:
    first_traffic = next(
        (
            index
            for index, step in enumerate(pipeline.steps)
            if isinstance(step, DeployStep) and step.deploy.amount > 0
        ),
        len(pipeline.steps),
    )
    found = []
    for index, step in enumerate(pipeline.steps):
        if isinstance(step, ApprovalStep):
            who = step.approval.who
            name = f"team:{who.team}" if isinstance(who, TeamApprover) else f"team_role:{who.team_role}"
            found.append(Gate(name, step.approval.two_person, index < first_traffic))
    return found


def _covers(kept: Gate, gate: Gate) -> bool:
    """Whether `kept` is at least as strict as `gate`: the same people (or the owners only where the
    members were), a second person if one was needed, as early as before."""
    same_people = kept.who == gate.who or (gate.who, kept.who) == ("team_role:member", "team_role:owner")
    return (
        same_people
        and (kept.two_person or not gate.two_person)
        and (kept.before_traffic or not gate.before_traffic)
    )


def lost_gates(before: Pipeline, after: Pipeline) -> list[Gate]:
    """The gates of `before` that no gate of `after` keeps."""
    kept = gates(after)
    return [gate for gate in gates(before) if not any(_covers(other, gate) for other in kept)]


def has_second_person(pipeline: Pipeline) -> bool:
    """Whether a second person approves before the new version takes traffic."""
    return any(gate.two_person and gate.before_traffic for gate in gates(pipeline))
