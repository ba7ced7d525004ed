"""Descriptor files as users write them: every file's outcome, then whole folders imported.

Two corpora. The public one (../shared/corpus/catalog/public, real files from public repositories,
described in its SOURCES.tsv) is absent from a user's clone, so its tests skip there. The project's
own fixtures (tests/fixtures/descriptors) cover the same cases and always run.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.catalog import service
from quarterdeck.catalog.descriptors import FileOutcome, FileResult, ServiceDraft, read_descriptor_file
from quarterdeck.catalog.importer import ImportReport, import_source
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from tests.conftest import FIXTURES, SHARED_CORPUS

OWN_CORPUS = FIXTURES / "descriptors"

IMPORTED = FileOutcome.IMPORTED
PARTIAL = FileOutcome.PARTIAL
INVALID = FileOutcome.INVALID
SKIPPED = FileOutcome.SKIPPED
FOREIGN = FileOutcome.FOREIGN
NOT_DESCRIPTOR = FileOutcome.NOT_DESCRIPTOR

# file in the public corpus -> (outcome, number of drafts). The SOURCES.tsv note follows each row.
PUBLIC: dict[str, tuple[FileOutcome, int]] = {
    # Location in namespace devex with spec.owner (not a Location field) and 21 relative targets
    "1-Platform__one-platform__catalog-info.yml": (IMPORTED, 0),
    # Resource with lifecycle; system ref devex/one-platform
    "1-Platform__one-platform__catalog__resources__NativeMongoDB.yml": (IMPORTED, 1),
    # System in namespace devex, owner user:redhat/npatil
    "1-Platform__one-platform__catalog__systems__OnePlatform.yml": (IMPORTED, 1),
    # plain Component in a system
    "1000kit__tkit-quarkus-rest__catalog-info.yaml": (IMPORTED, 1),
    # Cortex, EMAIL owner
    "8x8__knox__cortex.yaml": (FOREIGN, 0),
    # Component with techdocs-ref dir:../docs
    "Altitude-sports__helm-ssm__.backstage__catalog-info.yaml": (IMPORTED, 1),
    # Component and API both missing spec.lifecycle (required by Backstage for both): refused
    "EffortlessMetrics__Rust-Template__backstage__catalog-info.yaml": (INVALID, 0),
    # Datadog schema v2
    "FigureTechnologies__event-stream__service.datadog.yaml": (FOREIGN, 0),
    # Soundcheck demo: 2 Systems, 5 Components, a Resource, dependencyOf
    "FrankySpot__soundcheck-demo-entities__catalog__catalog-info.yaml": (IMPORTED, 8),
    # Domain (owner TBD) read; Location with no spec at all refused
    "Geotab__mygeotab-api-adapter__catalog-info.yml": (PARTIAL, 1),
    # name with an underscore (valid)
    "Invoca__process_settings__catalog-info.yml": (IMPORTED, 1),
    # Cortex OpenAPI descriptor with x-cortex-* extensions
    "JupiterOne__graph-azure__cortex.yaml": (FOREIGN, 0),
    # dependsOn without a kind prefix
    "Kajabi__sage-lib__docs__catalog-info.yaml": (IMPORTED, 1),
    # GitLab CI/CD catalog metadata under Backstage's file name: rejected by name of its product
    "LLNL__radiuss-shared-ci__catalog-info.yml": (FOREIGN, 0),
    # unrendered scaffolder skeleton with {%- if %}: a YAML syntax error
    "Mhodtood__axum-service-template__.backstage__catalog-info.yaml": (INVALID, 0),
    # metadata.name with spaces
    "OctopusDeploy__mssql-docker__.backstage__catalog-info.yaml": (INVALID, 0),
    # OpsLevel v1 service
    "OpsLevel__cli__opslevel.yml": (FOREIGN, 0),
    # Port list collapsed onto one line: not YAML either, still named as Port's
    "Port-samples__DemoSrv__port.yml": (FOREIGN, 0),
    # Component (type 'website ' with a trailing space) and a Location with ** glob targets
    "RoadieHQ__roadie-backstage-plugins__catalog-info.yaml": (IMPORTED, 1),
    # 3 Groups and 2 Users, one capitalised ("Xantier")
    "RoadieHQ__sample-service__org.yaml": (IMPORTED, 5),
    # name with a capital letter (valid in Backstage)
    "Tradeshift__elements__catalog-info.yml": (IMPORTED, 1),
    # JSON with a trailing comma: not JSON, but valid YAML flow
    "Zaperex-Test-Org__test-repo-3__catalog-info.json": (IMPORTED, 1),
    # links at the top level (a notice) and an e-mail owner
    "Zenika__sensei__.backstage__catalog-info.yaml": (IMPORTED, 1),
    # OpsLevel v1 "repository:" form
    "auth0__java-jwt__opslevel.yml": (FOREIGN, 0),
    # Location pointing at a Template
    "back-stack__bead-gke__backstage__catalog-info.yaml": (IMPORTED, 0),
    # Template: not part of the catalog
    "back-stack__bead-gke__backstage__catalog__templates__cluster__gke__template.yaml": (SKIPPED, 0),
    # Backstage's own root Component, owner "CNCF"
    "backstage__backstage__catalog-info.yaml": (IMPORTED, 1),
    # a Group and 5 Users, two of them "guest" in different namespaces
    "backstage__backstage__packages__catalog-model__examples__acme__team-a-group.yaml": (IMPORTED, 6),
    # API with an inline OpenAPI definition
    "backstage__backstage__packages__catalog-model__examples__apis__petstore-api.yaml": (IMPORTED, 1),
    # Backstage's intentionally invalid example (name and tag with spaces)
    "backstage__backstage__packages__catalog-model__examples__components__invalid-component.yaml": (
        INVALID,
        0,
    ),
    # experimental kind Environment: not part of the catalog
    "backstage__backstage__packages__catalog-model__examples__environments__dev.yaml": (SKIPPED, 0),
    # System owned by user:team-b
    "backstage__backstage__packages__catalog-model__examples__systems__podcast-system.yaml": (IMPORTED, 1),
    # legacy Template (backstage.io/v1beta2)
    "backstage__backstage__plugins__scaffolder-backend__sample-templates__v1beta2-demo__template.yaml": (
        SKIPPED,
        0,
    ),
    # owner group:cds-snc/notify-dev (namespace in the reference)
    "cds-snc__notification-api__catalog-info.yaml": (IMPORTED, 1),
    # type go-library
    "einride__aip-go__.backstage__catalog-info.yaml": (IMPORTED, 1),
    # Component and a Resource with a nested foreign apiVersion in spec.implementation
    "elastic__kibana__catalog-info.yaml": (IMPORTED, 2),
    # Datadog v2.1 with literal "undefined" values
    "fanduel__mass-driver__service.datadog.yaml": (FOREIGN, 0),
    # 11 Groups in namespace giantswarm, team-phoenix twice (the duplicate is refused at import)
    "giantswarm__backstage-catalogs__catalogs__groups.yaml": (IMPORTED, 11),
    # scaffolder v1beta3 Template
    "giantswarm__backstage-catalogs__templates__namespace__template.yaml": (SKIPPED, 0),
    # quoted name, owner user:guest
    "hasura__ndc-postgres__.backstage__catalog-info.yaml": (IMPORTED, 1),
    # a Group read; 3 Users named by e-mail address (invalid names) refused
    "holos-run__portal__org.yaml": (PARTIAL, 1),
    # Component and API whose definition is a literal block holding "$text: URL"
    "navikt__g__.backstage__catalog-info.yaml": (IMPORTED, 2),
    # lives in .github/, lifecycle unknown
    "philips-software__terraform-provider-hsdp__.github__catalog-info.yaml": (IMPORTED, 1),
    # lifecycle '-' (a placeholder)
    "snyk__cli__catalog-info.yaml": (IMPORTED, 1),
    # Location listing 8 component files
    "weaveworks__backstage-sockshop__all-components.yaml": (IMPORTED, 0),
    # Component: dependsOn a resource, providesApis
    "weaveworks__backstage-sockshop__components__orders-service.yaml": (IMPORTED, 1),
}

# Importing the public corpus as one folder: the errors each file gives. One per refused entity
# (and the one duplicate), one per file in another product's format.
PUBLIC_ERRORS = {
    "8x8__knox__cortex.yaml": 1,
    "EffortlessMetrics__Rust-Template__backstage__catalog-info.yaml": 2,
    "FigureTechnologies__event-stream__service.datadog.yaml": 1,
    "Geotab__mygeotab-api-adapter__catalog-info.yml": 1,
    "JupiterOne__graph-azure__cortex.yaml": 1,
    "LLNL__radiuss-shared-ci__catalog-info.yml": 1,
    "Mhodtood__axum-service-template__.backstage__catalog-info.yaml": 1,
    "OctopusDeploy__mssql-docker__.backstage__catalog-info.yaml": 1,
    "OpsLevel__cli__opslevel.yml": 1,
    "Port-samples__DemoSrv__port.yml": 1,
    "auth0__java-jwt__opslevel.yml": 1,
    "backstage__backstage__packages__catalog-model__examples__components__invalid-component.yaml": 2,
    "fanduel__mass-driver__service.datadog.yaml": 1,
    "giantswarm__backstage-catalogs__catalogs__groups.yaml": 1,
    "holos-run__portal__org.yaml": 3,
}
PUBLIC_ENTITIES = sum(drafts for _outcome, drafts in PUBLIC.values()) - 1  # less the duplicate Group

# file under tests/fixtures/descriptors -> (outcome, number of drafts)
OWN: dict[str, tuple[FileOutcome, int]] = {
    "backstage/catalog-info.yaml": (IMPORTED, 1),  # Component + Location (local and remote targets)
    "backstage/payments/catalog-info.yaml": (IMPORTED, 5),  # Domain, System, Component, API ($text), Resource
    "backstage/payments/openapi.yaml": (NOT_DESCRIPTOR, 0),  # the API's $text target
    "backstage/org/org.yaml": (IMPORTED, 4),  # 2 Groups, 2 Users; found by its apiVersion
    "backstage/invalid-name/catalog-info.yaml": (INVALID, 0),  # name with a space
    "backstage/missing-lifecycle/catalog-info.yaml": (INVALID, 0),  # Component without spec.lifecycle
    "backstage/duplicate-group/groups.yaml": (IMPORTED, 3),  # acme/team-a twice: refused at import
    "backstage/email-users/org.yaml": (PARTIAL, 1),  # Group read, 2 Users named by e-mail refused
    "backstage/json/catalog-info.json": (IMPORTED, 1),  # JSON with a trailing comma
    "backstage/scaffolder/skeleton/catalog-info.yaml": (INVALID, 0),  # unrendered {%- if %}
    "backstage/scaffolder/template.yaml": (SKIPPED, 0),  # kind Template
    "foreign/gitlab-ci/catalog-info.yml": (FOREIGN, 0),  # GitLab CI/CD catalog metadata
    "foreign/opslevel/opslevel.yml": (FOREIGN, 0),
    "foreign/cortex/cortex.yaml": (FOREIGN, 0),
    "foreign/datadog/service.datadog.yaml": (FOREIGN, 0),
    "foreign/port/port.yml": (FOREIGN, 0),
    "foreign/compass/compass.yml": (FOREIGN, 0),
    "k8s/deployment.yaml": (NOT_DESCRIPTOR, 0),  # a Kubernetes Deployment
    "quarterdeck/quarterdeck.yaml": (IMPORTED, 4),  # Team, Person, System, Service
    "quarterdeck/search/search.quarterdeck.yaml": (IMPORTED, 1),  # the *.quarterdeck.yaml name
    "quarterdeck/unknown-key/quarterdeck.yaml": (INVALID, 0),  # 'descripton'
    "quarterdeck/tier7/quarterdeck.yaml": (INVALID, 0),  # tier: 7
}

# file -> (line, part of the message) of every problem it has
OWN_PROBLEMS: dict[str, list[tuple[int, str]]] = {
    "backstage/payments/openapi.yaml": [(1, "not a descriptor")],
    "backstage/invalid-name/catalog-info.yaml": [(5, "metadata.name 'Billing Service' is not valid")],
    "backstage/missing-lifecycle/catalog-info.yaml": [(6, "spec.lifecycle is required")],
    "backstage/email-users/org.yaml": [
        (13, "metadata.name 'lin@example.com' is not valid"),
        (22, "metadata.name 'sam@example.com' is not valid"),
    ],
    "backstage/scaffolder/skeleton/catalog-info.yaml": [(5, "YAML syntax error")],
    "foreign/gitlab-ci/catalog-info.yml": [(2, "GitLab CI/CD catalog metadata file")],
    "foreign/opslevel/opslevel.yml": [(2, "OpsLevel (opslevel.yml) file")],
    "foreign/cortex/cortex.yaml": [(1, "Cortex (cortex.yaml) file")],
    "foreign/datadog/service.datadog.yaml": [(1, "Datadog Service Catalog")],
    "foreign/port/port.yml": [(1, "Port (port.yml) file")],
    "foreign/compass/compass.yml": [(1, "Atlassian Compass (compass.yml) file")],
    "k8s/deployment.yaml": [(2, "not a descriptor")],
    "quarterdeck/unknown-key/quarterdeck.yaml": [(5, "unknown field 'descripton'")],
    "quarterdeck/tier7/quarterdeck.yaml": [(5, "tier: Input should be less than or equal to 4")],
}

# Importing tests/fixtures/descriptors as one folder: the errors each file gives.
OWN_ERRORS = {
    "backstage/invalid-name/catalog-info.yaml": 1,
    "backstage/missing-lifecycle/catalog-info.yaml": 1,
    "backstage/duplicate-group/groups.yaml": 1,
    "backstage/email-users/org.yaml": 2,
    "backstage/scaffolder/skeleton/catalog-info.yaml": 1,
    "foreign/gitlab-ci/catalog-info.yml": 1,
    "foreign/opslevel/opslevel.yml": 1,
    "foreign/cortex/cortex.yaml": 1,
    "foreign/datadog/service.datadog.yaml": 1,
    "foreign/port/port.yml": 1,
    "foreign/compass/compass.yml": 1,
    "quarterdeck/unknown-key/quarterdeck.yaml": 1,
    "quarterdeck/tier7/quarterdeck.yaml": 1,
}
OWN_ENTITIES = sum(drafts for _outcome, drafts in OWN.values()) - 1  # less the duplicate Group
OWN_IGNORED = 2  # openapi.yaml and the k8s Deployment: neither named nor marked as descriptors


# A user's clone has no ../shared: the public corpus lives in the planning repository.
needs_public_corpus = pytest.mark.skipif(
    not SHARED_CORPUS.is_dir(), reason=f"the public corpus is not here ({SHARED_CORPUS})"
)


def _files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _read(root: Path, name: str) -> FileResult:
    """Read one file as the importer does, with $text targets resolved beside it."""
    path = root / name

    def read_text(target: str) -> str | None:
        found = (path.parent / target).resolve()
        return found.read_text(encoding="utf-8") if found.is_relative_to(root) and found.is_file() else None

    return read_descriptor_file(name, path.read_text(encoding="utf-8"), read_text)


def _import(
    sessions: sessionmaker[Session], settings: Settings, clock: FrozenClock, root: Path
) -> ImportReport:
    return import_source(sessions, str(root), settings=settings, clock=clock)


# ---------------------------------------------------------------- the public corpus


@needs_public_corpus
def test_public_table_names_every_file() -> None:
    assert _files_under(SHARED_CORPUS) - {"SOURCES.tsv"} == set(PUBLIC)


@needs_public_corpus
@pytest.mark.parametrize(("name", "expected"), sorted(PUBLIC.items()), ids=sorted(PUBLIC))
def test_public_file_outcome(name: str, expected: tuple[FileOutcome, int]) -> None:
    result = _read(SHARED_CORPUS, name)

    assert (result.outcome, len(result.drafts)) == expected, [p.message for p in result.problems]
    for problem in result.problems:
        assert problem.file == name
        assert isinstance(problem.line, int) and problem.line >= 1, problem
        assert problem.message


@needs_public_corpus
@pytest.mark.parametrize(
    ("name", "identity"),
    [
        # capital letter in the name: the slug is lower-case
        ("Tradeshift__elements__catalog-info.yml", ("service", "component:elements")),
        # underscore kept
        ("Invoca__process_settings__catalog-info.yml", ("service", "component:process_settings")),
        # JSON read through its YAML-compatible syntax
        ("Zaperex-Test-Org__test-repo-3__catalog-info.json", ("service", "component:test-repo-3")),
        # outside the default namespace: namespace/name
        ("1-Platform__one-platform__catalog__systems__OnePlatform.yml", ("system", "devex/one-platform")),
        # a capitalised User name
        ("RoadieHQ__sample-service__org.yaml", ("person", "xantier")),
        # the second "guest" lives in another namespace, so both are kept
        (
            "backstage__backstage__packages__catalog-model__examples__acme__team-a-group.yaml",
            ("person", "development/guest"),
        ),
    ],
)
def test_public_file_identities(name: str, identity: tuple[str, str]) -> None:
    assert identity in [draft.identity for draft in _read(SHARED_CORPUS, name).drafts]


@needs_public_corpus
def test_public_corpus_imports_as_one_folder(
    sessions: sessionmaker[Session], settings: Settings, clock: FrozenClock
) -> None:
    report = _import(sessions, settings, clock, SHARED_CORPUS)

    assert (report.files, report.entities, report.created) == (len(PUBLIC), PUBLIC_ENTITIES, PUBLIC_ENTITIES)
    assert Counter(error.file for error in report.errors) == Counter(PUBLIC_ERRORS)
    for error in report.errors:
        assert isinstance(error.line, int) and error.line >= 1, error
        assert error.message
    assert report.outcomes == {name: outcome.value for name, (outcome, _drafts) in PUBLIC.items()}

    again = _import(sessions, settings, clock, SHARED_CORPUS)
    assert (again.created, again.updated, again.unchanged, again.removed) == (0, 0, PUBLIC_ENTITIES, 0)


# ---------------------------------------------------------------- the project's own fixtures


def test_own_table_names_every_file() -> None:
    assert _files_under(OWN_CORPUS) == set(OWN)
    assert set(OWN_PROBLEMS) <= set(OWN) and set(OWN_ERRORS) <= set(OWN)


@pytest.mark.parametrize(("name", "expected"), sorted(OWN.items()), ids=sorted(OWN))
def test_own_file_outcome(name: str, expected: tuple[FileOutcome, int]) -> None:
    result = _read(OWN_CORPUS, name)

    assert (result.outcome, len(result.drafts)) == expected, [p.message for p in result.problems]
    located = [(problem.line, problem.message) for problem in result.problems]
    wanted = OWN_PROBLEMS.get(name, [])
    assert len(located) == len(wanted), located
    for (line, message), (want_line, fragment) in zip(located, wanted, strict=True):
        assert line == want_line and fragment in message, (line, message)
    assert all(problem.file == name for problem in result.problems)


def test_own_text_reference_is_read_from_beside_the_descriptor() -> None:
    result = _read(OWN_CORPUS, "backstage/payments/catalog-info.yaml")
    [api] = [d.entity for d in result.drafts if d.identity == ("service", "api:payments-rest")]

    assert isinstance(api, ServiceDraft)
    assert api.definition == (OWN_CORPUS / "backstage/payments/openapi.yaml").read_text(encoding="utf-8")
    assert result.notices == []


def test_own_text_reference_without_a_reader_is_kept_with_a_notice() -> None:
    name = "backstage/payments/catalog-info.yaml"
    result = read_descriptor_file(name, (OWN_CORPUS / name).read_text(encoding="utf-8"))
    [api] = [d.entity for d in result.drafts if d.identity == ("service", "api:payments-rest")]

    assert isinstance(api, ServiceDraft) and api.definition == "$text: ./openapi.yaml"
    assert [(n.line, "could not be read" in n.message) for n in result.notices] == [(54, True)]


def test_own_unrendered_template_names_the_cause() -> None:
    [problem] = _read(OWN_CORPUS, "backstage/scaffolder/skeleton/catalog-info.yaml").problems

    assert "render it first" in problem.message


def test_own_not_descriptor_message_names_the_api_version_found() -> None:
    """A Kubernetes manifest has an apiVersion; the message must not claim it has none."""
    [problem] = _read(OWN_CORPUS, "k8s/deployment.yaml").problems

    assert "no apiVersion" not in problem.message
    assert "apps/v1" in problem.message


def test_own_fixtures_import_as_one_folder(
    sessions: sessionmaker[Session], settings: Settings, clock: FrozenClock
) -> None:
    report = _import(sessions, settings, clock, OWN_CORPUS)

    # every file but the two ignored ones is read; org.yaml once, though the Location names it too
    assert report.files == len(OWN) - OWN_IGNORED
    assert report.ignored_files == OWN_IGNORED
    assert (report.entities, report.created, report.removed) == (OWN_ENTITIES, OWN_ENTITIES, 0)
    assert Counter(error.file for error in report.errors) == Counter(OWN_ERRORS)
    for error in report.errors:
        assert isinstance(error.line, int) and error.line >= 1, error
    [duplicate] = [e for e in report.errors if e.file == "backstage/duplicate-group/groups.yaml"]
    assert (duplicate.line, duplicate.message) == (
        20,
        "duplicate team acme/team-a: already defined at backstage/duplicate-group/groups.yaml:2",
    )
    assert [n.message for n in report.notices if n.file == "backstage/catalog-info.yaml"] == [
        "Location target 'https://github.com/example/catalog/blob/main/all.yaml' is remote; not followed"
    ]

    with sessions() as session:
        api = service.service_view(session, "payments-api")
        assert (api.tier, api.owner, api.system, api.tags) == (
            1,
            "payments-team",
            "payments",
            ["pci", "python"],
        )
        assert [(c.role, c.person.slug if c.person else None) for c in api.contacts] == [("tech-lead", "ada")]
        assert [(e.kind, e.slug, e.exists) for e in api.depends_on] == [
            ("resource", "payments-db", True),
            ("api", "payments-rest", True),
        ]
        assert [(e.slug, e.exists) for e in api.dependents] == [("checkout-web", True)]
        assert api.source.file == "backstage/payments/catalog-info.yaml" and api.source.line == 21
        definition = service.service_view(session, "payments-rest", "api").definition
        assert definition is not None and definition.startswith("openapi: 3.0.3")
        team = service.team_view(session, "payments-team")
        assert [m.person.slug for m in team.members if m.person] == ["ada", "grace"]
        assert (team.chat_channel, team.parent.exists if team.parent else None) == ("#payments", True)
        assert service.person_view(session, "grace").email == "grace@example.com"
        assert service.whois(session, "checkout-web").owner is not None
        assert service.system_view(session, "payments").domain is not None

    again = _import(sessions, settings, clock, OWN_CORPUS)
    assert (again.created, again.updated, again.unchanged, again.removed) == (0, 0, OWN_ENTITIES, 0)
    assert len(again.errors) == len(report.errors)
