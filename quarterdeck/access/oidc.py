"""OpenID Connect sign-in, relying-party side: the authorization code flow with PKCE (S256).

`OidcClient.begin()` builds the provider's authorization URL and the three secrets the caller keeps
for the callback (state, nonce, PKCE verifier); `OidcClient.finish()` checks the returned state,
redeems the code at the token endpoint, verifies the id_token's signature against the provider's
JWKS and its claims against the injected clock, and returns who signed in. No web framework here:
the route stores the `AuthRequest` between the two calls (in the session) and maps the errors.

Every refusal is a `Forbidden` with its own stable code (`oidc.bad_state`, `oidc.token_refused`,
`oidc.bad_signature`, `oidc.wrong_issuer`, `oidc.wrong_audience`, `oidc.expired`,
`oidc.issued_in_future`, `oidc.bad_nonce`, `oidc.no_email`, ...); a provider that answers nonsense
is `Invalid`; one that cannot be reached is `Unavailable`.

Signatures are checked with joserfc, the JOSE library Authlib 1.9 uses itself (`authlib.jose` is
deprecated). Only asymmetric algorithms are accepted, so a client secret never doubles as a key.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from quarterdeck.clock import Clock
from quarterdeck.errors import Forbidden, Invalid
from quarterdeck.integrations.http import check_status, make_client, mapped_errors

__all__ = ["AuthRequest", "OidcClient", "OidcIdentity", "OidcProvider"]

SYSTEM = "oidc"
#: Clock skew tolerated between the provider and us, for `exp`, `iat` and `nbf`.
LEEWAY_SECONDS = 60
#: Signature algorithms accepted for id_tokens (RS256 is the OpenID Connect default).
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


@dataclass(frozen=True)
class OidcProvider:
    """One OpenID Provider as configured by the operator."""

    issuer: str
    client_id: str
    client_secret: str | None
    scopes: str = "openid email profile groups"
    groups_claim: str = "groups"


@dataclass(frozen=True)
class AuthRequest:
    """A sign-in under way: `url` sends the browser to the provider; keep the rest until the callback."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class OidcIdentity:
    """Who signed in, as the provider vouches for it."""

    issuer: str
    subject: str
    email: str
    name: str
    groups: tuple[str, ...]


def _random_secret() -> str:
    """32 random bytes, url-safe (43 characters: also a valid PKCE verifier)."""
    return secrets.token_urlsafe(32)


def _s256_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise Invalid(f"oidc {what} is not JSON", code="oidc.bad_response", details={"what": what}) from exc
    if not isinstance(data, dict):
        raise Invalid(f"oidc {what} is not a JSON object", code="oidc.bad_response", details={"what": what})
    return data


def _timestamp(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


class OidcClient:
    """The relying party for one provider. Thread-safe enough to share: caches are only ever replaced."""

    def __init__(self, provider: OidcProvider, *, clock: Clock, http: httpx.Client | None = None) -> None:
        self.provider = provider
        self.clock = clock
        self._owns_http = http is None
        self.http = http if http is not None else make_client()
        self._discovery: dict[str, Any] | None = None
        self._jwks: KeySet | None = None

    def close(self) -> None:
        """Close the HTTP client if this object made it."""
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> OidcClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- provider metadata -------------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        """The provider's discovery document, fetched once per client and checked against the issuer."""
        if self._discovery is not None:
            return self._discovery
        issuer = self.provider.issuer
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        with mapped_errors(SYSTEM):
            response = self.http.get(url, headers={"Accept": "application/json"})
        check_status(SYSTEM, response, "discovery document")
        document = _json_object(response, "discovery document")
        if document.get("issuer") != issuer:
            raise Invalid(
                f"oidc discovery at {url} names issuer {document.get('issuer')!r}, "
                f"but the configured issuer is {issuer!r}",
                code="oidc.issuer_mismatch",
                details={"configured": issuer, "discovered": document.get("issuer")},
            )
        missing = [
            key
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri")
            if not isinstance(document.get(key), str)
        ]
        if missing:
            raise Invalid(
                f"oidc discovery at {url} lacks {', '.join(missing)}",
                code="oidc.bad_discovery",
                details={"missing": missing},
            )
        self._discovery = document
        return document

    def _fetch_jwks(self) -> KeySet:
        uri = self.discovery()["jwks_uri"]
        with mapped_errors(SYSTEM):
            response = self.http.get(uri, headers={"Accept": "application/json"})
        check_status(SYSTEM, response, "JWKS")
        document = _json_object(response, "JWKS")
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise Invalid(f"oidc JWKS at {uri} holds no usable key: {exc}", code="oidc.bad_jwks") from exc
        self._jwks = keys
        return keys

    # -- the flow ----------------------------------------------------------------------------------

    def begin(self, redirect_uri: str) -> AuthRequest:
        """Start a sign-in: the URL to send the browser to, and the secrets to keep until `finish`."""
        endpoint: str = self.discovery()["authorization_endpoint"]
        state, nonce, verifier = _random_secret(), _random_secret(), _random_secret()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.provider.client_id,
                "redirect_uri": redirect_uri,
                "scope": self.provider.scopes,
                "state": state,
                "nonce": nonce,
                "code_challenge": _s256_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        url = endpoint + ("&" if "?" in endpoint else "?") + query
        return AuthRequest(url=url, state=state, nonce=nonce, code_verifier=verifier)

    def finish(
        self, *, redirect_uri: str, code: str, returned_state: str, expected: AuthRequest
    ) -> OidcIdentity:
        """Complete a sign-in from the provider's callback; raises `Forbidden` for anything untrustworthy."""
        if not secrets.compare_digest(returned_state.encode(), expected.state.encode()):
            raise Forbidden(
                "oidc callback state does not match the sign-in that was started "
                "(a stale tab, or a forged callback)",
                code="oidc.bad_state",
            )
        tokens = self._redeem(code, redirect_uri, expected.code_verifier)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise Invalid("oidc token endpoint answered without an id_token", code="oidc.bad_response")
        claims = self._verify_signature(id_token)
        self._check_claims(claims, expected.nonce)

        access_token = tokens.get("access_token")
        if self._needs_userinfo(claims) and isinstance(access_token, str):
            claims = {**self._userinfo(access_token, claims["sub"]), **claims}
        return self._identity(claims)

    # -- steps of finish ---------------------------------------------------------------------------

    def _redeem(self, code: str, redirect_uri: str, verifier: str) -> dict[str, Any]:
        endpoint: str = self.discovery()["token_endpoint"]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        headers = {"Accept": "application/json"}
        secret = self.provider.client_secret
        if secret is not None:  # client_secret_basic; RFC 6749 2.3.1 form-encodes both halves first
            pair = f"{quote(self.provider.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        else:  # a public client: PKCE is what binds the code to us
            form["client_id"] = self.provider.client_id
        with mapped_errors(SYSTEM):
            response = self.http.post(endpoint, data=form, headers=headers)
        if response.status_code in (400, 401, 403):
            try:
                body = response.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                body = {"error": f"HTTP {response.status_code}", "error_description": response.text[:200]}
            error = body.get("error") or f"HTTP {response.status_code}"
            description = body.get("error_description") or None
            raise Forbidden(
                f"oidc token endpoint refused the code: {error}"
                + (f" ({description})" if description else ""),
                code="oidc.token_refused",
                details={"error": error, "error_description": description},
            )
        check_status(SYSTEM, response, "token")
        return _json_object(response, "token response")

    def _verify_signature(self, id_token: str) -> dict[str, Any]:
        fresh = self._jwks is None
        keys = self._jwks if self._jwks is not None else self._fetch_jwks()
        algorithms = self._algorithms()
        while True:
            try:
                return jwt.decode(id_token, keys, algorithms=algorithms).claims
            except InvalidKeyIdError as exc:
                if not fresh:  # the provider may have rotated its keys since we cached them
                    keys, fresh = self._fetch_jwks(), True
                    continue
                raise Forbidden(
                    f"oidc id_token is signed with a key the provider does not publish: {exc}",
                    code="oidc.bad_signature",
                ) from exc
            except JoseError as exc:
                raise Forbidden(
                    f"oidc id_token signature does not verify: {exc}", code="oidc.bad_signature"
                ) from exc

    def _algorithms(self) -> list[str]:
        advertised = self.discovery().get("id_token_signing_alg_values_supported")
        if isinstance(advertised, list):
            return [alg for alg in SIGNING_ALGORITHMS if alg in advertised] or ["RS256"]
        return ["RS256"]

    def _check_claims(self, claims: dict[str, Any], nonce: str) -> None:
        """OpenID Connect Core 3.1.3.7, with our clock."""
        provider = self.provider
        if claims.get("iss") != provider.issuer:
            raise Forbidden(
                f"oidc id_token was issued by {claims.get('iss')!r}, not {provider.issuer!r}",
                code="oidc.wrong_issuer",
            )
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or provider.client_id not in audiences:
            raise Forbidden(
                f"oidc id_token is meant for {audience!r}, not for client {provider.client_id!r}",
                code="oidc.wrong_audience",
            )
        azp = claims.get("azp")
        if (azp is not None or len(audiences) > 1) and azp != provider.client_id:
            raise Forbidden(
                f"oidc id_token was authorized for party {azp!r}, not for client {provider.client_id!r}",
                code="oidc.wrong_audience",
            )
        now = self.clock.now().timestamp()
        expires = _timestamp(claims, "exp")
        if expires is None:
            raise Forbidden("oidc id_token has no numeric exp claim", code="oidc.expired")
        if now >= expires + LEEWAY_SECONDS:
            raise Forbidden(
                f"oidc id_token expired at {self._format(expires)} (now {self._format(now)})",
                code="oidc.expired",
            )
        issued = _timestamp(claims, "iat")
        if issued is None:
            raise Forbidden("oidc id_token has no numeric iat claim", code="oidc.issued_in_future")
        if issued > now + LEEWAY_SECONDS:
            raise Forbidden(
                f"oidc id_token claims to be issued at {self._format(issued)}, "
                f"after now ({self._format(now)})",
                code="oidc.issued_in_future",
            )
        not_before = _timestamp(claims, "nbf")
        if not_before is not None and not_before > now + LEEWAY_SECONDS:
            raise Forbidden(
                f"oidc id_token is not valid before {self._format(not_before)}", code="oidc.issued_in_future"
            )
        returned_nonce = claims.get("nonce")
        if not isinstance(returned_nonce, str) or not secrets.compare_digest(
            returned_nonce.encode(), nonce.encode()
        ):
            raise Forbidden(
                "oidc id_token nonce does not match the sign-in that was started (a replayed token?)",
                code="oidc.bad_nonce",
            )
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise Forbidden("oidc id_token names no subject (sub)", code="oidc.no_subject")

    @staticmethod
    def _format(timestamp: float) -> str:
        return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")

    def _needs_userinfo(self, claims: dict[str, Any]) -> bool:
        return "email" not in claims or self.provider.groups_claim not in claims

    def _userinfo(self, access_token: str, subject: str) -> dict[str, Any]:
        endpoint = self.discovery().get("userinfo_endpoint")
        if not isinstance(endpoint, str):
            return {}
        with mapped_errors(SYSTEM):
            response = self.http.get(
                endpoint, headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
            )
        check_status(SYSTEM, response, "userinfo")
        info = _json_object(response, "userinfo")
        if info.get("sub") != subject:  # OpenID Connect Core 5.3.4
            raise Forbidden(
                f"oidc userinfo describes {info.get('sub')!r}, not the signed-in subject {subject!r}",
                code="oidc.userinfo_mismatch",
            )
        return info

    def _identity(self, claims: dict[str, Any]) -> OidcIdentity:
        email = claims.get("email")
        if not isinstance(email, str) or not email:
            raise Forbidden(
                "oidc provider gave no email address (neither in the id_token nor from userinfo); "
                "is the 'email' scope granted?",
                code="oidc.no_email",
            )
        if claims.get("email_verified") is False:
            raise Forbidden(f"oidc provider has not verified the email address {email}", code="oidc.no_email")
        name = claims.get("name")
        if not isinstance(name, str) or not name:
            preferred = claims.get("preferred_username")
            name = preferred if isinstance(preferred, str) and preferred else email
        return OidcIdentity(
            issuer=self.provider.issuer,
            subject=claims["sub"],
            email=email,
            name=name,
            groups=self._groups(claims.get(self.provider.groups_claim)),
        )

    def _groups(self, value: object) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list) and all(isinstance(group, str) for group in value):
            return tuple(value)
        raise Invalid(
            f"oidc claim {self.provider.groups_claim!r} is neither a string nor a list of strings: {value!r}",
            code="oidc.bad_groups",
        )
