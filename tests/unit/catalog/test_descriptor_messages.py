"""What a bad value in a quarterdeck.yaml is told: a sentence saying what the field must be, never the
regular expression it failed; the JSON Schema still carries the patterns. Pure: no database."""

from __future__ import annotations

import pytest

from quarterdeck.catalog.descriptors import read_descriptor_file
from quarterdeck.catalog.descriptors.quarterdeck_format import DESCRIPTOR_ADAPTER, descriptor_json_schema

SERVICE = "apiVersion: quarterdeck/v1\nkind: Service\nslug: checkout\nowner: shop\n"
TEAM = "apiVersion: quarterdeck/v1\nkind: Team\nslug: shop\nname: Shop\n"

SLUG = (
    "must be lowercase letters and digits with '-', '_' or '.' between them (like checkout-api), "
    "optionally after a namespace and '/' (like shop/checkout-api)"
)

CASES: list[tuple[str, str]] = [
    # capitals and a space in the slug
    (SERVICE.replace("slug: checkout", "slug: Checkout API"), f"slug: {SLUG}"),
    # a namespace part longer than 63 characters
    (
        SERVICE.replace("slug: checkout", f"slug: {'a' * 64}/checkout"),
        "slug: each part of a slug must be at most 63 characters",
    ),
    # an owner that is neither a team, a user nor an e-mail
    (
        SERVICE.replace("owner: shop", "owner: Shop Team"),
        "owner: must be a team's slug (like payments, or group:payments), user: and a handle, or an e-mail",
    ),
    # a dependency with a space
    (
        SERVICE + "depends_on: [cart service]\n",
        "depends_on.0: must be a service's slug (like checkout-api), "
        "optionally after component:, api: or resource:",
    ),
    # a tag in capitals
    (
        SERVICE + "tags: [PCI]\n",
        "tags.0: must be lowercase letters, digits, ':', '+' or '#', with '-' between words, like pci-dss",
    ),
    # two words for a lifecycle
    (
        SERVICE + "lifecycle: in production\n",
        "lifecycle: must be one word of 1 to 100 characters, without spaces, like production",
    ),
    # a contact role in capitals
    (
        SERVICE + "contacts: [{role: Tech Lead, person: ada}]\n",
        "contacts.0.role: must be lowercase letters and digits with '-', '_' or a space between them, "
        "like tech-lead",
    ),
    # a link that is not a URL
    (
        SERVICE + "links: [{url: wiki/checkout}]\n",
        "links.0.url: must be an http, https, mailto, slack or msteams URL without spaces",
    ),
    # a link kind with a space
    (
        SERVICE + "links: [{kind: run book, url: 'https://wiki.example.com'}]\n",
        "links.0.kind: must be lowercase letters, digits and '-', like runbook",
    ),
    # an image with a digest
    (
        SERVICE + "image: registry.example.com/shop/checkout@sha256:abc\n",
        "image: must be an image repository starting with a letter or digit, without spaces or '@', "
        "like registry.example.com/shop/checkout",
    ),
    # a custom field key with a space
    (
        SERVICE + "custom: {Cost Center: 42}\n",
        "custom.Cost Center.[key]: must be lowercase letters and digits with '-', '_' or '.' between them, "
        "like cost-center",
    ),
    # a team e-mail without a domain
    (TEAM + "email: shop\n", "email: must be an e-mail address, like ada@example.com"),
]
"""(descriptor, the one problem it has)."""


@pytest.mark.parametrize(("text", "message"), CASES, ids=[message.split(":")[0] for _, message in CASES])
def test_a_value_that_does_not_match_is_told_what_it_must_be(text: str, message: str) -> None:
    result = read_descriptor_file("quarterdeck.yaml", text)

    assert [problem.message for problem in result.problems] == [message]


def test_the_schema_keeps_the_patterns_the_sentences_explain() -> None:
    schema = descriptor_json_schema()
    service = schema["$defs"]["ServiceDescriptor"]["properties"]

    assert service["slug"]["pattern"].startswith("^(?:[a-z0-9]+")
    assert service["tags"]["items"]["pattern"].startswith("^[a-z0-9:+#]+")
    # what passed the patterns still passes
    DESCRIPTOR_ADAPTER.validate_python(
        {"apiVersion": "quarterdeck/v1", "kind": "Service", "slug": "shop/checkout-api", "owner": "user:ada"}
    )
