"""The audit page's before/after diff: the changed fields of an entry, and the page that shows them
compactly, expandable, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from quarterdeck.access.audit_diff import MAX_LINES, MAX_VALUE, DiffLine, audit_diff
from tests.helpers import create_service, create_team


def test_an_update_lists_only_the_fields_that_changed() -> None:
    before = {"owner": "payments", "tier": 2, "tags": ["a", "b"], "links": [{"url": "https://x"}], "same": 1}
    after = {
        "owner": "checkout",
        "tier": 2,
        "tags": ["a", "b", "c"],
        "links": [{"url": "https://y"}],
        "same": 1,
    }

    diff = audit_diff(before, after)

    assert diff.lines == (
        DiffLine("links.0.url", "changed", "https://x", "https://y"),
        DiffLine("owner", "changed", "payments", "checkout"),
        DiffLine("tags", "changed", '["a", "b"]', '["a", "b", "c"]'),
    )
    assert diff.summary == "links.0.url, owner, tags changed"


def test_added_and_removed_fields_and_list_items() -> None:
    diff = audit_diff({"gone": "x", "links": [{"u": 1}, {"u": 2}]}, {"new": True, "links": [{"u": 1}]})

    assert diff.lines == (
        DiffLine("gone", "removed", "x", None),
        DiffLine("links.1", "removed", '{"u": 2}', None),
        DiffLine("new", "added", None, "true"),
    )


def test_create_and_delete_list_every_field() -> None:
    created = audit_diff(None, {"slug": "a", "tier": 1})
    deleted = audit_diff({"slug": "a"}, None)

    assert [(line.path, line.kind) for line in created.lines] == [("slug", "added"), ("tier", "added")]
    assert [(line.path, line.kind, line.before) for line in deleted.lines] == [("slug", "removed", "a")]
    assert audit_diff(None, None).lines == ()
    assert audit_diff({"a": 1}, {"a": 1}).summary == "no field changed"


def test_long_values_and_many_fields_are_bounded() -> None:
    huge = {f"f{i:04}": i for i in range(MAX_LINES + 50)}
    diff = audit_diff({}, huge)
    long = audit_diff({"d": "x" * 10_000}, {"d": "y"})

    assert (len(diff.lines), diff.hidden) == (MAX_LINES, 50)
    assert diff.summary == f"f0000, f0001, f0002 and {MAX_LINES + 47} more changed"
    assert long.lines[0].before is not None and len(long.lines[0].before) == MAX_VALUE


def test_the_audit_page_shows_each_change_as_a_diff(client: TestClient) -> None:
    create_team(client, "payments")
    create_team(client, "checkout")
    create_service(client, "ledger", "payments", tier=2)
    assert client.patch("/api/v1/services/ledger", json={"owner": "checkout", "tier": 1}).status_code == 200

    page = client.get("/admin/audit", params={"action": "service.update"})

    assert page.status_code == 200
    entry = re.search(r'<li class="audit-entry".*?</li>', page.text, re.S)
    assert entry is not None, page.text
    html = entry.group(0)
    assert "<summary>owner, tier changed</summary>" in html
    assert '<tr class="diff-changed"><th scope="row"><code>owner</code></th>' in html
    assert "<del>payments</del>" in html and "<ins>checkout</ins>" in html
    assert "<del>2</del>" in html and "<ins>1</ins>" in html
    assert '"owner":' not in html  # no raw JSON document
    created = client.get("/admin/audit", params={"action": "service.create"}).text
    assert re.search(r"<summary>created · \d+ fields</summary>", created)
