"""Importing a source again and again: the sync rules of quarterdeck/catalog/sync.py, on both dialects.

Each test builds its source in tmp_path (a folder, or a git repository made with the git binary),
imports it with import_source, edits it, and imports it again.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.catalog import schemas, service
from quarterdeck.catalog.descriptors import read_descriptor_file
from quarterdeck.catalog.importer import ImportReport, import_source
from quarterdeck.catalog.sync import apply_import
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from quarterdeck.errors import NotFound
from tests.conftest import TEST_ACTOR
from tests.helpers import git

TEAM = """\
apiVersion: quarterdeck/v1
kind: Team
slug: payments-team
name: Payments
chat: "#payments"
"""

STOREFRONT = """\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: storefront
  annotations:
    quarterdeck.dev/tier: "2"
spec:
  type: website
  lifecycle: production
  owner: payments-team
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: ada
spec:
  profile:
    email: ada@example.com
  memberOf: [payments-team]
"""


def service_doc(slug: str, *, tier: int = 2, title: str | None = None) -> str:
    """One quarterdeck.yaml Service document, owned by payments-team."""
    return (
        f"apiVersion: quarterdeck/v1\nkind: Service\nslug: {slug}\ntitle: {title or slug.title()}\n"
        f"owner: payments-team\ntier: {tier}\n"
    )


def quarterdeck_yaml(*docs: str) -> str:
    return "---\n".join(docs)


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, fragment: str) -> int:
    """The 1-based line of the first line holding `fragment`."""
    return next(number for number, line in enumerate(text.splitlines(), 1) if fragment in line)


def document_line(path: Path, slug: str) -> int:
    """Where the service_doc() of `slug` starts in `path`: its apiVersion, two lines above its slug."""
    return line_of(path.read_text(encoding="utf-8"), f"slug: {slug}") - 2


def counts(report: ImportReport) -> tuple[int, int, int, int]:
    return (report.created, report.updated, report.unchanged, report.removed)


def make_source(root: Path) -> Path:
    """Five entities in two files: a team and two services in quarterdeck.yaml; a component and a
    user in web/catalog-info.yaml."""
    write(
        root,
        "quarterdeck.yaml",
        quarterdeck_yaml(TEAM, service_doc("payments-api", tier=1), service_doc("ledger")),
    )
    write(root, "web/catalog-info.yaml", STOREFRONT)
    return root


@dataclass
class Catalog:
    """The catalog under test: import into it, read from it."""

    sessions: sessionmaker[Session]
    settings: Settings
    clock: FrozenClock

    def load(self, target: Path | str) -> ImportReport:
        return import_source(self.sessions, str(target), settings=self.settings, clock=self.clock)

    def service(self, slug: str, kind: str | None = None) -> schemas.ServiceOut:
        with self.sessions() as session:
            return service.service_view(session, slug, kind)

    def has_service(self, slug: str, kind: str | None = None) -> bool:
        try:
            self.service(slug, kind)
        except NotFound:
            return False
        return True

    def has_person(self, key: str) -> bool:
        with self.sessions() as session:
            try:
                service.person_view(session, key)
            except NotFound:
                return False
        return True


@pytest.fixture
def catalog(sessions: sessionmaker[Session], settings: Settings, clock: FrozenClock) -> Catalog:
    return Catalog(sessions, settings, clock)


# ---------------------------------------------------------------- idempotence, updates, removals


def test_reimport_changes_nothing(catalog: Catalog, tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")

    first = catalog.load(source)
    second = catalog.load(source)

    assert (first.files, first.entities, counts(first), first.errors) == (2, 5, (5, 0, 0, 0), [])
    assert (second.entities, counts(second), second.errors) == (5, (0, 0, 5, 0), [])
    assert second.source == first.source == f"dir:{source.resolve()}"
    assert catalog.service("ledger").version == 1


def test_changed_descriptor_updates_that_entity_only(catalog: Catalog, tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    catalog.load(source)

    write(
        source,
        "quarterdeck.yaml",
        quarterdeck_yaml(TEAM, service_doc("payments-api", tier=1), service_doc("ledger", tier=3)),
    )
    report = catalog.load(source)

    assert counts(report) == (0, 1, 4, 0)
    ledger = catalog.service("ledger")
    assert (ledger.tier, ledger.version, ledger.import_errors) == (3, 2, [])
    assert catalog.service("payments-api").version == 1


def test_deleted_descriptors_remove_their_entities(catalog: Catalog, tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    catalog.load(source)

    (source / "web" / "catalog-info.yaml").unlink()
    report = catalog.load(source)

    assert (report.files, counts(report)) == (1, (0, 0, 3, 2))
    assert not catalog.has_service("storefront")
    assert not catalog.has_person("ada")

    # a document dropped from a file that stays: only its entity goes
    write(source, "quarterdeck.yaml", quarterdeck_yaml(TEAM, service_doc("payments-api", tier=1)))
    report = catalog.load(source)

    assert counts(report) == (0, 0, 2, 1)
    assert not catalog.has_service("ledger")
    assert catalog.has_service("payments-api")


# ---------------------------------------------------------------- portal edits win


def test_portal_edit_survives_reimport_and_descriptor_removal(
    catalog: Catalog, client: TestClient, tmp_path: Path
) -> None:
    source = make_source(tmp_path / "src")
    key = catalog.load(source).source

    edited = client.patch("/api/v1/services/ledger", json={"description": "Edited in the portal"})
    assert edited.status_code == 200, edited.text

    report = catalog.load(source)
    assert (report.entities, counts(report), report.errors) == (5, (0, 0, 4, 0), [])
    [notice] = report.notices
    assert (notice.file, notice.line) == (
        "quarterdeck.yaml",
        document_line(source / "quarterdeck.yaml", "ledger"),
    )
    assert "edited in the portal" in notice.message
    ledger = catalog.service("ledger")
    assert (ledger.description, ledger.source.source, ledger.source.detached_from) == (
        "Edited in the portal",
        "ui",
        key,
    )

    # a later change of the descriptor is not applied either
    write(
        source,
        "quarterdeck.yaml",
        quarterdeck_yaml(TEAM, service_doc("payments-api", tier=1), service_doc("ledger", tier=4)),
    )
    report = catalog.load(source)
    assert counts(report) == (0, 0, 4, 0) and len(report.notices) == 1
    assert catalog.service("ledger").tier == 2

    # nor is the descriptor's disappearance: the portal's entity stays
    write(source, "quarterdeck.yaml", quarterdeck_yaml(TEAM, service_doc("payments-api", tier=1)))
    report = catalog.load(source)
    assert counts(report) == (0, 0, 4, 0)
    assert catalog.service("ledger").description == "Edited in the portal"

    (source / "quarterdeck.yaml").unlink()
    report = catalog.load(source)
    assert counts(report) == (0, 0, 2, 2)
    assert catalog.has_service("ledger") and not catalog.has_service("payments-api")
    assert client.get("/api/v1/services/ledger").json()["source"]["detached_from"] == key


@pytest.mark.parametrize(
    "references",
    [
        "owner: group:acme/payments-team",  # a team in another namespace (cds-snc in the corpus)
        "owner: user:ada",  # a person (hasura, 1-Platform in the corpus)
        "owner: payments-team\n  system: acme/shop",  # a system in another namespace
    ],
    ids=["namespaced-owner", "user-owner", "namespaced-system"],
)
def test_imported_backstage_service_can_be_edited_in_the_portal(
    catalog: Catalog, client: TestClient, tmp_path: Path, references: str
) -> None:
    """Backstage references the portal's own format cannot write must not block an unrelated edit."""
    source = tmp_path / "src"
    component = (
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: storefront\n"
        f"spec:\n  type: website\n  lifecycle: production\n  {references}\n"
    )
    write(source, "catalog-info.yaml", component)
    catalog.load(source)
    before = catalog.service("storefront")

    edited = client.patch("/api/v1/services/storefront", json={"description": "Edited in the portal"})

    assert edited.status_code == 200, edited.text
    after = catalog.service("storefront")
    assert (after.description, after.owner, after.system) == (
        "Edited in the portal",
        before.owner,
        before.system,
    )


# ---------------------------------------------------------------- a descriptor turns bad


@dataclass(frozen=True)
class Breakage:
    slug: str
    file: str
    broken: str
    marker: str  # text on the line the error is reported at
    message: str  # part of the message


BREAKAGES = [
    # a colon in an unquoted value: the whole file stops parsing
    Breakage(
        "ledger",
        "quarterdeck.yaml",
        quarterdeck_yaml(
            TEAM, service_doc("payments-api", tier=1), service_doc("ledger", title="Ledger: v2")
        ),
        "title: Ledger: v2",
        "YAML syntax error",
    ),
    # a field out of range: only that document is refused
    Breakage(
        "ledger",
        "quarterdeck.yaml",
        quarterdeck_yaml(TEAM, service_doc("payments-api", tier=1), service_doc("ledger", tier=9)),
        "tier: 9",
        "tier: Input should be less than or equal to 4",
    ),
    # the same in a Backstage descriptor, through Quarterdeck's tier annotation
    Breakage(
        "storefront",
        "web/catalog-info.yaml",
        STOREFRONT.replace('quarterdeck.dev/tier: "2"', 'quarterdeck.dev/tier: "9"'),
        "annotations:",
        "annotation quarterdeck.dev/tier must be 1, 2, 3 or 4",
    ),
]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=["yaml-syntax", "tier-9", "backstage-tier-9"])
def test_bad_descriptor_keeps_last_good_version_until_fixed(
    catalog: Catalog, client: TestClient, tmp_path: Path, breakage: Breakage
) -> None:
    source = make_source(tmp_path / "src")
    catalog.load(source)
    good = (source / breakage.file).read_text(encoding="utf-8")
    line = line_of(breakage.broken, breakage.marker)

    write(source, breakage.file, breakage.broken)
    report = catalog.load(source)

    assert report.removed == 0
    [error] = report.errors
    assert (error.file, error.line) == (breakage.file, line)
    assert breakage.message in error.message
    # the last good version is kept, and says why it is stale
    body = client.get(f"/api/v1/services/{breakage.slug}").json()
    assert body["tier"] == 2 and body["version"] == 1
    [attached] = body["import_errors"]
    assert (attached["file"], attached["line"]) == (breakage.file, line)
    assert breakage.message in attached["message"]
    page = client.get(f"/services/{breakage.slug}")
    assert page.status_code == 200
    assert 'id="import-errors"' in page.text and breakage.message in page.text

    # importing the same bad file again changes nothing and keeps the error
    again = catalog.load(source)
    assert again.removed == 0 and len(again.errors) == 1
    assert catalog.service(breakage.slug).import_errors != []

    write(source, breakage.file, good)
    fixed = catalog.load(source)

    assert fixed.errors == [] and fixed.removed == 0 and fixed.created == 0
    assert client.get(f"/api/v1/services/{breakage.slug}").json()["import_errors"] == []
    assert 'id="import-errors"' not in client.get(f"/services/{breakage.slug}").text


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        # the apiVersion line deleted by mistake
        (service_doc("ledger").replace("apiVersion: quarterdeck/v1\n", ""), "not a descriptor"),
        # a typo in the kind
        (service_doc("ledger").replace("kind: Service", "kind: Servce"), "kind 'Servce' is not one of"),
        # everything commented out while being rewritten
        ("# being rewritten\n", "the file holds no YAML documents"),
    ],
    ids=["no-api-version", "kind-typo", "emptied"],
)
def test_file_reported_as_bad_does_not_remove_its_entity(
    catalog: Catalog, tmp_path: Path, broken: str, message: str
) -> None:
    """The import reports the file as an error, so the entity keeps its last good version (and the
    error); it is not removed as if its descriptor had been deleted."""
    source = tmp_path / "src"
    write(source, "quarterdeck.yaml", service_doc("ledger"))
    catalog.load(source)

    write(source, "quarterdeck.yaml", broken)
    report = catalog.load(source)

    [error] = report.errors
    assert error.file == "quarterdeck.yaml" and message in error.message
    assert report.removed == 0
    assert catalog.has_service("ledger")
    [attached] = catalog.service("ledger").import_errors
    assert attached.file == "quarterdeck.yaml" and message in attached.message


def test_bad_files_never_stop_the_good_ones(catalog: Catalog, tmp_path: Path) -> None:
    source = tmp_path / "src"
    write(source, "good/quarterdeck.yaml", quarterdeck_yaml(TEAM, service_doc("ledger")))
    write(source, "good/catalog-info.yaml", STOREFRONT)
    write(source, "a-syntax/catalog-info.yaml", "apiVersion: backstage.io/v1alpha1\nkind: [Component\n")
    write(source, "b-refused/quarterdeck.yaml", service_doc("fx-rates", tier=0))
    write(source, "c-foreign/opslevel.yml", "version: 1\nservice:\n  name: FX\n")
    (source / "d-binary").mkdir()
    (source / "d-binary" / "catalog-info.yaml").write_bytes(
        b"apiVersion: backstage.io/v1alpha1\nname: \xff\xfe\n"
    )

    report = catalog.load(source)

    assert (report.files, report.entities, report.created) == (6, 4, 4)
    assert sorted(error.file for error in report.errors) == [
        "a-syntax/catalog-info.yaml",
        "b-refused/quarterdeck.yaml",
        "c-foreign/opslevel.yml",
        "d-binary/catalog-info.yaml",
    ]
    assert report.outcomes == {
        "a-syntax/catalog-info.yaml": "invalid",
        "b-refused/quarterdeck.yaml": "invalid",
        "c-foreign/opslevel.yml": "foreign",
        "d-binary/catalog-info.yaml": "invalid",
        "good/catalog-info.yaml": "imported",
        "good/quarterdeck.yaml": "imported",
    }
    assert catalog.has_service("ledger") and catalog.has_service("storefront")
    assert not catalog.has_service("fx-rates")


def test_kubernetes_manifest_labelled_for_backstage_is_ignored(catalog: Catalog, tmp_path: Path) -> None:
    """Backstage's Kubernetes plugin asks for a backstage.io/kubernetes-id label on workloads, so
    manifests mention backstage.io/ without being descriptors: they are passed by, not errors."""
    source = tmp_path / "src"
    write(source, "quarterdeck.yaml", quarterdeck_yaml(TEAM, service_doc("ledger")))
    write(
        source,
        "deploy/deployment.yaml",
        textwrap.dedent("""\
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: ledger
              labels:
                backstage.io/kubernetes-id: ledger
            spec:
              replicas: 2
            """),
    )

    report = catalog.load(source)

    assert (report.created, report.ignored_files) == (2, 1)
    assert report.errors == []


# ---------------------------------------------------------------- two sources, one slug


def test_second_source_defining_the_same_slug_gets_a_conflict(catalog: Catalog, tmp_path: Path) -> None:
    first = tmp_path / "first"
    write(first, "quarterdeck.yaml", quarterdeck_yaml(TEAM, service_doc("ledger", title="Ledger from first")))
    second = tmp_path / "second"
    text = quarterdeck_yaml(
        service_doc("ledger", title="Ledger from second", tier=4), service_doc("fx-rates")
    )
    write(second, "quarterdeck.yaml", text)
    first_key = catalog.load(first).source

    report = catalog.load(second)

    [error] = report.errors
    assert (error.file, error.line) == ("quarterdeck.yaml", 1)
    assert error.message == f"service ledger is already defined by {first_key}; not imported from here"
    assert (report.entities, counts(report)) == (1, (1, 0, 0, 0))
    ledger = catalog.service("ledger")
    assert (ledger.title, ledger.tier, ledger.version, ledger.source.source) == (
        "Ledger from first",
        2,
        1,
        first_key,
    )
    assert catalog.has_service("fx-rates")

    # neither source disturbs the other on re-import
    assert counts(catalog.load(first)) == (0, 0, 2, 0)
    again = catalog.load(second)
    assert counts(again) == (0, 0, 1, 0) and len(again.errors) == 1


def test_entity_made_in_the_portal_is_not_taken_over_by_an_import(
    catalog: Catalog, session: Session, tmp_path: Path
) -> None:
    with session.begin():
        service.create(
            session,
            TEST_ACTOR,
            "service",
            {"slug": "ledger", "owner": "payments-team"},
            now=catalog.clock.now(),
        )
    source = tmp_path / "src"
    write(source, "quarterdeck.yaml", service_doc("ledger", tier=1))

    report = catalog.load(source)

    [error] = report.errors
    assert "already defined by the portal (made in the UI)" in error.message
    assert (catalog.service("ledger").tier, catalog.service("ledger").source.source) == (None, "ui")


def test_duplicate_within_one_source_is_refused_and_the_first_kept(
    session: Session, clock: FrozenClock
) -> None:
    results = [
        read_descriptor_file(
            "a/quarterdeck.yaml", quarterdeck_yaml(TEAM, service_doc("ledger", title="First"))
        ),
        read_descriptor_file("b/quarterdeck.yaml", service_doc("ledger", title="Second")),
    ]

    report = apply_import(
        session,
        key="dir:/example",
        kind="dir",
        location="/example",
        revision=None,
        results=results,
        now=clock.now(),
    )

    [error] = report.errors
    assert (error.file, error.line) == ("b/quarterdeck.yaml", 1)
    assert "already defined at a/quarterdeck.yaml:7" in error.message
    assert (report.entities, report.created) == (2, 2)
    assert service.service_view(session, "ledger").title == "First"


# ---------------------------------------------------------------- git sources


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    folder = make_source(tmp_path / "repo")
    git(folder, "init", "--quiet", "--initial-branch=main")
    git(folder, "add", "--all")
    git(folder, "commit", "--quiet", "-m", "Describe payments")
    yield folder


def test_git_repository_reimported_after_a_new_commit(catalog: Catalog, repo: Path) -> None:
    url = repo.as_uri()
    first_sha = git(repo, "rev-parse", "HEAD")

    first = catalog.load(url)

    assert (first.source, first.revision, counts(first)) == (f"git:{url}", first_sha, (5, 0, 0, 0))
    assert catalog.service("ledger").source.file == "quarterdeck.yaml"

    write(
        repo,
        "quarterdeck.yaml",
        quarterdeck_yaml(TEAM, service_doc("payments-api", tier=1), service_doc("ledger", tier=3)),
    )
    git(repo, "rm", "--quiet", "web/catalog-info.yaml")
    git(repo, "commit", "--quiet", "--all", "-m", "Ledger is tier 3; storefront moves out")
    second_sha = git(repo, "rev-parse", "HEAD")

    second = catalog.load(url)

    assert second_sha != first_sha
    assert (second.revision, counts(second), second.errors) == (second_sha, (0, 1, 2, 2), [])
    assert catalog.service("ledger").tier == 3
    assert not catalog.has_service("storefront")
    assert counts(catalog.load(url)) == (0, 0, 3, 0)


# ---------------------------------------------------------------- Location entities


def test_location_targets_are_read_whatever_their_names(catalog: Catalog, tmp_path: Path) -> None:
    source = tmp_path / "src"
    location = """\
        apiVersion: backstage.io/v1alpha1
        kind: Location
        metadata:
          name: everything
        spec:
          targets:
            - ./dist/generated-entities.yaml
            - ./services/*.yml
            - ./missing.yaml
            - ../outside.yaml
            - https://example.com/catalog.yaml
        """
    write(source, "catalog-info.yaml", textwrap.dedent(location))
    component = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {}\n" + (
        "spec:\n  type: service\n  lifecycle: production\n  owner: payments-team\n"
    )
    # dist/ is skipped when the tree is walked: only the Location leads there
    write(source, "dist/generated-entities.yaml", component.format("generated-api"))
    write(source, "services/billing.yml", component.format("billing"))
    write(source, "services/fx.yml", component.format("fx"))
    write(tmp_path, "outside.yaml", component.format("outsider"))

    report = catalog.load(source)

    assert report.errors == []
    assert (report.entities, report.created) == (3, 3)
    assert set(report.outcomes) == {
        "catalog-info.yaml",
        "dist/generated-entities.yaml",
        "services/billing.yml",
        "services/fx.yml",
    }
    assert catalog.has_service("generated-api") and not catalog.has_service("outsider")
    # (the owners and systems these components name are not in the catalog: notices of their own)
    assert sorted(notice.message for notice in report.notices if "Location target" in notice.message) == [
        "Location target '../outside.yaml' is outside the source",
        "Location target './missing.yaml' does not exist",
        "Location target 'https://example.com/catalog.yaml' is remote; not followed",
    ]
    assert catalog.service("generated-api").source.file == "dist/generated-entities.yaml"


def test_missing_path_is_not_found(catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(NotFound) as raised:
        catalog.load(tmp_path / "no-such-folder")

    assert raised.value.code == "import.path_not_found"
    assert "no-such-folder" in raised.value.message
