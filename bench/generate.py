"""A synthetic company catalog of any size, written as quarterdeck.yaml files, for benchmarks."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

WORDS = [
    "payments",
    "ledger",
    "checkout",
    "cart",
    "search",
    "catalog",
    "pricing",
    "inventory",
    "shipping",
    "billing",
    "identity",
    "auth",
    "profile",
    "orders",
    "returns",
    "fraud",
    "risk",
    "notify",
    "email",
    "sms",
    "push",
    "media",
    "images",
    "video",
    "reviews",
    "ratings",
    "loyalty",
    "rewards",
    "promo",
    "coupons",
    "tax",
    "invoice",
    "gateway",
    "router",
    "cache",
    "queue",
    "stream",
    "events",
    "audit",
    "metrics",
    "logging",
    "tracing",
    "config",
    "flags",
    "experiments",
    "recommend",
    "ranking",
    "index",
    "crawl",
    "feed",
    "timeline",
    "social",
    "chat",
    "support",
    "tickets",
    "warehouse",
    "picking",
    "packing",
    "labels",
    "carrier",
    "tracking",
    "fleet",
    "routing",
    "maps",
    "geo",
    "weather",
]
SUFFIXES = ["api", "service", "worker", "gateway", "store", "sync", "web", "engine", "adapter", "db"]
FIRST = [
    "ada",
    "alan",
    "grace",
    "linus",
    "margaret",
    "ken",
    "barbara",
    "dennis",
    "frances",
    "john",
    "edsger",
    "radia",
    "tim",
    "vint",
    "leslie",
]
LAST = [
    "lovelace",
    "turing",
    "hopper",
    "torvalds",
    "hamilton",
    "thompson",
    "liskov",
    "ritchie",
    "allen",
    "backus",
    "dijkstra",
    "perlman",
]


def _dump(path: Path, documents: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    path.write_text(yaml.dump_all(documents, Dumper=dumper, sort_keys=False, width=200))


@dataclass
class Catalog:
    """What a generated catalog holds, for picking request paths over all of it."""

    entities: int
    services: list[str]
    teams: list[str]
    tags: Counter[str] = field(default_factory=Counter)
    """Services per tag."""


PEOPLE_PER_FILE = 2_000


def generate(root: Path, *, services: int, teams: int, people: int, systems: int, seed: int = 7) -> int:
    """Write the catalog under `root`; returns the number of entities written."""
    return generate_catalog(
        root, services=services, teams=teams, people=people, systems=systems, seed=seed
    ).entities


def generate_catalog(
    root: Path, *, services: int, teams: int, people: int, systems: int, seed: int = 7
) -> Catalog:
    """Write the catalog under `root`; its service slugs, team slugs and tag counts."""
    rng = random.Random(seed)
    team_slugs = [f"team-{i:04d}" for i in range(teams)]
    system_slugs = [f"system-{i:04d}" for i in range(systems)]
    emails = [
        f"{FIRST[i % len(FIRST)]}.{LAST[(i // len(FIRST)) % len(LAST)]}{i}@corp.example"
        for i in range(people)
    ]
    service_slugs = [f"{rng.choice(WORDS)}-{rng.choice(SUFFIXES)}-{i:05d}" for i in range(services)]
    person_docs: list[dict[str, object]] = [
        {
            "apiVersion": "quarterdeck/v1",
            "kind": "Person",
            "email": email,
            "name": email.split("@")[0].replace(".", " ").title(),
            "chat": "@" + email.split("@")[0],
            "teams": [team_slugs[i % teams]],
        }
        for i, email in enumerate(emails)
    ]
    # 2,000 people a file: a larger catalog splits them, as the importer reads a file up to 1 MiB.
    for start in range(0, len(person_docs), PEOPLE_PER_FILE):
        name = "people.yaml" if start == 0 else f"people-{start // PEOPLE_PER_FILE + 1}.yaml"
        _dump(root / "org" / name, person_docs[start : start + PEOPLE_PER_FILE])
    team_docs: list[dict[str, object]] = []
    for i, slug in enumerate(team_slugs):
        team_docs.append(
            {
                "apiVersion": "quarterdeck/v1",
                "kind": "Team",
                "slug": slug,
                "name": f"{WORDS[i % len(WORDS)].title()} Team {i}",
                "email": f"{slug}@corp.example",
                "chat": f"#{slug}",
                **({"parent": team_slugs[i // 10]} if i >= 10 else {}),
                "members": [{"person": emails[(i * 7) % people], "role": "lead"}],
            }
        )
    _dump(root / "org" / "teams.yaml", team_docs)
    _dump(
        root / "systems.yaml",
        [
            {
                "apiVersion": "quarterdeck/v1",
                "kind": "System",
                "slug": s,
                "title": s.replace("-", " ").title(),
                "owner": team_slugs[i % teams],
                "description": f"System {i} of the synthetic company.",
            }
            for i, s in enumerate(system_slugs)
        ],
    )
    per_team: dict[str, list[dict[str, object]]] = {}
    tag_counts: Counter[str] = Counter()
    for i, slug in enumerate(service_slugs):
        owner = team_slugs[i % teams]
        # Sampling the range draws exactly what sampling the slice did, without copying it (O(n^2) at 100k).
        deps = [service_slugs[d] for d in rng.sample(range(i), k=min(i, rng.randint(0, 4)))] if i else []
        per_team.setdefault(owner, []).append(
            {
                "apiVersion": "quarterdeck/v1",
                "kind": "Service",
                "slug": slug,
                "title": slug.replace("-", " ").title(),
                "description": f"{slug.split('-')[0].title()} {slug.split('-')[1]} for the synthetic "
                f"company, handling {rng.choice(WORDS)} and {rng.choice(WORDS)} traffic.",
                "tier": rng.randint(1, 4),
                "lifecycle": rng.choice(
                    ["production", "production", "production", "experimental", "deprecated"]
                ),
                "system": system_slugs[i % systems],
                "owner": owner,
                "contacts": [
                    {"role": "tech-lead", "person": emails[(i * 3) % people]},
                    {"role": "product-manager", "person": emails[(i * 5 + 1) % people]},
                ],
                "links": [
                    {"kind": "runbook", "url": f"https://wiki.corp.example/{slug}/runbook"},
                    {"kind": "repo", "url": f"https://git.corp.example/{owner}/{slug}"},
                ],
                "tags": (tags := sorted({rng.choice(WORDS) for _ in range(3)})),
                "depends_on": deps,
                "image": f"registry.corp.example/{owner}/{slug}",
            }
        )
        tag_counts.update(tags)
    for owner, documents in per_team.items():
        _dump(root / "services" / owner / "quarterdeck.yaml", documents)
    return Catalog(
        entities=services + teams + people + systems,
        services=service_slugs,
        teams=team_slugs,
        tags=tag_counts,
    )
