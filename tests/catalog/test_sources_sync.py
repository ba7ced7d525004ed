"""Git sources that stay in sync, on both databases: a real repository made with the git binary
(file:// URL), imported, changed by commits, and synced by the catalog's job run by a real Worker.

What a sync reads is watched through the one function every descriptor file is read by
(sources._read_file), besides the count the source records."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Route, expect, sync_playwright
from sqlalchemy import select
from sqlalchemy.orm import Session

from quarterdeck.access.schemas import GlobalRole
from quarterdeck.catalog import incremental, source_sync, sources
from quarterdeck.catalog import jobs as catalog_jobs
from quarterdeck.catalog.descriptors import FileResult
from quarterdeck.catalog.importer import ImportReport, import_source
from quarterdeck.catalog.models import CatalogSource
from quarterdeck.catalog.source_sync import SYNC_JOB
from quarterdeck.clock import FrozenClock
from quarterdeck.integrations import git
from quarterdeck.jobs import JobContext, JobOut, JobRegistry, JobState, Worker, get_job, list_jobs
from quarterdeck.runtime import Runtime
from tests.conftest import ADMIN_EMAIL, NOW, make_token, make_user, session_client
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.helpers import git as run_git
from tests.helpers import wait_until
from tests.jobs.helpers import worker_process

TEAM = "apiVersion: quarterdeck/v1\nkind: Team\nslug: payments-team\nname: Payments\n"
STOREFRONT = """\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: storefront
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
INTERVAL = timedelta(seconds=300)


def service_doc(slug: str, *, tier: int = 2) -> str:
    return (
        f"apiVersion: quarterdeck/v1\nkind: Service\nslug: {slug}\ntitle: {slug}\n"
        f"owner: payments-team\ntier: {tier}\n"
    )


def services_file(*docs: str) -> str:
    return "---\n".join([TEAM, *docs])


LEDGER_TIER_3 = services_file(service_doc("payments-api", tier=1), service_doc("ledger", tier=3))


@dataclass
class Repo:
    """A git repository in tmp_path, changed by commits."""

    path: Path

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def git(self, *args: str) -> str:
        return run_git(self.path, *args)

    def write(self, name: str, text: str) -> None:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")

    def commit(self, message: str) -> str:
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """Two descriptor files and a README: payments-team, payments-api and ledger in quarterdeck.yaml;
    the storefront component and the user ada in web/catalog-info.yaml."""
    made = Repo(tmp_path / "repo")
    made.path.mkdir()
    made.git("init", "--quiet", "--initial-branch=main")
    made.write("quarterdeck.yaml", services_file(service_doc("payments-api", tier=1), service_doc("ledger")))
    made.write("web/catalog-info.yaml", STOREFRONT)
    made.write("README.md", "The payments catalog.\n")
    made.commit("Describe payments")
    return made


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The descriptor files read from now on (relative paths), in order."""
    seen: list[str] = []
    original = sources._read_file

    def spy(tree: sources.SourceTree, path: Path) -> FileResult:
        result = original(tree, path)
        seen.append(result.file)
        return result

    monkeypatch.setattr(sources, "_read_file", spy)
    return seen


def load(runtime: Runtime, target: str) -> ImportReport:
    return import_source(runtime.sessions, target, settings=runtime.settings, clock=runtime.clock)


def run_due(runtime: Runtime, clock: FrozenClock) -> int:
    """Run the catalog's jobs that are due at the clock's time, as a worker does; how many ran."""
    registry = JobRegistry()
    catalog_jobs.register_jobs(registry)
    return Worker(runtime.sessions, runtime.writers, registry, clock=clock, worker_id="test").run_due()


def source_of(runtime: Runtime, url: str) -> CatalogSource:
    with runtime.sessions() as session:
        found = session.scalar(select(CatalogSource).where(CatalogSource.key == f"git:{url}"))
        assert found is not None
        return found


def sync_jobs(runtime: Runtime, state: JobState | None = None) -> list[JobOut]:
    with runtime.sessions() as session:
        return list_jobs(session, kind=SYNC_JOB, state=state)


def counts(report: ImportReport) -> tuple[int, int, int, int]:
    return (report.created, report.updated, report.unchanged, report.removed)


def tier_of(client: TestClient, slug: str) -> int | None:
    response = client.get(f"/api/v1/services/{slug}")
    assert response.status_code == 200, response.text
    tier: int | None = response.json()["tier"]
    return tier


# ---------------------------------------------------------------- the schedule and the fast path


def test_a_pushed_commit_shows_after_the_next_sync(
    runtime: Runtime, clock: FrozenClock, repo: Repo, client: TestClient, reads: list[str]
) -> None:
    first = load(runtime, repo.url)

    assert (counts(first), first.next_sync_at) == ((5, 0, 0, 0), NOW + INTERVAL)
    assert [(j.due_at, j.payload["slot"]) for j in sync_jobs(runtime)] == [
        (NOW + INTERVAL, (NOW + INTERVAL).isoformat())
    ]
    repo.write("quarterdeck.yaml", LEDGER_TIER_3)
    repo.commit("Ledger is tier 3")
    assert run_due(runtime, clock) == 0  # not due yet
    assert tier_of(client, "ledger") == 2
    reads.clear()

    clock.at = NOW + INTERVAL
    assert run_due(runtime, clock) == 1

    assert tier_of(client, "ledger") == 3
    assert reads == ["quarterdeck.yaml"]
    source = source_of(runtime, repo.url)
    assert (source.revision, source.last_sync_result, source.last_sync_error) == (
        repo.git("rev-parse", "HEAD"),
        "ok",
        None,
    )
    assert (source.last_sync_finished_at, source.last_sync_files_read) == (clock.at, 1)
    assert source.next_sync_at == clock.at + INTERVAL
    assert [j.due_at for j in sync_jobs(runtime, JobState.PENDING)] == [clock.at + INTERVAL]


def test_a_deleted_descriptor_takes_its_entities_away(
    runtime: Runtime, clock: FrozenClock, repo: Repo, client: TestClient, reads: list[str]
) -> None:
    load(runtime, repo.url)
    assert client.get("/api/v1/services/storefront").status_code == 200
    repo.git("rm", "--quiet", "web/catalog-info.yaml")
    repo.commit("Storefront moves out")
    reads.clear()

    clock.at = NOW + INTERVAL
    run_due(runtime, clock)

    assert client.get("/api/v1/services/storefront").status_code == 404
    assert client.get("/api/v1/people/ada").status_code == 404
    assert tier_of(client, "payments-api") == 1
    assert reads == []
    assert counts(load(runtime, repo.url)) == (0, 0, 3, 0)


def test_the_same_commit_reads_no_file(
    runtime: Runtime, clock: FrozenClock, repo: Repo, reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    load(runtime, repo.url)
    reads.clear()

    def no_listing(folder: Path) -> None:
        raise AssertionError(f"the files of {folder} were listed: the commit alone says nothing changed")

    monkeypatch.setattr(git, "list_files", no_listing)

    clock.at = NOW + INTERVAL
    assert run_due(runtime, clock) == 1

    assert reads == []
    source = source_of(runtime, repo.url)
    assert (source.last_sync_result, source.last_sync_files_read, source.last_sync_finished_at) == (
        "ok",
        0,
        clock.at,
    )
    monkeypatch.undo()
    assert counts(load(runtime, repo.url)) == (0, 0, 5, 0)  # what a full import finds: nothing to do


def test_a_new_commit_elsewhere_reads_only_the_changed_file(
    runtime: Runtime, clock: FrozenClock, repo: Repo, client: TestClient, reads: list[str]
) -> None:
    load(runtime, repo.url)
    repo.write("README.md", "The payments catalog, now with a README that changed.\n")
    repo.write(
        "web/catalog-info.yaml", STOREFRONT.replace("lifecycle: production", "lifecycle: experimental")
    )
    repo.commit("Storefront is experimental")
    reads.clear()

    clock.at = NOW + INTERVAL
    run_due(runtime, clock)

    assert reads == ["web/catalog-info.yaml"]
    assert client.get("/api/v1/services/storefront").json()["lifecycle"] == "experimental"
    assert tier_of(client, "payments-api") == 1
    full = load(runtime, repo.url)
    assert (counts(full), full.errors) == ((0, 0, 5, 0), [])


def test_the_next_sync_is_scheduled_once_even_when_the_job_runs_again(
    runtime: Runtime, clock: FrozenClock, repo: Repo
) -> None:
    load(runtime, repo.url)
    (job,) = sync_jobs(runtime)
    clock.at = job.due_at

    # An attempt that dies before its completion is written: all it wrote rolls back.
    with runtime.writers() as session:
        catalog_jobs.sync_source(context_of(job, session, clock))
        session.rollback()
    assert [j.id for j in sync_jobs(runtime)] == [job.id]
    assert run_due(runtime, clock) == 1
    # The same job delivered once more (its completion committed, and still it runs again).
    with runtime.writers() as session, session.begin():
        catalog_jobs.sync_source(context_of(job, session, clock))

    # And scheduled again at the same time, the key finds the job already there.
    with runtime.writers() as session, session.begin():
        source_sync.schedule_next(session, session.get_one(CatalogSource, job.payload["source_id"]), clock.at)

    pending = sync_jobs(runtime, JobState.PENDING)
    assert [(j.due_at, j.idempotency_key) for j in pending] == [
        (clock.at + INTERVAL, f"{SYNC_JOB}:{job.payload['source_id']}:{(clock.at + INTERVAL).isoformat()}")
    ]
    assert source_of(runtime, repo.url).next_sync_at == clock.at + INTERVAL


def context_of(job: JobOut, session: Session, clock: FrozenClock) -> JobContext:
    return JobContext(
        job_id=job.id,
        kind=job.kind,
        payload=job.payload,
        attempt=job.attempts + 1,
        max_attempts=job.max_attempts,
        idempotency_key=job.idempotency_key,
        due_at=job.due_at,
        clock=clock,
        session=session,
    )


def test_a_failing_fetch_is_recorded_and_the_schedule_goes_on(
    runtime: Runtime, clock: FrozenClock, repo: Repo, tmp_path: Path
) -> None:
    load(runtime, repo.url)
    shutil.move(repo.path, tmp_path / "away")

    clock.at = NOW + INTERVAL
    assert run_due(runtime, clock) == 1

    source = source_of(runtime, repo.url)
    assert source.last_sync_result == "failed"
    assert (source.last_sync_error or "").startswith("git fetch failed: ")
    assert source.next_sync_at == clock.at + INTERVAL
    assert [j.state for j in sync_jobs(runtime)] == [JobState.PENDING, JobState.SUCCEEDED]

    shutil.move(tmp_path / "away", repo.path)
    clock.at += INTERVAL
    assert run_due(runtime, clock) == 1
    source = source_of(runtime, repo.url)
    assert (source.last_sync_result, source.last_sync_error) == ("ok", None)


def test_an_entity_deleted_in_the_portal_comes_back_as_a_full_import_brings_it(
    runtime: Runtime, clock: FrozenClock, repo: Repo, client: TestClient, reads: list[str]
) -> None:
    load(runtime, repo.url)
    assert client.delete("/api/v1/services/ledger").status_code == 204
    reads.clear()

    clock.at = NOW + INTERVAL
    run_due(runtime, clock)

    assert tier_of(client, "ledger") == 2
    assert sorted(reads) == ["quarterdeck.yaml", "web/catalog-info.yaml"]


def test_a_location_is_read_again_though_unchanged_and_so_are_its_targets(
    runtime: Runtime, clock: FrozenClock, repo: Repo, client: TestClient, reads: list[str]
) -> None:
    location = (
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: generated\n"
        "spec:\n  targets: [./dist/generated.yaml]\n"
    )
    repo.write("catalog-info.yaml", location)
    repo.write("dist/generated.yaml", service_doc("generated-api", tier=4))  # dist/ is not walked
    repo.commit("Generated services")
    load(runtime, repo.url)
    repo.write("dist/generated.yaml", service_doc("generated-api", tier=1))
    repo.commit("Generated-api is tier 1")
    reads.clear()

    clock.at = NOW + INTERVAL
    run_due(runtime, clock)

    assert tier_of(client, "generated-api") == 1
    assert reads == ["catalog-info.yaml", "dist/generated.yaml"]


def test_a_duplicate_across_a_kept_and_a_changed_file_resolves_as_a_full_import(
    runtime: Runtime, clock: FrozenClock, repo: Repo, client: TestClient, reads: list[str]
) -> None:
    load(runtime, repo.url)
    # zz/ comes after quarterdeck.yaml in a full import: its ledger is the duplicate, not the first.
    repo.write("zz/quarterdeck.yaml", service_doc("ledger", tier=4))
    repo.commit("A second ledger")
    reads.clear()

    clock.at = NOW + INTERVAL
    run_due(runtime, clock)

    assert reads == [
        "zz/quarterdeck.yaml",
        "quarterdeck.yaml",
    ]  # the new file, then the kept one it collides with
    assert tier_of(client, "ledger") == 2
    source = source_of(runtime, repo.url)
    assert source.last_sync_result == "errors"
    full = load(runtime, repo.url)
    assert counts(full) == (0, 0, 5, 0)
    assert [(p.file, p.message.split(":")[0]) for p in full.errors] == [
        ("zz/quarterdeck.yaml", "duplicate service ledger")
    ]


def test_a_kept_api_survives_a_component_of_its_name_read_again(
    runtime: Runtime, clock: FrozenClock, repo: Repo, client: TestClient, reads: list[str]
) -> None:
    api = (
        "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: storefront\n"
        "spec:\n  type: openapi\n  lifecycle: production\n  owner: payments-team\n"
        '  definition: "openapi: 3.0.0"\n'
    )
    repo.write("apis/catalog-info.yaml", api)
    repo.commit("The storefront API")
    load(runtime, repo.url)
    repo.write("web/catalog-info.yaml", STOREFRONT.replace("type: website", "type: service"))
    repo.commit("The storefront is a service")
    reads.clear()

    clock.at = NOW + INTERVAL
    run_due(runtime, clock)

    assert reads == ["web/catalog-info.yaml"]
    assert client.get("/api/v1/services/storefront?kind=component").json()["type"] == "service"
    assert client.get("/api/v1/services/storefront?kind=api").status_code == 200


def test_a_sync_that_an_import_overtook_prepares_again(
    runtime: Runtime, clock: FrozenClock, repo: Repo, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(runtime, repo.url)
    repo.write("quarterdeck.yaml", LEDGER_TIER_3)
    repo.commit("Ledger is tier 3")
    original = source_sync.prepare

    def overtaken(*args: Any, **kwargs: Any) -> source_sync.Prepared:
        prepared = original(*args, **kwargs)
        monkeypatch.setattr(source_sync, "prepare", original)
        load(runtime, repo.url)  # an import by hand lands between the sync's fetch and its apply
        return prepared

    monkeypatch.setattr(source_sync, "prepare", overtaken)
    clock.at = NOW + INTERVAL

    assert run_due(runtime, clock) == 1
    (job,) = sync_jobs(runtime)
    assert (job.state, job.due_at, job.attempts) == (JobState.PENDING, clock.at + timedelta(seconds=1), 0)
    assert tier_of(client, "ledger") == 3
    clock.at += timedelta(seconds=1)
    assert run_due(runtime, clock) == 1
    assert [j.state for j in sync_jobs(runtime)] == [JobState.PENDING, JobState.SUCCEEDED]
    assert source_of(runtime, repo.url).next_sync_at == clock.at + INTERVAL


def test_a_new_interval_rearms_the_schedule_and_the_old_job_ends_quietly(
    runtime: Runtime, clock: FrozenClock, repo: Repo, reads: list[str]
) -> None:
    minute = timedelta(seconds=60)
    load(runtime, repo.url)

    faster = import_source(runtime.sessions, repo.url, settings=runtime.settings, clock=clock, sync_every=60)

    assert faster.next_sync_at == NOW + minute
    assert [j.due_at for j in sync_jobs(runtime, JobState.PENDING)] == [NOW + INTERVAL, NOW + minute]
    clock.at = NOW + INTERVAL
    reads.clear()
    assert run_due(runtime, clock) == 2  # the new schedule's job syncs; the old one finds it superseded
    assert [j.due_at for j in sync_jobs(runtime, JobState.PENDING)] == [NOW + INTERVAL + minute]
    assert (source_of(runtime, repo.url).sync_interval_seconds, reads) == (60, [])

    off = import_source(runtime.sessions, repo.url, settings=runtime.settings, clock=clock, sync_on=False)

    assert off.next_sync_at is None
    clock.at += minute
    assert run_due(runtime, clock) == 1
    assert sync_jobs(runtime, JobState.PENDING) == []
    assert source_of(runtime, repo.url).last_sync_finished_at == NOW + INTERVAL


# ---------------------------------------------------------------- the admin page and the API


@pytest.fixture
def member(runtime: Runtime, clock: FrozenClock) -> str:
    email = "member@tests.example"
    make_user(runtime.sessions, clock, email, role=GlobalRole.MEMBER)
    return email


@pytest.fixture
def admin_browser(
    app_under_test: FastAPI, runtime: Runtime, clock: FrozenClock, admin_token: str
) -> Iterator[TestClient]:
    with session_client(app_under_test, runtime.sessions, clock, ADMIN_EMAIL) as browser:
        yield browser


def test_the_admin_page_lists_sources_and_sync_now_queues_a_job(
    app_under_test: FastAPI,
    runtime: Runtime,
    clock: FrozenClock,
    repo: Repo,
    admin_browser: TestClient,
    member: str,
) -> None:
    empty = admin_browser.get("/admin/sources")
    assert empty.status_code == 200
    assert "Import a git repository" in empty.text and "quarterdeck import https://" in empty.text
    load(runtime, repo.url)
    source = source_of(runtime, repo.url)

    page = admin_browser.get("/admin/sources")
    assert page.status_code == 200
    assert repo.url in page.text and f'id="sync-{source.id}"' in page.text
    assert (NOW + INTERVAL).strftime("%Y-%m-%d %H:%M:%S") in page.text

    clock.at = NOW + timedelta(seconds=10)
    queued = admin_browser.post(f"/admin/sources/{source.id}/sync", follow_redirects=False)
    assert (queued.status_code, queued.headers["location"]) == (303, f"/admin/sources?queued={source.id}")
    assert [j.due_at for j in sync_jobs(runtime, JobState.PENDING)] == [NOW + INTERVAL, clock.at]
    assert 'id="sync-queued"' in admin_browser.get(queued.headers["location"]).text

    with session_client(app_under_test, runtime.sessions, clock, member) as browser:
        assert browser.get("/admin/sources").status_code == 403
        assert browser.post(f"/admin/sources/{source.id}/sync").status_code == 403
    assert len(sync_jobs(runtime)) == 2
    assert run_due(runtime, clock) == 1
    assert source_of(runtime, repo.url).last_sync_finished_at == clock.at


def test_the_api_queues_a_sync_202_and_answers_404_and_403(
    app_under_test: FastAPI, runtime: Runtime, clock: FrozenClock, repo: Repo, client: TestClient, member: str
) -> None:
    load(runtime, repo.url)
    source = source_of(runtime, repo.url)

    first = client.post(f"/api/v1/sources/{source.id}/sync")
    again = client.post(f"/api/v1/sources/{source.id}/sync")

    assert first.status_code == 202, first.text
    assert (first.json()["source_id"], datetime.fromisoformat(first.json()["due_at"])) == (source.id, NOW)
    assert again.json()["job_id"] == first.json()["job_id"]
    missing = client.post("/api/v1/sources/999999/sync")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "catalog.source_not_found")
    for user, scopes in [(member, ["read", "write:catalog"]), (ADMIN_EMAIL, ["write:catalog"])]:
        token = make_token(runtime.sessions, clock, user=user, scopes=scopes)
        refused = client.post(
            f"/api/v1/sources/{source.id}/sync", headers={"Authorization": f"Bearer {token}"}
        )
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "access.forbidden"), user
    listed = client.get("/api/v1/sources").json()
    assert [(s["id"], s["location"], datetime.fromisoformat(s["next_sync_at"])) for s in listed] == [
        (source.id, repo.url, NOW + INTERVAL)
    ]
    detail = client.get(f"/api/v1/sources/{source.id}").json()
    assert (detail["entities"], detail["files"], detail["errors"]) == (5, 2, [])
    assert run_due(runtime, clock) == 1
    assert client.get(f"/api/v1/sources/{source.id}").json()["last_sync_result"] == "ok"


def test_the_admin_page_fits_a_phone(
    runtime: Runtime, clock: FrozenClock, repo: Repo, tmp_path: Path, admin_browser: TestClient
) -> None:
    """Chromium at 390 px, served by the app in-process: the page's content never pushes it sideways
    (the table scrolls inside its frame). The top bar is the base template's, measured elsewhere."""
    load(runtime, repo.url)
    load(runtime, str(repo.path / "web"))
    shutil.move(repo.path, tmp_path / "away")
    clock.at = NOW + INTERVAL
    run_due(runtime, clock)  # a failed sync: its long git error is on the page too

    def serve(route: Route) -> None:
        answer = admin_browser.get(urlsplit(route.request.url).path)
        route.fulfill(status=answer.status_code, headers=dict(answer.headers), body=answer.content)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        page.route("http://portal.test/**", serve)
        page.goto("http://portal.test/admin/sources")
        expect(page.locator("#sources .sync-error")).to_contain_text("git fetch failed")
        expect(page.locator("#sources tbody tr")).to_have_count(2)
        width = page.evaluate("document.querySelector('main').scrollWidth")
        table = page.evaluate("document.querySelector('#sources').scrollWidth")
        browser.close()
    assert width <= 390, f"the page's content is {width}px wide on a 390px phone"
    assert table > 390  # what would have overflowed: the frame holds it


def test_a_quarterdeck_worker_process_runs_the_sync_asked_for_over_the_api(
    app_under_test: FastAPI, runtime: Runtime, repo: Repo, client: TestClient, tmp_path: Path
) -> None:
    load(runtime, repo.url)
    repo.write("quarterdeck.yaml", LEDGER_TIER_3)
    repo.commit("Ledger is tier 3")
    source = source_of(runtime, repo.url)
    queued = client.post(f"/api/v1/sources/{source.id}/sync").json()
    env = {"QD_GIT_CACHE_DIR": str(runtime.settings.git_cache_dir)}

    with worker_process(runtime.settings.database_url, tmp_path, "worker", env=env):
        wait_until(lambda: synced(runtime, queued["job_id"]), timeout=30, what="the sync asked for")

    # The periodic sync, long overdue by the worker's clock, may run too: either way, one applied it.
    assert tier_of(client, "ledger") == 3
    assert source_of(runtime, repo.url).revision == repo.git("rev-parse", "HEAD")


def synced(runtime: Runtime, job_id: int) -> bool:
    with runtime.sessions() as session:
        return get_job(session, job_id).state == JobState.SUCCEEDED


# ---------------------------------------------------------------- the listing is the walk


def test_the_git_listing_meets_files_in_the_order_of_the_walk(tmp_path: Path) -> None:
    made = Repo(tmp_path / "tree")
    made.path.mkdir()
    made.git("init", "--quiet", "--initial-branch=main")
    for name in [
        "b/quarterdeck.yaml",
        "a/z/catalog-info.yaml",
        "a/catalog-info.yaml",
        "zz.quarterdeck.yaml",
        "node_modules/x/catalog-info.yaml",
        "a/notes.yaml",
        "c/other.yml",
        "A/catalog-info.yaml",
    ]:
        made.write(name, service_doc("svc-" + name.replace("/", "-").replace(".", "-").lower()))
    made.write("a/notes.yaml", "just: notes\n")
    (made.path / "c" / "link.yaml").symlink_to("other.yml")
    made.commit("A tree to walk")

    with git.working_copy(made.url, tmp_path / "cache") as (root, commit):
        walked = sources.SourceTree("t", "git", made.url, root.resolve(), commit)
        by_walk = [path.relative_to(walked.root).as_posix() for path in sources._candidates(walked)]
        listed = sources.SourceTree("t", "git", made.url, root.resolve(), commit)
        planned = incremental.plan(listed, git.list_files(root), None)

    assert planned.candidates == by_walk
    assert (len(planned.ignored), walked.ignored) == (1, 1)


def test_credentials_in_urls_never_reach_a_page() -> None:
    said = "fatal: unable to access 'https://bot:s3cret@git.example.com/org/catalog.git/': 403"

    assert git.redact(said) == "fatal: unable to access 'https://***@git.example.com/org/catalog.git/': 403"
    assert git.redact("git@github.com:org/catalog.git") == "git@github.com:org/catalog.git"
