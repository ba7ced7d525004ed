"""A small but real OpenID Provider for tests, assembled from Authlib's server components.

The protocol work is Authlib's: `AuthorizationServer` with an `AuthorizationCodeGrant`, the
`OpenIDCode` extension (id_tokens, nonce replay checks), `CodeChallenge` (PKCE, S256 only, required),
`UserInfoEndpoint` behind a `ResourceProtector` with a `BearerTokenValidator`, and
`OpenIDProviderMetadata` to validate the discovery document. Clients, users, codes and tokens live
in memory; RS256 keys are generated at start.

Authlib ships server integrations only for Flask and Django, so this file carries the small adapter
they have (compare `authlib.integrations.flask_oauth2.requests`): `_StarletteRequest` is an
`OAuth2Request` whose payload is the query string merged with the urlencoded form, read once in the
async route; `_Server.handle_response` turns Authlib's `(status, body, headers)` into a Starlette
response. The app is served by uvicorn on a free loopback port in a background thread.

`/authorize` shows a sign-in form without JavaScript (a `<select id="username">`, a
`<button id="sign-in">`) so a headless browser can sign in by clicking. Setting `misbehave` makes
the provider issue one kind of untrustworthy id_token, for the relying party to refuse.
"""

from __future__ import annotations

import html
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import urlencode

import uvicorn
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    AuthorizationServer,
    ClientMixin,
    InvalidRequestError,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
    ResourceProtector,
    TokenMixin,
    grants,
    list_to_scope,
    scope_to_list,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import CodeChallenge  # type: ignore[import-untyped]
from authlib.oidc.core import AuthorizationCodeMixin, UserInfo, UserInfoEndpoint  # type: ignore[import-untyped]
from authlib.oidc.core.grants import OpenIDCode  # type: ignore[import-untyped]
from authlib.oidc.discovery import OpenIDProviderMetadata  # type: ignore[import-untyped]
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tests.pg_cluster import free_port

__all__ = ["Misbehaviour", "TestProvider", "oidc_provider"]

SCOPES = ("openid", "email", "profile", "groups")
CODE_LIFETIME = 600
TOKEN_LIFETIME = 3600

#: "wrong_audience": aud is another client; "extra_audience": aud adds another client, with no azp;
#: "wrong_issuer": iss is not this provider; "expired": exp an hour ago; "bad_signature": signed with
#: a key not in the JWKS under the published kid; "unknown_key": signed with a key whose kid is not
#: published; "bad_nonce": the nonce is not the one in the authorization request.
Misbehaviour = Literal[
    "wrong_audience", "extra_audience", "wrong_issuer", "expired", "bad_signature", "unknown_key", "bad_nonce"
]


# -- in-memory models (Authlib's mixins) -------------------------------------------------------------


@dataclass
class _Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str | None
    redirect_uris: list[str]
    client_metadata: dict[str, Any] = field(default_factory=dict)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        return str(list_to_scope([s for s in scope_to_list(scope) or [] if s in SCOPES]))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint == "token":  # one registered method, as RFC 7591 token_endpoint_auth_method
            return method == ("client_secret_basic" if self.client_secret is not None else "none")
        return True

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass(frozen=True)
class _User:
    username: str
    email: str | None
    name: str
    groups: tuple[str, ...]
    email_verified: bool = True

    def get_user_id(self) -> str:
        return self.username


@dataclass
class _AuthorizationCode(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: _User
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time


@dataclass
class _Token(TokenMixin):  # type: ignore[misc]
    access_token: str
    client: _Client
    user: _User
    scope: str
    expires_at: float

    def check_client(self, client: _Client) -> bool:
        return client.client_id == self.client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int(self.expires_at - time.time())

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return False

    def get_user(self) -> _User:
        return self.user

    def get_client(self) -> _Client:
        return self.client


# -- the Starlette adapter ---------------------------------------------------------------------------


class _Payload(OAuth2Payload):  # type: ignore[misc]
    """Query string and form together, as Flask's `request.values` gives them to Authlib."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._data: dict[str, str] = {}
        self._datalist: dict[str, list[str]] = {}
        for key, value in pairs:
            self._data.setdefault(key, value)
            self._datalist.setdefault(key, []).append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class _StarletteRequest(OAuth2Request):  # type: ignore[misc]
    def __init__(self, request: Request, form: list[tuple[str, str]]) -> None:
        super().__init__(method=request.method, uri=str(request.url), headers=request.headers)
        query = list(request.query_params.multi_items())
        self._args = dict(query)
        self._form = dict(form)
        self.payload = _Payload(query + form)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


async def _oauth2_request(request: Request) -> _StarletteRequest:
    form: list[tuple[str, str]] = []
    if request.method == "POST":
        async with request.form() as data:
            form = [(key, value) for key, value in data.multi_items() if isinstance(value, str)]
    return _StarletteRequest(request, form)


class _Server(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, provider: TestProvider) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.provider = provider
        self.register_token_generator(
            "default",
            BearerTokenGenerator(lambda **_: secrets.token_urlsafe(32), expires_generator=TOKEN_LIFETIME),
        )

    def query_client(self, client_id: str) -> _Client | None:
        return self.provider.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        self.provider.tokens[token["access_token"]] = _Token(
            access_token=token["access_token"],
            client=request.client,
            user=request.user,
            scope=token.get("scope", ""),
            expires_at=time.time() + token.get("expires_in", TOKEN_LIFETIME),
        )

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request  # already adapted by the route, which had to await the form

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        content = json.dumps(body) if isinstance(body, dict) else body
        return Response(content, status_code=status, headers=dict(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass


# -- grants and endpoints ----------------------------------------------------------------------------


class _CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "none"]
    server: _Server

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        self.server.provider.codes[code] = _AuthorizationCode(
            code=code,
            client_id=request.client.client_id,
            redirect_uri=data.get("redirect_uri", ""),
            scope=request.scope,
            user=request.user,
            nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            auth_time=int(time.time()),
            expires_at=time.time() + CODE_LIFETIME,
        )

    def query_authorization_code(self, code: str, client: _Client) -> _AuthorizationCode | None:
        found = self.server.provider.codes.get(code)
        if found is None or found.client_id != client.client_id or time.time() >= found.expires_at:
            return None
        return found

    def delete_authorization_code(self, authorization_code: _AuthorizationCode) -> None:
        self.server.provider.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: _AuthorizationCode) -> _User:
        return authorization_code.user


class _S256Challenge(CodeChallenge):  # type: ignore[misc]
    """PKCE as a careful provider does it: a challenge is required, and only S256."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]

    def validate_code_challenge(self, grant: _CodeGrant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE with code_challenge_method=S256 is required.")
        super().validate_code_challenge(grant, redirect_uri)


def _claims_for(user: _User, scope: str) -> dict[str, Any]:
    scopes = scope_to_list(scope) or []
    claims: dict[str, Any] = {"sub": user.username}
    if "email" in scopes and user.email is not None:
        claims.update(email=user.email, email_verified=user.email_verified)
    if "profile" in scopes:
        claims.update(name=user.name, preferred_username=user.username)
    if "groups" in scopes:
        claims["groups"] = list(user.groups)
    return claims


class _OpenIDCode(OpenIDCode):  # type: ignore[misc]
    def __init__(self, provider: TestProvider) -> None:
        super().__init__(require_nonce=True)
        self.provider = provider

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        client_id = request.payload.client_id
        return any(c.nonce == nonce and c.client_id == client_id for c in self.provider.codes.values())

    def resolve_client_private_key(self, client: _Client) -> RSAKey:
        if self.provider.misbehave in ("bad_signature", "unknown_key"):
            return self.provider.rogue_key
        return self.provider.signing_key

    def get_encode_header(self, client: _Client) -> dict[str, Any]:
        key = (
            self.provider.rogue_key if self.provider.misbehave == "unknown_key" else self.provider.signing_key
        )
        return {"alg": "RS256", "kid": key.kid}

    def get_client_claims(self, client: _Client) -> dict[str, Any]:
        misbehave = self.provider.misbehave
        audience = ["another-client"] if misbehave == "wrong_audience" else [client.client_id]
        if misbehave == "extra_audience":
            audience.append("another-client")
        issuer = self.provider.issuer + "/elsewhere" if misbehave == "wrong_issuer" else self.provider.issuer
        claims: dict[str, Any] = {"iss": issuer, "aud": audience}
        if self.provider.misbehave == "expired":
            now = int(time.time())
            claims.update(
                iat=now - 2 * TOKEN_LIFETIME, exp=now - TOKEN_LIFETIME, auth_time=now - 2 * TOKEN_LIFETIME
            )
        return claims

    def get_authorization_code_claims(self, authorization_code: _AuthorizationCode) -> dict[str, Any]:
        claims: dict[str, Any] = super().get_authorization_code_claims(authorization_code)
        if self.provider.misbehave == "bad_nonce" and "nonce" in claims:
            claims["nonce"] = "not-" + claims["nonce"]
        return claims

    def generate_user_info(self, user: _User, scope: str) -> UserInfo:
        if not self.provider.profile_in_id_token:
            return UserInfo(sub=user.username)
        return UserInfo(_claims_for(user, scope))


_CURRENT: ContextVar[OAuth2Request] = ContextVar("current_oauth2_request")


class _BearerValidator(BearerTokenValidator):  # type: ignore[misc]
    def __init__(self, provider: TestProvider) -> None:
        super().__init__()
        self.provider = provider

    def authenticate_token(self, token_string: str) -> _Token | None:
        return self.provider.tokens.get(token_string)


class _ResourceProtector(ResourceProtector):  # type: ignore[misc]
    """`UserInfoEndpoint` asks for `acquire_token(scope)` without a request, as Flask's does."""

    def acquire_token(self, scopes: str) -> _Token:
        token: _Token = self.validate_request(scope_to_list(scopes), _CURRENT.get())
        return token


class _UserInfoEndpoint(UserInfoEndpoint):  # type: ignore[misc]
    def __init__(self, provider: TestProvider, protector: _ResourceProtector) -> None:
        super().__init__(resource_protector=protector)
        self.provider = provider

    def __call__(self, request: OAuth2Request) -> Any:
        reset = _CURRENT.set(request)
        try:
            return super().__call__(request)
        finally:
            _CURRENT.reset(reset)

    def generate_user_info(self, user: _User, scope: str) -> UserInfo:
        return UserInfo(_claims_for(user, scope))

    def get_issuer(self) -> str:
        return self.provider.issuer

    def resolve_private_key(self) -> KeySet:
        return KeySet([self.provider.signing_key])


def _new_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, auto_kid=True)


# -- the provider ------------------------------------------------------------------------------------


class TestProvider:
    """An OpenID Provider on `issuer` (http://127.0.0.1:PORT). Register clients and users, then sign in."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, port: int) -> None:
        self.issuer = f"http://127.0.0.1:{port}"
        self.port = port
        self.clients: dict[str, _Client] = {}
        self.users: dict[str, _User] = {}
        self.codes: dict[str, _AuthorizationCode] = {}
        self.tokens: dict[str, _Token] = {}
        self.misbehave: Misbehaviour | None = None
        #: False: the id_token carries only `sub`; email, name and groups come from /userinfo.
        self.profile_in_id_token = True
        #: How often /jwks was fetched (relying parties should cache it).
        self.jwks_requests = 0
        self.published_keys: list[RSAKey] = [_new_key()]
        self.rogue_key = _new_key()
        self.server = _Server(self)
        self.server.register_grant(_CodeGrant, [_S256Challenge(required=True), _OpenIDCode(self)])
        protector = _ResourceProtector()
        protector.register_token_validator(_BearerValidator(self))
        self.server.register_endpoint(_UserInfoEndpoint(self, protector))
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery, methods=["GET"]),
                Route("/jwks", self._jwks, methods=["GET"]),
                Route("/authorize", self._authorize, methods=["GET", "POST"]),
                Route("/token", self._token, methods=["POST"]),
                Route("/userinfo", self._userinfo, methods=["GET", "POST"]),
            ]
        )

    @property
    def signing_key(self) -> RSAKey:
        return self.published_keys[-1]

    def add_client(self, client_id: str, client_secret: str | None, redirect_uris: list[str]) -> None:
        """Register a client; `client_secret=None` makes it public (PKCE only, no client authentication)."""
        self.clients[client_id] = _Client(client_id, client_secret, list(redirect_uris))

    def add_user(
        self, username: str, email: str | None, name: str, groups: list[str], *, email_verified: bool = True
    ) -> None:
        self.users[username] = _User(username, email, name, tuple(groups), email_verified)

    def rotate_keys(self) -> None:
        """Start signing with a new key, still publishing the old one."""
        self.published_keys.append(_new_key())

    def metadata(self) -> dict[str, Any]:
        metadata = OpenIDProviderMetadata(
            issuer=self.issuer,
            authorization_endpoint=f"{self.issuer}/authorize",
            token_endpoint=f"{self.issuer}/token",
            userinfo_endpoint=f"{self.issuer}/userinfo",
            jwks_uri=f"{self.issuer}/jwks",
            scopes_supported=list(SCOPES),
            response_types_supported=["code"],
            response_modes_supported=["query"],
            grant_types_supported=["authorization_code"],
            subject_types_supported=["public"],
            id_token_signing_alg_values_supported=["RS256"],
            token_endpoint_auth_methods_supported=["client_secret_basic", "none"],
            code_challenge_methods_supported=["S256"],
            claims_supported=["sub", "iss", "aud", "exp", "iat", "nonce", "email", "name", "groups"],
        )
        metadata.validate()
        return dict(metadata)

    # -- routes ------------------------------------------------------------------------------------

    async def _discovery(self, request: Request) -> Response:
        return JSONResponse(self.metadata())

    async def _jwks(self, request: Request) -> Response:
        self.jwks_requests += 1
        return JSONResponse(KeySet(list(self.published_keys)).as_dict(private=False))

    async def _authorize(self, request: Request) -> Response:
        oauth_request = await _oauth2_request(request)
        data = oauth_request.payload.data
        user = self.users.get(data.get("username", "")) if request.method == "POST" else None
        try:
            grant = self.server.get_consent_grant(oauth_request, end_user=user)
        except OAuth2Error as error:
            if error.redirect_uri:  # a validated redirect_uri: tell the client
                return self.server.handle_error_response(oauth_request, error)  # type: ignore[no-any-return]
            return HTMLResponse(f"<p>Sign-in request refused: {html.escape(str(error))}</p>", status_code=400)
        if request.method == "GET":
            return HTMLResponse(self._sign_in_page(request))
        if "deny" in data:
            user = None
        elif user is None:
            return HTMLResponse(self._sign_in_page(request, "Unknown user."), status_code=400)
        return self.server.create_authorization_response(  # type: ignore[no-any-return]
            oauth_request, grant_user=user, grant=grant
        )

    def _sign_in_page(self, request: Request, problem: str = "") -> str:
        action = html.escape("/authorize?" + urlencode(list(request.query_params.multi_items())))
        options = "".join(
            f'<option value="{html.escape(user.username)}">{html.escape(user.name)}</option>'
            for user in self.users.values()
        )
        error = f'<p role="alert">{html.escape(problem)}</p>' if problem else ""
        return (
            "<!doctype html><html><head><title>Sign in to the test provider</title></head><body>"
            f"<h1>Test provider</h1>{error}"
            f'<form method="post" action="{action}">'
            f'<label for="username">User</label> <select name="username" id="username">{options}</select> '
            '<button type="submit" id="sign-in">Sign in</button> '
            '<button type="submit" id="deny" name="deny" value="1">Deny</button>'
            "</form></body></html>"
        )

    async def _token(self, request: Request) -> Response:
        return self.server.create_token_response(await _oauth2_request(request))  # type: ignore[no-any-return]

    async def _userinfo(self, request: Request) -> Response:
        oauth_request = await _oauth2_request(request)
        return self.server.create_endpoint_response("userinfo", oauth_request)  # type: ignore[no-any-return]


@contextmanager
def oidc_provider() -> Iterator[TestProvider]:
    """Serve a `TestProvider` on a free loopback port for the duration of the block."""
    provider = TestProvider(free_port())
    config = uvicorn.Config(
        provider.app, host="127.0.0.1", port=provider.port, log_level="warning", lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="oidc-provider", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout=5)
            raise RuntimeError(f"the test OpenID provider did not start on port {provider.port}")
        time.sleep(0.02)
    try:
        yield provider
    finally:
        server.should_exit = True
        thread.join(timeout=10)
