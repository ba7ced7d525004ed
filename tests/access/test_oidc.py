"""OidcClient against a real OpenID Provider (tests/oidc_provider.py) on a loopback port, driven by httpx.

The "browser" here is a plain httpx client that GETs the authorization URL, posts the sign-in form
and reads `code` and `state` from the redirect, as the browser test later does with Chromium.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from quarterdeck.access.oidc import AuthRequest, OidcClient, OidcIdentity, OidcProvider
from quarterdeck.clock import FrozenClock
from quarterdeck.errors import Forbidden, Invalid, Unavailable
from quarterdeck.integrations.http import make_client
from tests.oidc_provider import Misbehaviour, TestProvider, oidc_provider
from tests.pg_cluster import free_port

REDIRECT = "http://127.0.0.1:8080/auth/oidc/callback"
SECRET = "s3cret:with/odd&chars"


@pytest.fixture(scope="module")
def provider() -> Iterator[TestProvider]:
    with oidc_provider() as running:
        running.add_client("quarterdeck", SECRET, [REDIRECT])
        running.add_client("quarterdeck-public", None, [REDIRECT])
        running.add_user("alice", "alice@example.com", "Alice Liddell", ["platform", "sre"])
        running.add_user("bob", "bob@example.com", "Bob", [])
        running.add_user("carol", "carol@example.com", "Carol", ["qa"], email_verified=False)
        running.add_user("dave", None, "Dave", ["qa"])
        yield running


@pytest.fixture(autouse=True)
def behaving(provider: TestProvider) -> Iterator[None]:
    yield
    provider.misbehave = None
    provider.profile_in_id_token = True


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC))


def make_oidc(provider: TestProvider, clock: FrozenClock, **overrides: Any) -> OidcClient:
    settings = OidcProvider(issuer=provider.issuer, client_id="quarterdeck", client_secret=SECRET)
    return OidcClient(replace(settings, **overrides), clock=clock)


@pytest.fixture
def oidc(provider: TestProvider, clock: FrozenClock) -> Iterator[OidcClient]:
    with make_oidc(provider, clock) as client:
        yield client


def sign_in(request: AuthRequest, username: str) -> tuple[str, str]:
    """Play the browser: open the authorization URL, submit the form, return the redirect's code and state."""
    with httpx.Client(follow_redirects=False) as browser:
        page = browser.get(request.url)
        assert page.status_code == 200, page.text
        assert 'id="username"' in page.text and 'id="sign-in"' in page.text
        found = re.search(r'<form method="post" action="([^"]+)"', page.text)
        assert found is not None
        answer = browser.post(
            urljoin(request.url, html.unescape(found.group(1))), data={"username": username}
        )
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    query = parse_qs(urlsplit(location).query)
    return query["code"][0], query["state"][0]


def complete(oidc: OidcClient, username: str = "alice") -> OidcIdentity:
    request = oidc.begin(REDIRECT)
    code, state = sign_in(request, username)
    return oidc.finish(redirect_uri=REDIRECT, code=code, returned_state=state, expected=request)


# -- good sign-ins -----------------------------------------------------------------------------------


def test_good_sign_in_returns_who_signed_in(oidc: OidcClient, provider: TestProvider) -> None:
    identity = complete(oidc)

    assert identity == OidcIdentity(
        issuer=provider.issuer,
        subject="alice",
        email="alice@example.com",
        name="Alice Liddell",
        groups=("platform", "sre"),
    )


def test_public_client_signs_in_with_pkce_alone(provider: TestProvider, clock: FrozenClock) -> None:
    with make_oidc(provider, clock, client_id="quarterdeck-public", client_secret=None) as public:
        identity = complete(public, "bob")

    assert (identity.subject, identity.email, identity.groups) == ("bob", "bob@example.com", ())


def test_claims_missing_from_the_id_token_come_from_userinfo(
    oidc: OidcClient, provider: TestProvider
) -> None:
    provider.profile_in_id_token = False

    identity = complete(oidc)

    assert (identity.email, identity.name, identity.groups) == (
        "alice@example.com",
        "Alice Liddell",
        ("platform", "sre"),
    )


def test_a_single_string_claim_is_one_group(provider: TestProvider, clock: FrozenClock) -> None:
    with make_oidc(provider, clock, groups_claim="preferred_username") as client:
        identity = complete(client)

    assert identity.groups == ("alice",)


def test_begin_asks_for_the_code_flow_with_s256_pkce(oidc: OidcClient, provider: TestProvider) -> None:
    first, second = oidc.begin(REDIRECT), oidc.begin(REDIRECT)

    query = {key: values[0] for key, values in parse_qs(urlsplit(first.url).query).items()}
    digest = hashlib.sha256(first.code_verifier.encode()).digest()
    assert first.url.startswith(provider.issuer + "/authorize?")
    assert query == {
        "response_type": "code",
        "client_id": "quarterdeck",
        "redirect_uri": REDIRECT,
        "scope": "openid email profile groups",
        "state": first.state,
        "nonce": first.nonce,
        "code_challenge": base64.urlsafe_b64encode(digest).rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }
    for secret in (first.state, first.nonce, first.code_verifier):
        assert len(secret) >= 43 and re.fullmatch(r"[A-Za-z0-9_-]+", secret)
    assert len({first.state, first.nonce, first.code_verifier, second.state, second.nonce}) == 5


def test_discovery_is_fetched_once_per_client(provider: TestProvider, clock: FrozenClock) -> None:
    seen: list[str] = []
    with make_client() as http:
        http.event_hooks["request"] = [lambda request: seen.append(request.url.path)]
        client = OidcClient(OidcProvider(provider.issuer, "quarterdeck", SECRET), clock=clock, http=http)
        client.begin(REDIRECT)
        client.begin(REDIRECT)
        assert client.discovery()["issuer"] == provider.issuer

    assert seen == ["/.well-known/openid-configuration"]


def test_rotated_keys_are_fetched_again_once(oidc: OidcClient, provider: TestProvider) -> None:
    complete(oidc)
    fetched = provider.jwks_requests
    provider.rotate_keys()

    identity = complete(oidc)

    assert identity.subject == "alice"
    assert provider.jwks_requests == fetched + 1


def test_expiry_tolerates_a_minute_of_clock_skew(oidc: OidcClient, clock: FrozenClock) -> None:
    request = oidc.begin(REDIRECT)
    code, state = sign_in(request, "alice")
    clock.at += timedelta(hours=1, seconds=30)  # the id_token lives an hour

    identity = oidc.finish(redirect_uri=REDIRECT, code=code, returned_state=state, expected=request)

    assert identity.subject == "alice"


# -- refusals ----------------------------------------------------------------------------------------


def test_bad_state_is_refused_before_any_network_call(provider: TestProvider, clock: FrozenClock) -> None:
    with make_oidc(provider, clock) as oidc:
        request = oidc.begin(REDIRECT)
        code, _ = sign_in(request, "alice")
    calls: list[httpx.Request] = []

    def record(call: httpx.Request) -> httpx.Response:
        calls.append(call)
        return httpx.Response(500)

    settings = OidcProvider(provider.issuer, "quarterdeck", SECRET)
    with (
        httpx.Client(transport=httpx.MockTransport(record)) as offline,
        OidcClient(settings, clock=clock, http=offline) as fresh,
        pytest.raises(Forbidden) as raised,
    ):
        fresh.finish(redirect_uri=REDIRECT, code=code, returned_state="forged", expected=request)

    assert raised.value.code == "oidc.bad_state"
    assert "state" in raised.value.message
    assert calls == []


def test_provider_enforces_pkce(oidc: OidcClient) -> None:
    request = oidc.begin(REDIRECT)
    code, state = sign_in(request, "alice")
    impostor = replace(request, code_verifier=oidc.begin(REDIRECT).code_verifier)

    with pytest.raises(Forbidden) as raised:
        oidc.finish(redirect_uri=REDIRECT, code=code, returned_state=state, expected=impostor)

    assert raised.value.code == "oidc.token_refused"
    assert raised.value.details["error"] == "invalid_grant"
    assert "Code challenge failed" in raised.value.message


def test_a_code_is_redeemed_only_once(oidc: OidcClient) -> None:
    request = oidc.begin(REDIRECT)
    code, state = sign_in(request, "alice")
    oidc.finish(redirect_uri=REDIRECT, code=code, returned_state=state, expected=request)

    with pytest.raises(Forbidden) as raised:
        oidc.finish(redirect_uri=REDIRECT, code=code, returned_state=state, expected=request)

    assert (raised.value.code, raised.value.details["error"]) == ("oidc.token_refused", "invalid_grant")


def test_wrong_client_secret_is_refused(provider: TestProvider, clock: FrozenClock) -> None:
    with make_oidc(provider, clock, client_secret="wrong") as oidc:
        request = oidc.begin(REDIRECT)
        code, state = sign_in(request, "alice")
        with pytest.raises(Forbidden) as raised:
            oidc.finish(redirect_uri=REDIRECT, code=code, returned_state=state, expected=request)

    assert (raised.value.code, raised.value.details["error"]) == ("oidc.token_refused", "invalid_client")


@pytest.mark.parametrize(
    ("misbehaviour", "code", "words"),
    [
        ("wrong_audience", "oidc.wrong_audience", "another-client"),
        ("extra_audience", "oidc.wrong_audience", "authorized for party None"),
        ("wrong_issuer", "oidc.wrong_issuer", "/elsewhere"),
        ("expired", "oidc.expired", "expired at"),
        ("bad_signature", "oidc.bad_signature", "signature"),
        ("unknown_key", "oidc.bad_signature", "does not publish"),
        ("bad_nonce", "oidc.bad_nonce", "nonce"),
    ],
)
def test_untrustworthy_id_tokens_are_refused(
    oidc: OidcClient, provider: TestProvider, misbehaviour: Misbehaviour, code: str, words: str
) -> None:
    complete(oidc)  # the JWKS is cached now
    fetched = provider.jwks_requests
    provider.misbehave = misbehaviour

    with pytest.raises(Forbidden) as raised:
        complete(oidc)

    assert raised.value.code == code
    assert words in raised.value.message
    # only an unknown kid is worth fetching the JWKS again for, and only once
    assert provider.jwks_requests == fetched + (misbehaviour == "unknown_key")


def test_an_id_token_past_its_expiry_by_our_clock_is_refused(oidc: OidcClient, clock: FrozenClock) -> None:
    request = oidc.begin(REDIRECT)
    code, state = sign_in(request, "alice")
    clock.at += timedelta(hours=1, seconds=61)

    with pytest.raises(Forbidden) as raised:
        oidc.finish(redirect_uri=REDIRECT, code=code, returned_state=state, expected=request)

    assert raised.value.code == "oidc.expired"


def test_an_id_token_from_the_future_is_refused(oidc: OidcClient, clock: FrozenClock) -> None:
    request = oidc.begin(REDIRECT)
    code, state = sign_in(request, "alice")
    clock.at -= timedelta(minutes=5)

    with pytest.raises(Forbidden) as raised:
        oidc.finish(redirect_uri=REDIRECT, code=code, returned_state=state, expected=request)

    assert raised.value.code == "oidc.issued_in_future"


@pytest.mark.parametrize(("username", "words"), [("carol", "not verified"), ("dave", "no email")])
@pytest.mark.parametrize("in_id_token", [True, False])
def test_sign_in_needs_a_verified_email(
    oidc: OidcClient, provider: TestProvider, username: str, words: str, in_id_token: bool
) -> None:
    provider.profile_in_id_token = in_id_token

    with pytest.raises(Forbidden) as raised:
        complete(oidc, username)

    assert raised.value.code == "oidc.no_email"
    assert words in raised.value.message


def test_discovery_naming_another_issuer_is_invalid(provider: TestProvider, clock: FrozenClock) -> None:
    with make_oidc(provider, clock, issuer=provider.issuer + "/") as oidc, pytest.raises(Invalid) as raised:
        oidc.begin(REDIRECT)

    assert raised.value.code == "oidc.issuer_mismatch"
    assert repr(provider.issuer) in raised.value.message


def test_provider_down_is_unavailable(clock: FrozenClock) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    with (
        OidcClient(OidcProvider(nobody, "quarterdeck", SECRET), clock=clock) as oidc,
        pytest.raises(Unavailable) as raised,
    ):
        oidc.begin(REDIRECT)

    assert raised.value.code == "oidc.unreachable"


def test_provider_going_down_mid_sign_in_is_unavailable(clock: FrozenClock) -> None:
    with oidc_provider() as short_lived:
        short_lived.add_client("quarterdeck", SECRET, [REDIRECT])
        short_lived.add_user("alice", "alice@example.com", "Alice", [])
        oidc = OidcClient(OidcProvider(short_lived.issuer, "quarterdeck", SECRET), clock=clock)
        request = oidc.begin(REDIRECT)
        code, state = sign_in(request, "alice")

    with oidc, pytest.raises(Unavailable) as raised:
        oidc.finish(redirect_uri=REDIRECT, code=code, returned_state=state, expected=request)

    assert raised.value.code == "oidc.unreachable"
