"""Signing in, in a real browser: passwords, single sign-on against a running OpenID Provider (and the
id_tokens it must refuse), the edit button only for those who may edit, and stored XSS kept inert.

The app of this module has single sign-on configured with `tests/oidc_provider.py`'s TestProvider;
its password sign-in works as everywhere else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Dialog, Page, Request, Route, expect

from quarterdeck.access.schemas import GlobalRole
from tests.e2e.conftest import DESKTOP, AppSettings, LiveApp, sign_in
from tests.oidc_provider import Misbehaviour, TestProvider, oidc_provider

SECRET = "e2e-client-secret"
ADMIN_GROUP = "Quarterdeck Admins"
NewPage = Callable[..., Page]


@pytest.fixture(scope="module")
def provider() -> Iterator[TestProvider]:
    with oidc_provider() as running:
        running.add_user("ana", "ana@sso.example", "Ana Sousa", ["payments", "Data Platform"])
        running.add_user("rita", "rita@sso.example", "Rita Root", [ADMIN_GROUP])
        running.add_user("eve", "eve@sso.example", "Eve", ["payments"])
        yield running


@pytest.fixture(scope="module")
def app_settings(provider: TestProvider) -> AppSettings:
    """Single sign-on with the module's provider: one client per app (each has its own port)."""

    def configure(base_url: str) -> dict[str, Any]:
        client_id = f"quarterdeck-{urlsplit(base_url).port}"
        provider.add_client(client_id, SECRET, [base_url + "/auth/oidc/callback"])
        return {
            "oidc_issuer": provider.issuer,
            "oidc_client_id": client_id,
            "oidc_client_secret": SECRET,
            "oidc_admin_group": ADMIN_GROUP,
            "oidc_provider_name": "the test provider",
        }

    return configure


@pytest.fixture(autouse=True)
def behaving(provider: TestProvider) -> Iterator[None]:
    yield
    provider.misbehave = None


@pytest.fixture
def new_page(browser: Browser) -> Iterator[NewPage]:
    """Fresh browsers (each its own cookie jar), closed after the test."""
    contexts: list[BrowserContext] = []

    def make(**options: Any) -> Page:
        context = browser.new_context(viewport=DESKTOP, **options)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def session_cookie(page: Page) -> str | None:
    return next((c["value"] for c in page.context.cookies() if c["name"] == "qd_session"), None)


def me(page: Page) -> dict[str, Any]:
    """/api/v1/me as the page's own JavaScript sees it."""
    answer: dict[str, Any] = page.evaluate("async () => (await fetch('/api/v1/me')).json()")
    return answer


# ---------------------------------------------------------------- password


def test_password_sign_in_lands_on_next_and_sign_out_ends_the_session(
    anon_page: Page, live_app: LiveApp
) -> None:
    page, base = anon_page, live_app.url
    page.goto(base + "/services/payments-api")
    expect(page).to_have_url(base + "/login?next=%2Fservices%2Fpayments-api")
    expect(page.locator("h1")).to_have_text("Sign in to Quarterdeck")
    expect(page.locator("#sso-sign-in")).to_have_text("Sign in with the test provider")
    expect(page.locator("#login-error")).to_have_count(0)

    page.locator("#email").fill(live_app.member_email)
    page.locator("#password").fill("not the password at all")
    page.locator("#password-sign-in").click()
    expect(page.locator("#login-error")).to_have_text("Wrong e-mail or password.")
    expect(page).to_have_url(base + "/login")
    assert session_cookie(page) is None

    page.locator("#email").fill(live_app.member_email)
    page.locator("#password").fill(live_app.password)
    page.locator("#password-sign-in").click()
    expect(page).to_have_url(base + "/services/payments-api")
    expect(page.locator("#service-title")).to_contain_text("Payments API")
    expect(page.locator("#account-link")).to_have_text(live_app.member_email)
    raw = session_cookie(page)
    assert raw is not None
    assert me(page)["name"] == live_app.member_email

    page.locator("#sign-out").click()
    expect(page).to_have_url(base + "/login")
    expect(page.locator("#sign-in-link")).to_be_visible()
    expect(page.locator("#account-link")).to_have_count(0)
    assert session_cookie(page) is None
    page.goto(base + "/services")
    expect(page).to_have_url(base + "/login?next=%2Fservices")
    replayed = httpx.get(base + "/api/v1/me", headers={"Cookie": f"qd_session={raw}"})
    assert replayed.json()["signed_in"] is False, "the server must end the session, not only the cookie"


# ---------------------------------------------------------------- single sign-on


def start_sso(page: Page, base: str, provider: TestProvider, username: str, next_: str = "/") -> None:
    """From the sign-in page to the provider's, and back after choosing `username` there."""
    page.goto(f"{base}/login?next={next_}")
    page.locator("#sso-sign-in").click()
    expect(page).to_have_url(re.compile(re.escape(provider.issuer + "/authorize?")))
    page.select_option("#username", username)
    page.locator("#sign-in").click()


def expect_refused(page: Page, base: str, problem: str) -> None:
    """Back on the sign-in page with the problem named, and signed in nowhere."""
    expect(page).to_have_url(re.compile(re.escape(base + "/auth/oidc/callback?")))
    expect(page.locator("#login-error")).to_contain_text("Single sign-on failed")
    expect(page.locator("#login-error")).to_contain_text(problem)
    expect(page.locator("#sso-sign-in")).to_be_visible()
    expect(page.locator("#account-link")).to_have_count(0)
    assert session_cookie(page) is None
    assert me(page)["signed_in"] is False
    page.goto(base + "/account")
    expect(page).to_have_url(base + "/login?next=%2Faccount")


def test_single_sign_on_turns_groups_into_team_roles(
    anon_page: Page, live_app: LiveApp, provider: TestProvider
) -> None:
    page, base = anon_page, live_app.url
    start_sso(page, base, provider, "ana", next_="/services/payments-api")
    expect(page).to_have_url(base + "/services/payments-api")
    expect(page.locator("#account-link")).to_have_text("ana@sso.example")
    found = me(page)
    assert (found["signed_in"], found["role"]) == (True, "member")
    assert found["teams"] == {"payments": "member", "data-platform": "member"}
    expect(page.locator("#edit-service")).to_be_visible()  # payments is her team now
    expect(page.locator(".usernav a[href='/admin/users']")).to_have_count(0)

    page.locator("#account-link").click()
    expect(page).to_have_url(base + "/account")
    expect(page.locator(".entity-head")).to_contain_text("Ana Sousa")
    expect(page.locator(".entity-head")).to_contain_text("single sign-on")
    for team in ("payments", "data-platform"):
        expect(page.locator(f"li:has(a[href='/teams/{team}'])")).to_contain_text("member")


def test_single_sign_on_admin_group_makes_an_admin(
    anon_page: Page, live_app: LiveApp, provider: TestProvider
) -> None:
    page, base = anon_page, live_app.url
    start_sso(page, base, provider, "rita")
    expect(page).to_have_url(base + "/")
    expect(page.locator("#account-link")).to_have_text("rita@sso.example")
    assert me(page)["role"] == "admin"
    page.locator("#admin-menu summary").click()  # the admins' menu opens
    page.locator("#admin-menu a", has_text="Users").click()
    expect(page).to_have_url(base + "/admin/users")
    row = page.locator("tr[data-user='rita@sso.example']")
    expect(row).to_contain_text("SSO")
    expect(page.get_by_label("Role of rita@sso.example")).to_have_value("admin")
    page.locator("#admin-menu summary").click()
    page.locator("#admin-menu a", has_text="Audit").click()
    expect(page).to_have_url(base + "/admin/audit")
    expect(page.locator("#audit")).to_contain_text("rita@sso.example")


@pytest.mark.parametrize(
    ("misbehave", "problem"),
    [
        ("wrong_audience", "is meant for ['another-client']"),
        ("expired", "id_token expired at"),
    ],
)
def test_single_sign_on_refuses_an_untrustworthy_id_token(
    anon_page: Page, live_app: LiveApp, provider: TestProvider, misbehave: Misbehaviour, problem: str
) -> None:
    provider.misbehave = misbehave
    start_sso(anon_page, live_app.url, provider, "eve")
    expect_refused(anon_page, live_app.url, problem)


def test_single_sign_on_refuses_a_tampered_state(
    anon_page: Page, live_app: LiveApp, provider: TestProvider
) -> None:
    def forge_state(route: Route) -> None:
        """Let the provider answer the sign-in, then alter the state in its redirect to the callback."""
        if route.request.method != "POST":
            route.continue_()
            return
        answer = route.fetch(max_redirects=0)
        assert answer.status == 302, answer.text()
        parts = urlsplit(answer.headers["location"])
        query = [(k, "forged-" + v if k == "state" else v) for k, v in parse_qsl(parts.query)]
        route.fulfill(status=303, headers={"location": urlunsplit(parts._replace(query=urlencode(query)))})

    anon_page.route(re.compile(re.escape(provider.issuer + "/authorize")), forge_state)
    start_sso(anon_page, live_app.url, provider, "eve")
    expect(anon_page).to_have_url(re.compile(r"[?&]state=forged-"))
    expect_refused(anon_page, live_app.url, "state does not match")


# ---------------------------------------------------------------- buttons


def test_edit_button_only_for_those_who_may_edit(new_page: NewPage, live_app: LiveApp) -> None:
    base = live_app.url
    member = new_page()
    sign_in(member, base, live_app.add_user("dev@payments.example", teams={"payments": "member"}))
    member.goto(base + "/services/payments-api")
    member.locator("#edit-service").click()
    expect(member).to_have_url(base + "/services/payments-api/edit")
    expect(member.locator("#field-title")).to_have_value("Payments API")
    expect(member.locator("#field-owner")).to_have_value("payments")
    expect(member.locator("#save-service")).to_be_visible()
    member.goto(base + "/services/checkout-api")
    expect(member.locator("#service-title")).to_contain_text("Checkout API")
    expect(member.locator("#edit-service")).to_have_count(0)
    refused = member.goto(base + "/services/checkout-api/edit")
    assert refused is not None and refused.status == 403
    expect(member.locator("main")).to_contain_text("only members of team 'checkout'")

    viewer = new_page()
    email = live_app.add_user("viewer@payments.example", role=GlobalRole.VIEWER, teams={"payments": "member"})
    sign_in(viewer, base, email)
    viewer.goto(base + "/services/payments-api")  # a viewer, even in the owning team
    expect(viewer.locator("#service-title")).to_contain_text("Payments API")
    expect(viewer.locator("#edit-service")).to_have_count(0)
    refused = viewer.goto(base + "/services/payments-api/edit")
    assert refused is not None and refused.status == 403
    expect(viewer.locator("main")).to_contain_text("viewers may only read")


# ---------------------------------------------------------------- stored XSS

P_IMG = '<img src=x onerror="window.__xss=1">'
P_SCRIPT = "<script>window.__xss=1</script>"
P_SVG = '"><svg onload=window.__xss=1>'
P_JS = "javascript:window.__xss=1"
P_WORD = '"><svg/onload=window.__xss=1>'
"""For fields that take one word (no spaces): it breaks out of an attribute, if it can."""
P_AREA = '</textarea><img src=x onerror="window.__xss=1">'

TITLE_A = "Zebrafish API " + P_IMG
DESC_A = f"Feeds {P_SCRIPT} and {P_SVG} via {P_JS}"
LINK_URL = "https://docs.example/" + P_WORD
IMAGE = "registry.example/zebrafish" + P_WORD
TITLE_B = "Zebrafish worker " + P_SVG
DESC_B = f"{P_AREA} {P_SCRIPT} {P_JS}"
OWNER_B = P_WORD + "@evil.example"
TEAM_NAME = "Zebrafish team " + P_SCRIPT
TEAM_DESC = f"{P_IMG} {P_SVG}"
TEAM_EMAIL = P_WORD + "@zebrafish.example"
PERSON_NAME = "Zed " + P_IMG
PERSON_TITLE = P_SCRIPT
TOKEN_NAME = "ci " + P_IMG
USER_NAME = "Mallory " + P_SVG
ROLE_TEAM = P_IMG
"""A team slug typed into the admin users page: nothing checks it is a slug."""
ADMIN = "admin@xss.example"

INJECTED = "img[onerror], [onload], script:not([src]), a[href^='javascript:' i]"
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective));
"""


class Inert:
    """What a page must not do: run a payload, need the CSP to stop one, open a dialog,
    fetch a payload's image, or carry an injected element; and what it must: show each payload as text."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.csp_messages: list[str] = []
        self.bait: list[str] = []
        page.add_init_script(WATCH_CSP)
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("request", self._request)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.csp_messages.append(message.text)

    def _request(self, request: Request) -> None:
        if urlsplit(request.url).path.endswith("/x"):
            self.bait.append(request.url)

    def check(self, shown: list[tuple[str, str]]) -> None:
        page = self.page
        where = page.url
        for selector, text in shown:
            element = page.locator(selector).first
            expect(element).to_be_visible()
            content = element.text_content() or ""
            assert text in content, f"{where}: {selector} shows {content!r}, not the text {text!r}"
        assert page.evaluate("typeof window.__xss") == "undefined", f"{where}: a payload ran"
        assert page.evaluate("window.__csp") == [], f"{where}: only the CSP stopped a payload"
        assert page.locator(INJECTED).count() == 0, f"{where}: a payload became an element"
        assert self.csp_messages == [], where
        assert self.dialogs == [], where
        assert self.bait == [], where


def api(page: Page, method: str, url: str, body: dict[str, Any], expected: int = 200) -> dict[str, Any]:
    """A call to the JSON API with the page's session and its CSRF token, as the page's scripts make it."""
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content")
    assert csrf
    answer = page.request.fetch(
        url,
        method=method,
        data=body,
        headers={"X-CSRF-Token": csrf, "Accept": "application/json"},
    )
    assert answer.status == expected, answer.text()
    result: dict[str, Any] = answer.json()
    return result


def plant_payloads(page: Page, base: str, inert: Inert) -> None:
    """As an admin, every free-text field within reach gets a payload: by the API and by forms."""
    page.goto(base + "/")
    api(
        page,
        "POST",
        base + "/api/v1/teams",
        {
            "slug": "zebrafish-team",
            "name": TEAM_NAME,
            "description": TEAM_DESC,
            "chat": P_SVG,
            "email": TEAM_EMAIL,
            "links": [{"kind": "chat", "url": "https://chat.example/zebrafish", "title": P_IMG}],
            "members": [{"person": P_SVG, "role": "member"}],
        },
        201,
    )
    api(
        page,
        "POST",
        base + "/api/v1/people",
        {
            "email": "zed@zebrafish.example",
            "name": PERSON_NAME,
            "title": PERSON_TITLE,
            "chat": P_SVG,
            "teams": ["zebrafish-team"],
        },
        201,
    )
    for slug in ("zebrafish-api", "zebrafish-worker"):
        api(page, "POST", base + "/api/v1/services", {"slug": slug, "owner": "zebrafish-team"}, 201)
    service_a: dict[str, Any] = {
        "slug": "zebrafish-api",
        "title": TITLE_A,
        "description": DESC_A,
        "lifecycle": P_WORD,
        "tier": 3,
        "owner": "zebrafish-team",
        "contacts": [{"role": "tech-lead", "person": P_IMG}],
        "links": [{"kind": "docs", "url": LINK_URL, "title": P_IMG}],
        "image": IMAGE,
        "annotations": {"xss.example/note": P_SVG},
        "custom": {"notes": P_SCRIPT},
    }
    api(page, "PUT", base + "/api/v1/services/zebrafish-api", service_a)
    javascript_link = {**service_a, "links": [{"kind": "docs", "url": P_JS, "title": "run me"}]}
    api(page, "PUT", base + "/api/v1/services/zebrafish-api", javascript_link, 422)

    page.goto(base + "/services/zebrafish-worker")
    page.locator("#edit-service").click()
    page.locator("#field-title").fill(TITLE_B)
    page.locator("#field-description").fill(DESC_B)
    page.locator("#field-lifecycle").fill(P_SCRIPT)
    page.locator("#field-owner").fill(OWNER_B)
    page.locator("#field-system").fill(P_JS)
    page.locator("#save-service").click()
    expect(page.locator("#edit-errors")).to_contain_text("system")  # not a slug: the form comes back
    inert.check([("#edit-errors", "system")])
    for field, value in [("title", TITLE_B), ("description", DESC_B), ("owner", OWNER_B), ("system", P_JS)]:
        expect(page.locator(f"#field-{field}")).to_have_value(value)
    page.locator("#field-system").fill("")
    page.locator("#save-service").click()
    expect(page).to_have_url(base + "/services/zebrafish-worker")

    page.goto(base + "/account")
    page.locator("#new-token-form input[name=name]").fill(TOKEN_NAME)
    page.locator("#new-token-form button[type=submit]").click()
    inert.check([("#new-token h2", TOKEN_NAME), ("#tokens", TOKEN_NAME)])

    page.goto(base + "/admin/users")
    page.locator("#add-user input[name=email]").fill("mallory@xss.example")
    page.locator("#add-user input[name=name]").fill(USER_NAME)
    page.locator("#add-user button[type=submit]").click()
    row = page.locator("tr[data-user='mallory@xss.example']")
    row.locator("input[name=team]").fill(ROLE_TEAM)
    row.locator("button", has_text="Set").click()
    # not a team slug: refused, and the refusal shows the payload as text
    expect(page.locator("main h1")).to_have_text("Something is wrong")
    inert.check([("main", ROLE_TEAM)])


def tour(page: Page, base: str, inert: Inert) -> None:
    """Every page that shows a payload, each checked in the browser."""
    page.goto(base + "/services/zebrafish-api")
    assert TITLE_A in page.title()
    inert.check(
        [
            ("#service-title", TITLE_A),
            (".description", DESC_A),
            ("#contacts", P_IMG),
            (".links a", P_IMG),
            ("main", P_WORD),
            ("main", IMAGE),
            ("main", P_SCRIPT),
            ("main", P_SVG),
        ]
    )
    assert page.locator(".links a").first.get_attribute("href") == LINK_URL

    page.goto(base + "/services/zebrafish-worker")
    inert.check(
        [
            ("#service-title", TITLE_B),
            (".description", DESC_B),
            ("#owner", OWNER_B),
            (".badge.lc", P_SCRIPT),
        ]
    )
    page.goto(base + "/services/zebrafish-worker/edit")
    inert.check([("h1", "Edit " + TITLE_B), ("#field-description", DESC_B)])
    expect(page.locator("#field-title")).to_have_value(TITLE_B)
    expect(page.locator("#field-owner")).to_have_value(OWNER_B)

    page.goto(base + "/services?q=zebrafish")
    inert.check(
        [
            ("#service-count", "2 services"),
            ("main table", TITLE_A),
            ("main table", TITLE_B),
            ("main table", P_WORD),
            ("main table", P_SCRIPT),
            ("main table", OWNER_B),
        ]
    )

    page.locator("#global-search").fill("zebrafish")
    expect(page.locator("#live-results a").first).to_be_visible()
    inert.check([("#live-results", TITLE_A), ("#live-results", TEAM_NAME)])

    page.goto(base + "/search?q=zebrafish")
    inert.check([("#search-results", TITLE_A), ("#search-results", TITLE_B), ("#search-results", TEAM_NAME)])

    page.goto(base + "/search?q=" + quote(P_SVG))  # reflected, not stored: the same rule
    inert.check([("h1", P_SVG)])
    missing = page.goto(base + "/services/" + quote(P_IMG))
    assert missing is not None and missing.status == 404
    inert.check([("main", P_IMG)])

    page.goto(base + "/")
    page.locator("#home-search").fill("zebrafish")
    expect(page.locator("#home-results a").first).to_be_visible()
    inert.check([("#home-results", TITLE_A), ("#home-results", TITLE_B)])

    page.goto(base + "/teams/zebrafish-team")
    assert TEAM_NAME in page.title()
    inert.check(
        [
            ("#team-name", TEAM_NAME),
            (".description", TEAM_DESC),
            ("#team-channel", P_SVG),
            ("main a[href^='mailto:']", TEAM_EMAIL),
            ("#members", PERSON_NAME),
            ("#members", PERSON_TITLE),
            ("#members", P_SVG),
            (".links a", P_IMG),
            ("#team-services", TITLE_A),
        ]
    )
    assert page.locator("main a[href^='mailto:']").first.get_attribute("href") == "mailto:" + TEAM_EMAIL

    page.goto(base + "/people/zed")
    inert.check([("#person-name", PERSON_NAME), (".slug", PERSON_TITLE), ("main", P_SVG)])

    page.goto(base + "/account")
    inert.check([("#tokens", TOKEN_NAME)])

    page.goto(base + "/admin/users")
    inert.check([("tr[data-user='mallory@xss.example']", USER_NAME)])
    assert page.locator("tr[data-user='mallory@xss.example'] .tag").count() == 0

    page.goto(f"{base}/admin/audit?actor={ADMIN}")
    shown = [TITLE_A, DESC_A, TITLE_B, DESC_B, OWNER_B, TEAM_NAME, PERSON_NAME, USER_NAME]
    inert.check([("#audit", text) for text in shown])  # each changed value, as text in the diff


def test_stored_xss_is_rendered_inert(new_page: NewPage, live_app: LiveApp) -> None:
    base = live_app.url
    admin = new_page()
    sign_in(admin, base, live_app.add_user(ADMIN, role=GlobalRole.ADMIN))
    inert = Inert(admin)
    plant_payloads(admin, base, inert)
    tour(admin, base, inert)


def test_the_xss_checks_catch_an_injected_payload(new_page: NewPage, live_app: LiveApp) -> None:
    """The control: markup that did get into a page is caught (and only the CSP stopped it)."""
    page = new_page()
    inert = Inert(page)
    page.goto(live_app.url + "/login")
    inject = "(html) => document.querySelector('main').insertAdjacentHTML('beforeend', html)"
    with page.expect_console_message(lambda m: "Content Security Policy" in m.text):
        page.evaluate(inject, P_IMG)
    assert page.evaluate("window.__csp") == ["script-src-attr"]
    assert inert.csp_messages
    expect(page.locator(INJECTED)).to_have_count(1)
    with pytest.raises(AssertionError, match="only the CSP stopped a payload"):
        inert.check([])
