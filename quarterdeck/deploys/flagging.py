"""What a deploy is flagged for: a production deploy of a service whose tier needs a second person's
approval (tier 1), that no approved change request vouched for.

Judged on the deploy's own record: the service's tier when the deploy was reported, the environment it
went to, and the approval linked to it, by access's one two-person rule. A later change of the tier, or
an approval given after the deploy, does not clear the flag.
"""

from __future__ import annotations

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Resource
from quarterdeck.deploys.models import Environment
from quarterdeck.deploys.schemas import DeployFlag

UNAPPROVED = "unapproved_tier1_production"
TIERS = (1, 2, 3, 4)
"""The catalog's tiers, 1 critical to 4 low."""


def needs_approval(tier: int | None, env: Environment) -> bool:
    """Whether a deploy of a service of this tier to this environment needs a second person's yes."""
    return access.needs_second_approval(
        Resource(type="service", tier=tier, environment=env.slug, production=env.production)
    )


def approval_tiers() -> frozenset[int]:
    """The tiers whose production deploys need an approval (asked of the rule, for queries)."""
    return frozenset(tier for tier in TIERS if access.needs_second_approval(_production(tier)))


def _production(tier: int) -> Resource:
    return Resource(type="service", tier=tier, production=True)


def flags_of(
    *, service: str, version: str, tier: int | None, env: Environment, approval_id: int | None
) -> list[DeployFlag]:
    """The deploy's flags; empty when there is nothing to look at."""
    if approval_id is not None or not needs_approval(tier, env):
        return []
    return [
        DeployFlag(
            code=UNAPPROVED,
            message=(
                f"Tier-{tier} production deploy without an approval: nobody approved shipping {service} "
                f"{version} to {env.name}. Ask first (POST /api/v1/approvals) and report the approved "
                "request's id as `approval`."
            ),
        )
    ]
