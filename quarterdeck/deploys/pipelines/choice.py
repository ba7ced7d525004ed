"""Which pipeline a deploy gets, and why: the precedence of overrides over defaults. Pure: the caller
reads the candidates (service.py).

Closest first, the first that applies wins:
  1. the service's override for this environment
  2. the service's override for every environment
  3. its owning team's override for this environment
  4. the team's override for every environment
  5. organisation defaults (admins', scope `default`): those for this environment, then the others,
     each in order of their names
  6. the product defaults that ship in defaults.yaml, in their order there
An override "applies" when its `applies_to` (tiers, production or not, named environments) holds for
the deploy; one that does not is passed over, and the reasons say so.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from quarterdeck.deploys.pipelines.expressions import quoted
from quarterdeck.deploys.pipelines.format import Pipeline
from quarterdeck.errors import NotFound

SCOPES = ("service", "team", "default", "product")
"""Where a pipeline is kept: a service's or a team's override, an organisation default (admins'), or a
product default (defaults.yaml, stored once a deploy runs it)."""


@dataclass(frozen=True)
class Candidate:
    """A pipeline that may be chosen: where it is kept, and its exact version."""

    scope: str
    ref: str
    environment: str | None
    pipeline: Pipeline
    digest: str
    pipeline_id: int | None = None
    version: int | None = None
    updated_by: str | None = None
    updated_at: datetime | None = None

    @property
    def key(self) -> str:
        """What names it uniquely: `service:checkout-api@production`, `team:shop`, `product:direct`."""
        return pipeline_key(self.scope, self.ref, self.environment)


def pipeline_key(scope: str, ref: str, environment: str | None) -> str:
    return f"{scope}:{ref}" + (f"@{environment}" if environment else "")


@dataclass(frozen=True)
class Target:
    """A deploy as the choice sees it: the service, its owning team and tier, the environment."""

    service: str
    team: str | None
    tier: int | None
    environment: str
    production: bool


@dataclass(frozen=True)
class Choice:
    candidate: Candidate
    reasons: tuple[str, ...]
    """Why: the deciding reason first, then each closer override that was passed over and why."""


def context_words(target: Target) -> str:
    """ "tier 1 in production", "services without a tier outside production"."""
    tier = f"tier {target.tier}" if target.tier is not None else "services without a tier"
    return f"{tier} {'in' if target.production else 'outside'} production"


def _levels(target: Target, stored: Sequence[Candidate]) -> Iterator[tuple[Candidate, str]]:
    """Each stored candidate that could serve the target, closest first, with what choosing it means."""

    def stored_at(scope: str, ref: str | None, environment: str | None) -> Candidate | None:
        return next(
            (c for c in stored if (c.scope, c.ref, c.environment) == (scope, ref, environment)),
            None,
        )

    service, env = target.service, target.environment
    owner = f"team {target.team} (owner of {service})"
    levels = [
        (stored_at("service", service, env), f"service {service} overrides {env}"),
        (stored_at("service", service, None), f"service {service} overrides every environment"),
        (stored_at("team", target.team, env), f"{owner} overrides {env}"),
        (stored_at("team", target.team, None), f"{owner} overrides every environment"),
    ]
    for candidate, reason in levels:
        if candidate is not None:
            yield candidate, reason
    defaults = sorted(
        (c for c in stored if c.scope == "default" and c.environment in (env, None)),
        key=lambda c: (c.environment is None, c.ref),
    )
    for candidate in defaults:
        where = f" in {env}" if candidate.environment else ""
        yield candidate, f"organisation default {quoted(candidate.ref)}{where} for {context_words(target)}"


def _passed_over(candidate: Candidate, why: str) -> str:
    where = candidate.environment or "every environment"
    if candidate.scope == "default":
        return f"organisation default {quoted(candidate.ref)} does not apply: {why}"
    return f"the override of {candidate.scope} {candidate.ref} for {where} does not apply: {why}"


def choose(target: Target, stored: Sequence[Candidate], product: Sequence[Candidate]) -> Choice:
    """The pipeline for `target`: the closest stored candidate that applies, else the first product
    default that does (the shipped defaults cover every tier and environment)."""
    passed: list[str] = []
    ordered = [
        *_levels(target, stored),
        *((candidate, f"default for {context_words(target)}") for candidate in product),
    ]
    for candidate, reason in ordered:
        why = candidate.pipeline.applies_to.mismatch(
            service=target.service,
            tier=target.tier,
            environment=target.environment,
            production=target.production,
        )
        if why is None:
            return Choice(candidate, (reason, *passed))
        if candidate.scope != "product":
            passed.append(_passed_over(candidate, why))
    raise NotFound(
        f"no pipeline applies to {target.service} in {target.environment} ({context_words(target)}): "
        "the product defaults should cover every deploy; add an organisation default",
        code="pipelines.none_applies",
    )
