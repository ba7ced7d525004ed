"""Annotations as links (catalog/annotation_links.py): every default key with a good and a bad value,
hostile values that must never become a link elsewhere, QD_ANNOTATION_LINKS (a self-hosted base, a new
key, a dropped default, refused templates naming their key), and the links in the stored API answer and
on the service page, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from quarterdeck.catalog import service as catalog
from quarterdeck.catalog.annotation_links import DEFAULT_RULES, MAX_VALUE, links_for, rules_from
from quarterdeck.catalog.importer import import_source
from quarterdeck.catalog.schemas import AnnotationLink
from quarterdeck.cli import app as cli
from quarterdeck.clock import FrozenClock
from quarterdeck.config import AnnotationLinkRule, Settings
from quarterdeck.db import transaction
from quarterdeck.runtime import running
from tests.helpers import create_service, create_team

DEFAULTS = rules_from({})
CYRILLIC_I = "\u0456"
SELF_HOSTED_SENTRY = "https://sentry.example.com/organizations/{0}/projects/{1}/"
CONFIGURED: dict[str, object] = {
    "sentry.io/project-slug": SELF_HOSTED_SENTRY,
    "jenkins.io/job-full-name": "https://jenkins.example.com/job/{value:/job/}",
    "acme.example/runbook": {"url": "https://wiki.acme.example/runbooks/{value}", "label": "Runbook"},
}
"""What the web tests of this module run with (their own `settings` fixture below)."""


def link(key: str, value: str, rules: dict[str, AnnotationLinkRule] = DEFAULTS) -> AnnotationLink:
    [found] = links_for({key: value}, rules)
    return found


def configured(entries: dict[str, object]) -> dict[str, AnnotationLinkRule]:
    """The rules an install with QD_ANNOTATION_LINKS = `entries` uses."""
    return rules_from(Settings(annotation_links=entries).annotation_links)


# ---------------------------------------------------------------- every default key

GOOD = [
    # key, value as descriptors write it, the page it links to
    ("github.com/project-slug", "backstage/backstage", "https://github.com/backstage/backstage"),
    ("github.com/project-slug", "invoca/process_settings", "https://github.com/invoca/process_settings"),
    (
        "github.com/team-slug",
        "elastic/kibana-tech-leads",
        "https://github.com/orgs/elastic/teams/kibana-tech-leads",
    ),
    ("gitlab.com/project-slug", "gitlab-org/gitlab", "https://gitlab.com/gitlab-org/gitlab"),
    # subgroups
    ("gitlab.com/project-slug", "acme/platform/api", "https://gitlab.com/acme/platform/api"),
    # GitLab redirects /projects/:id to the project
    ("gitlab.com/project-id", "278964", "https://gitlab.com/projects/278964"),
    ("pagerduty.com/service-id", "PABC123", "https://app.pagerduty.com/service-directory/PABC123"),
    ("sentry.io/project-slug", "acme/web", "https://sentry.io/organizations/acme/projects/web/"),
    (
        "grafana/overview-dashboard",
        "http://grafana/d/qSfS51a4z/some-dashboard?orgId=1&kiosk",
        "http://grafana/d/qSfS51a4z/some-dashboard?orgId=1&kiosk",
    ),
    # a public dashboard on another Datadog site
    ("datadoghq.com/dashboard-url", "https://p.datadoghq.eu/sb/abc-123", "https://p.datadoghq.eu/sb/abc-123"),
    ("datadoghq.com/service-name", "orders-api", "https://app.datadoghq.com/apm/services/orders-api"),
    (
        "backstage.io/source-location",
        "url:https://github.com/einride/aip-go/tree/master/",
        "https://github.com/einride/aip-go/tree/master/",
    ),
    (
        "backstage.io/view-url",
        "https://github.com/acme/api/blob/main/catalog-info.yaml",
        "https://github.com/acme/api/blob/main/catalog-info.yaml",
    ),
    (
        "backstage.io/edit-url",
        "https://github.com/acme/api/edit/main/catalog-info.yaml",
        "https://github.com/acme/api/edit/main/catalog-info.yaml",
    ),
    ("sonarqube.org/project-key", "elements", "https://sonarcloud.io/dashboard?id=elements"),
    # SonarCloud keys often carry the organization after a colon: encoded in the query
    ("sonarqube.org/project-key", "acme:api", "https://sonarcloud.io/dashboard?id=acme%3Aapi"),
    (
        "circleci.com/project-slug",
        "github/Altitude-sports/helm-ssm",
        "https://app.circleci.com/pipelines/github/Altitude-sports/helm-ssm",
    ),
    ("buildkite.com/project-slug", "elastic/kibana", "https://buildkite.com/elastic/kibana"),
    (
        "quay.io/repository-slug",
        "rh-ee-frkong/rhpib-testing",
        "https://quay.io/repository/rh-ee-frkong/rhpib-testing",
    ),
    ("lighthouse.com/website-url", "https://backstage.io", "https://backstage.io"),
    ("endoflife.date/products", "ruby@3.3", "https://endoflife.date/ruby"),
]

BAD = [
    # key, a value of the wrong shape, what the note says
    ("github.com/project-slug", "just-a-repo", "expected owner/repository"),
    # a scaffolder template's placeholder, as in the corpus
    ("github.com/project-slug", '${{values.owner + "/" + values.repo}}', "expected owner/repository"),
    ("github.com/team-slug", "a/b/c", "expected org/team"),
    ("gitlab.com/project-slug", "project-without-group", "expected group/project"),
    ("gitlab.com/project-id", "12a", "expected a number"),
    # the corpus's demo entities name services, not PagerDuty IDs
    ("pagerduty.com/service-id", "catalog-frontend", "expected a PagerDuty service ID"),
    ("sentry.io/project-slug", "web", "expected organization/project"),
    # some write a dashboard UID, not its URL
    ("grafana/overview-dashboard", "example-service-overview", "not an http(s) URL"),
    ("datadoghq.com/dashboard-url", "https://dashboards.example.com/sb/1", "is not one of datadoghq.com"),
    ("datadoghq.com/service-name", "orders api", "expected a Datadog service name"),
    ("backstage.io/source-location", "dir:.", "expected url:<http(s) URL>"),
    ("backstage.io/view-url", "github.com/acme/api", "not an http(s) URL"),
    ("backstage.io/edit-url", "ftp://files.example.com/x", "not an http(s) URL"),
    ("sonarqube.org/project-key", "instance/key", "an instance/ prefix needs a configured address"),
    ("circleci.com/project-slug", "gh/acme/api", "expected github/owner/repository"),
    ("buildkite.com/project-slug", "kibana", "expected organization/pipeline"),
    ("quay.io/repository-slug", "repo", "expected namespace/repository"),
    ("lighthouse.com/website-url", "backstage.io", "not an http(s) URL"),
    ("endoflife.date/products", "ruby@3.3,rails@7", "expected one product"),
]

UNCONFIGURED = ["jenkins.io/job-full-name", "argocd/app-name", "opsgenie.com/component-selector"]
"""Known keys of tools only the organisation knows the address of: text until configured."""
SECRET = "pagerduty.com/integration-key"


def test_every_default_key_has_a_good_and_a_bad_value_here() -> None:
    linked = {key for key, _value, _url in GOOD}
    assert linked == {key for key, _value, _reason in BAD}
    assert linked | set(UNCONFIGURED) | {SECRET} == set(DEFAULT_RULES)


@pytest.mark.parametrize(("key", "value", "url"), GOOD)
def test_a_good_value_links_to_its_page(key: str, value: str, url: str) -> None:
    found = link(key, value)

    assert (found.url, found.reason, found.value) == (url, None, value)
    assert found.label == DEFAULT_RULES[key].label


@pytest.mark.parametrize(("key", "value", "reason"), BAD)
def test_a_value_of_the_wrong_shape_is_text_with_the_reason(key: str, value: str, reason: str) -> None:
    found = link(key, value)

    assert found.url is None
    assert found.reason is not None and reason in found.reason
    assert found.value == value


@pytest.mark.parametrize("key", UNCONFIGURED)
def test_a_tool_without_a_configured_address_is_text(key: str) -> None:
    found = link(key, "payments")

    assert found.url is None
    assert found.reason is not None and "QD_ANNOTATION_LINKS" in found.reason


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("0123456789abcdef0123456789abcdef", "••••cdef"),
        # a short key keeps no character at all: the last 4 would be too much of it
        ("0123456789abcde", "••••"),
    ],
)
def test_an_integration_key_is_never_a_link_and_never_shown_whole(value: str, shown: str) -> None:
    found = link(SECRET, value)

    assert (found.url, found.value, found.masked) == (None, shown, True)
    assert value not in found.model_dump_json()


def test_keys_without_a_rule_are_left_out_and_the_rest_ordered_by_label() -> None:
    found = links_for(
        {
            "sentry.io/project-slug": "acme/web",
            "backstage.io/techdocs-ref": "dir:.",
            "github.com/project-slug": "acme/web",
            "backstage.io/kubernetes-id": "web",
        },
        DEFAULTS,
    )

    assert [entry.label for entry in found] == ["GitHub repository", "Sentry project"]


# ---------------------------------------------------------------- hostile values

HOSTILE = [
    # value, why it must not become a link elsewhere
    "javascript:alert(document.cookie)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "//evil.example",
    "//evil.example/owner/repo",
    "../../evil.example",
    "owner/..",
    "owner/repo/../../admin",
    "owner/repo\nLocation: https://evil.example",
    "owner/repo\r\nx",
    "owner/repo\u2028x",
    "owner /repo",
    "owner/repo ",
    "@evil.example",
    "owner@evil.example/repo",
    "https://github.com@evil.example/owner/repo",
    "https://evil.example\\@github.com/",
    "https://evil.example%2F@github.com/",
    # a look-alike host: the Cyrillic i (U+0456) in place of the Latin one
    f"https://g{CYRILLIC_I}thub.com/owner/repo",
    f"g{CYRILLIC_I}thub/repo",
    "http://[::1]/admin",
    "https://github.com:99999/x",
    "owner/repo#@evil.example",
    "owner/repo?next=//evil.example",
    "owner/\u202erepo",
]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize(
    "key",
    ["github.com/project-slug", "sentry.io/project-slug", "gitlab.com/project-slug", "backstage.io/view-url"],
)
def test_a_hostile_value_is_never_a_link(key: str, value: str) -> None:
    found = link(key, value)

    assert found.url is None
    assert found.reason


QUERY_RULES = configured(
    {"opsgenie.com/component-selector": "https://acme.app.opsgenie.com/alert/list?query={value}"}
)


@pytest.mark.parametrize("value", HOSTILE)
def test_a_value_the_key_accepts_as_free_text_stays_on_the_templates_host(value: str) -> None:
    """Opsgenie's selector is free text: whatever it holds is encoded into the query, never the host."""
    found = link("opsgenie.com/component-selector", value, QUERY_RULES)

    if found.url is not None:
        parts = urlsplit(found.url)
        assert (parts.scheme, parts.netloc, parts.path) == ("https", "acme.app.opsgenie.com", "/alert/list")
        assert re.fullmatch(r"query=[A-Za-z0-9%._~/-]*", parts.query), parts.query
        assert parts.fragment == ""


def test_a_selector_with_spaces_and_quotes_is_encoded() -> None:
    found = link("opsgenie.com/component-selector", 'tag:"service:payments" AND status:open', QUERY_RULES)

    assert found.url == (
        "https://acme.app.opsgenie.com/alert/list?query=tag%3A%22service%3Apayments%22%20AND%20status%3Aopen"
    )


def test_a_very_long_value_is_no_link_and_is_shown_cut_short() -> None:
    value = "owner/" + "r" * (MAX_VALUE * 4)

    found = link("github.com/project-slug", value)
    whole_url = link("grafana/overview-dashboard", "https://grafana.example.com/d/" + "x" * MAX_VALUE)

    assert (found.url, whole_url.url) == (None, None)
    assert found.reason is not None and str(MAX_VALUE) in found.reason
    assert len(found.value) <= 201 and found.value.endswith("…")


def test_a_long_but_bounded_value_still_links() -> None:
    repo = "r" * 100

    assert link("github.com/project-slug", f"owner/{repo}").url == f"https://github.com/owner/{repo}"


# ---------------------------------------------------------------- QD_ANNOTATION_LINKS


def test_a_self_hosted_base_keeps_the_default_label_and_shape() -> None:
    rules = configured({"sentry.io/project-slug": SELF_HOSTED_SENTRY})

    good = link("sentry.io/project-slug", "acme/web", rules)
    bad = link("sentry.io/project-slug", "web", rules)

    assert (good.label, good.url) == (
        "Sentry project",
        "https://sentry.example.com/organizations/acme/projects/web/",
    )
    assert (bad.url, bad.reason) == (None, "expected organization/project")


def test_a_pagerduty_subdomain_and_a_self_hosted_gitlab() -> None:
    rules = configured(
        {
            "pagerduty.com/service-id": "https://acme.pagerduty.com/service-directory/{value}",
            "gitlab.com/project-slug": "https://gitlab.acme.example/{value}",
        }
    )

    assert link("pagerduty.com/service-id", "PABC123", rules).url == (
        "https://acme.pagerduty.com/service-directory/PABC123"
    )
    assert (
        link("gitlab.com/project-slug", "platform/api", rules).url
        == "https://gitlab.acme.example/platform/api"
    )


def test_a_new_key_a_separator_and_a_dropped_default() -> None:
    rules = configured(
        {
            "acme.example/runbook": {"url": "https://wiki.acme.example/runbooks/{value}", "label": "Runbook"},
            "jenkins.io/job-full-name": "https://jenkins.example.com/job/{value:/job/}",
            "github.com/team-slug": None,
        }
    )

    runbook = link("acme.example/runbook", "payments/refunds", rules)
    job = link("jenkins.io/job-full-name", "payments/deploy", rules)

    assert (runbook.label, runbook.url) == ("Runbook", "https://wiki.acme.example/runbooks/payments/refunds")
    assert (job.label, job.url) == ("Jenkins job", "https://jenkins.example.com/job/payments/job/deploy")
    assert links_for({"github.com/team-slug": "acme/payments"}, rules) == []
    # a new key without a pattern takes parts of letters, digits, '.', '_' and '-'
    assert link("acme.example/runbook", "javascript:alert(1)", rules).url is None


def test_a_whole_url_key_may_be_held_to_some_hosts() -> None:
    rules = configured({"grafana/overview-dashboard": {"url": "{value}", "hosts": ["grafana.acme.example"]}})

    inside = link("grafana/overview-dashboard", "https://eu.grafana.acme.example/d/abc", rules)
    outside = link("grafana/overview-dashboard", "https://grafana.acme.example.evil.example/d/abc", rules)

    assert inside.url == "https://eu.grafana.acme.example/d/abc"
    assert (outside.url, outside.reason) == (
        None,
        "host grafana.acme.example.evil.example is not one of grafana.acme.example",
    )


def test_the_integration_key_stays_hidden_unless_the_setting_says_it_is_no_secret() -> None:
    template = "https://events.example.com/{value}"
    kept = configured({SECRET: template})
    opened = configured({SECRET: {"url": template, "secret": False}})

    assert link(SECRET, "0123456789abcdef0123", kept).url is None
    assert (
        link(SECRET, "0123456789abcdef0123", opened).url == "https://events.example.com/0123456789abcdef0123"
    )


def test_the_setting_is_read_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QD_ANNOTATION_LINKS", json.dumps({"sentry.io/project-slug": SELF_HOSTED_SENTRY}))

    rules = rules_from(Settings().annotation_links)

    assert rules["sentry.io/project-slug"].url == SELF_HOSTED_SENTRY


REFUSED = [
    # entry, what the error says after naming the key
    ("javascript:alert('{value}')", "must start with http:// or https://"),
    ("//evil.example/{value}", "must start with http:// or https://"),
    ("https://{value}.example.com/", "must write its host out"),
    ("https://{value}/", "must write its host out"),
    ("https://user@gitlab.example.com/{value}", "expected a lower-case host name, no user name"),
    (f"https://g{CYRILLIC_I}tlab.example.com/{{value}}", "expected a lower-case host name"),
    ("https://gitlab.example.com/{project}", "pattern needs a group (?P<project>...)"),
    ("https://gitlab.example.com/{value!r}", "has a conversion"),
    ("https://gitlab.example.com/{value.__class__}", "use {value}, {0}, {1}"),
    ("https://gitlab.example.com/{12}", "parts are {0} to {9}"),
    ("https://gitlab.example.com/{value:%}", "takes a separator"),
    ("https://gitlab.example.com/{", "is malformed"),
    ("https://gitlab.example.com/ {value}", "spaces or control characters"),
    ({"url": "https://gitlab.example.com/{value}", "pattern": "("}, "does not compile"),
    ({"url": "https://gitlab.example.com/{value}", "hosts": ["gitlab.example.com"]}, "hosts apply only"),
    (
        {"url": "https://gitlab.example.com/{value}", "colour": "red"},
        "colour: Extra inputs are not permitted",
    ),
    ({"url": "https://gitlab.example.com/{value}", "secret": True}, "a secret key is never a link"),
    (42, "Input should be a valid dictionary"),
]


@pytest.mark.parametrize(("entry", "message"), REFUSED)
def test_a_bad_entry_is_refused_at_startup_naming_its_key(entry: object, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(annotation_links={"gitlab.com/project-slug": entry})

    assert "key 'gitlab.com/project-slug'" in str(raised.value)
    assert message in str(raised.value)


def test_a_bad_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="key ' spaced' is not an annotation key"):
        Settings(annotation_links={" spaced": "https://x.example/{value}"})


def test_every_command_refuses_a_bad_setting_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no quarterdeck.toml
    env = {
        "QD_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}",
        "QD_ANNOTATION_LINKS": json.dumps({"sentry.io/project-slug": "https://{0}.sentry.example/"}),
    }

    result = CliRunner().invoke(cli, ["catalog", "check"], env=env)

    assert result.exit_code == 1
    assert "QD_ANNOTATION_LINKS" in result.output and "key 'sentry.io/project-slug'" in result.output
    assert "must write its host out" in result.output


# ---------------------------------------------------------------- the API answer and the page


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        git_cache_dir=tmp_path / "git",
        embedded_worker=False,
        annotation_links=CONFIGURED,
    )


ANNOTATIONS = {
    "github.com/project-slug": "acme/payments",
    "sentry.io/project-slug": "acme/payments-web",
    "jenkins.io/job-full-name": "payments/deploy",
    "acme.example/runbook": "payments",
    "pagerduty.com/service-id": "catalog-frontend",
    "pagerduty.com/integration-key": "0123456789abcdef0123456789abcdef",
    "backstage.io/view-url": "javascript:alert(document.cookie)",
    "note": "<script>alert(1)</script>",
}


def test_the_api_answer_carries_the_links(client: TestClient) -> None:
    create_team(client, "payments")
    create_service(client, "payments-api", "payments", annotations=ANNOTATIONS)

    answer = client.get("/api/v1/services/payments-api")

    assert answer.status_code == 200
    found = {entry["key"]: entry for entry in answer.json()["annotation_links"]}
    assert set(found) == set(ANNOTATIONS) - {"note"}
    assert found["github.com/project-slug"]["url"] == "https://github.com/acme/payments"
    assert (
        found["sentry.io/project-slug"]["url"]
        == "https://sentry.example.com/organizations/acme/projects/payments-web/"
    )
    assert found["jenkins.io/job-full-name"]["url"] == "https://jenkins.example.com/job/payments/job/deploy"
    assert found["acme.example/runbook"] == {
        "key": "acme.example/runbook",
        "label": "Runbook",
        "value": "payments",
        "url": "https://wiki.acme.example/runbooks/payments",
        "reason": None,
        "masked": False,
    }
    assert found["pagerduty.com/service-id"]["url"] is None
    assert found["backstage.io/view-url"]["url"] is None
    assert found["pagerduty.com/integration-key"]["value"] == "••••cdef"
    # the write answered with the same stored bytes the GET reads
    assert answer.headers["etag"] == answer.json()["etag"]


def test_the_service_page_links_out_and_keeps_the_raw_annotations(client: TestClient) -> None:
    create_team(client, "payments")
    create_service(client, "payments-api", "payments", annotations=ANNOTATIONS)

    page = client.get("/services/payments-api")

    assert page.status_code == 200
    section = page.text.split('id="annotations"', 1)[1].split("</section>", 1)[0]
    assert (
        '<a href="https://github.com/acme/payments" rel="noopener noreferrer" '
        'title="github.com/project-slug: acme/payments">GitHub repository</a>'
    ) in section
    assert 'href="https://sentry.example.com/organizations/acme/projects/payments-web/"' in section
    assert "expected a PagerDuty service ID such as PABC123" in section
    assert '<details id="annotations-raw">' in section and "<code>note</code>" in section
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section
    assert "0123456789abcdef0123456789abcdef" not in page.text
    assert "••••cdef" in section
    assert 'href="javascript:' not in page.text


def test_an_imported_backstage_descriptor_gets_its_links(
    tmp_path: Path,
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FrozenClock,
    client: TestClient,
) -> None:
    """The corpus's einride/aip-go descriptor (shared/corpus), imported from a folder."""
    folder = tmp_path / "aip-go"
    folder.mkdir()
    (folder / "catalog-info.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\n"
        "kind: Component\n"
        "metadata:\n"
        "  name: aip-go\n"
        "  annotations:\n"
        "    github.com/project-slug: einride/aip-go\n"
        "    github.com/team-slug: einride/team-cloud-control\n"
        "    backstage.io/source-location: url:https://github.com/einride/aip-go/tree/master/\n"
        "spec:\n"
        "  type: go-library\n"
        "  lifecycle: production\n"
        "  owner: team-cloud-control\n"
    )
    report = import_source(sessions, str(folder), settings=settings, clock=clock)
    assert report.errors == []

    found = client.get("/api/v1/services/aip-go").json()["annotation_links"]

    assert [(entry["label"], entry["url"]) for entry in found] == [
        ("GitHub repository", "https://github.com/einride/aip-go"),
        ("GitHub team", "https://github.com/orgs/einride/teams/team-cloud-control"),
        ("Source code", "https://github.com/einride/aip-go/tree/master/"),
    ]


def test_a_changed_setting_shows_once_the_read_model_is_rebuilt(
    client: TestClient, settings: Settings, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    create_team(client, "payments")
    before = create_service(
        client, "payments-api", "payments", annotations={"sentry.io/project-slug": "acme/web"}
    )
    changed = settings.model_copy(
        update={
            "annotation_links": Settings(annotation_links={"sentry.io/project-slug": None}).annotation_links
        }
    )

    with running(changed, clock=clock) as other, other.sessions() as session:
        assert catalog.check_read_model(session) == [
            "component payments-api: stored answer differs from the tables"
        ]
    assert (
        client.get("/api/v1/services/payments-api").json()["annotation_links"] == before["annotation_links"]
    )
    with running(changed, clock=clock) as other, transaction(other.writers) as session:
        catalog.rebuild_read_model(session)

    after = client.get("/api/v1/services/payments-api")
    assert after.json()["annotation_links"] == []
    assert after.headers["etag"] != before["etag"]
    with sessions() as session:
        assert catalog.check_read_model(session) == [
            "component payments-api: stored answer differs from the tables"
        ]
