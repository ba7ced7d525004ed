"""The job queue as admins see and steer it: the page, the API, retry and cancel (audited), and
nobody else may look."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck import jobs
from quarterdeck.clock import FrozenClock
from quarterdeck.db import transaction
from quarterdeck.jobs import store
from tests.conftest import make_user, session_client
from tests.helpers import audit_log, error_of


def _enqueue(sessions: sessionmaker[Session], clock: FrozenClock, kind: str, *, in_minutes: float = 0) -> int:
    with transaction(sessions) as session:
        job = jobs.enqueue(
            session, kind, {"n": 1}, now=clock.now(), due_at=clock.now() + timedelta(minutes=in_minutes)
        )
        return job.id


def _parked(sessions: sessionmaker[Session], clock: FrozenClock, kind: str) -> int:
    """A job whose only attempt failed: claimed by a worker, then parked with its error."""
    job_id = _enqueue(sessions, clock, kind)
    with transaction(sessions) as session:
        [claimed] = store.claim(session, "test-worker", clock.now(), leases={kind: 60.0}, limit=1)
        store.park(
            session, claimed.id, "test-worker", clock.now(), error="boom: registry down", permanent=False
        )
    return job_id


def test_the_queue_lists_jobs_with_figures_per_kind(
    client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    _enqueue(sessions, clock, "catalog.sync_source")
    _enqueue(sessions, clock, "catalog.sync_source", in_minutes=5)
    parked = _parked(sessions, clock, "deploys.step")
    body = client.get("/api/v1/jobs").json()
    assert [j["kind"] for j in body["items"]].count("catalog.sync_source") == 2
    stats = {k["kind"]: k for k in body["stats"]["kinds"]}
    assert stats["catalog.sync_source"]["depth"] == {"pending": 2}
    assert stats["deploys.step"]["depth"] == {"failed": 1}
    assert stats["deploys.step"]["failures"] == 1
    only_failed = client.get("/api/v1/jobs?state=failed").json()["items"]
    assert [(j["id"], j["last_error"]) for j in only_failed] == [(parked, "boom: registry down")]


def test_a_parked_job_is_retried_and_a_pending_one_cancelled_both_audited(
    client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    parked = _parked(sessions, clock, "deploys.step")
    retried = client.post(f"/api/v1/jobs/{parked}/retry")
    assert retried.status_code == 200, retried.text
    assert (retried.json()["state"], retried.json()["attempts"]) == ("pending", 0)
    again = client.post(f"/api/v1/jobs/{parked}/retry")
    assert "pending" in error_of(again, 409, again.json()["error"]["code"])["message"]
    cancelled = client.post(f"/api/v1/jobs/{parked}/cancel")
    assert cancelled.json()["state"] == "cancelled"
    entries = [(e.action, e.target_id, e.after) for e in audit_log(sessions) if e.target_type == "job"]
    assert entries == [
        ("job.retry", str(parked), {"state": "pending", "attempts": 0}),
        ("job.cancel", str(parked), {"state": "cancelled", "attempts": 0}),
    ]
    history = client.get(f"/api/v1/jobs/{parked}").json()["events"]
    assert [(e["from_state"], e["to_state"]) for e in history][-2:] == [
        ("failed", "pending"),
        ("pending", "cancelled"),
    ]


def test_an_unknown_job_is_404(client: TestClient) -> None:
    assert client.get("/api/v1/jobs/999").status_code == 404
    assert client.post("/api/v1/jobs/999/retry").status_code == 404


def test_only_admins_see_or_move_jobs(
    app_under_test: FastAPI, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    job_id = _enqueue(sessions, clock, "catalog.sync_source")
    make_user(sessions, clock, "member@shop.example")
    member = session_client(app_under_test, sessions, clock, "member@shop.example")
    assert member.get("/api/v1/jobs").status_code == 403
    assert member.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 403
    assert member.get("/admin/jobs").status_code == 403
    with sessions() as session:
        assert jobs.get_job(session, job_id).state is jobs.JobState.PENDING


def test_the_admin_page_shows_the_queue_and_the_buttons_that_apply(
    app_under_test: FastAPI, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    from quarterdeck.access.schemas import GlobalRole

    make_user(sessions, clock, "root@shop.example", role=GlobalRole.ADMIN)
    admin = session_client(app_under_test, sessions, clock, "root@shop.example")
    empty = admin.get("/admin/jobs")
    assert empty.status_code == 200
    assert 'id="no-queue"' in empty.text
    parked = _parked(sessions, clock, "deploys.step")
    page = admin.get("/admin/jobs?state=failed").text
    assert f'data-job="{parked}"' in page and "boom: registry down" in page
    assert f'action="/admin/jobs/{parked}/retry"' in page
    moved = admin.post(f"/admin/jobs/{parked}/retry", follow_redirects=False)
    assert moved.status_code == 303 and moved.headers["location"] == f"/admin/jobs/{parked}"
    detail = admin.get(f"/admin/jobs/{parked}").text
    assert 'id="job-state">pending' in detail
    assert f'action="/admin/jobs/{parked}/retry"' not in detail
