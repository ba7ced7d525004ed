"""A throw-away Docker registry (the real `docker-registry serve`) for tests, with pushes over its HTTP API.

The registry can run open, behind htpasswd basic auth, or behind Docker-Hub-style token auth: then
`registry_server` also starts a small token server whose JWTs the registry verifies against a
self-signed certificate (distribution's `auth: token:` with `rootcertbundle`).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import io
import json
import re
import secrets
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.pg_cluster import free_port

REGISTRY_BIN = "docker-registry"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

BASIC_USERNAME = "ci-basic"
BASIC_PASSWORD = "ci-basic-password"
# bcrypt (cost 4) of BASIC_PASSWORD: distribution's htpasswd auth accepts bcrypt only.
_HTPASSWD = f"{BASIC_USERNAME}:$2b$04$HHvdRZDEvVcbSr0gcvNoj.B7E8VJTTFAJ71XCsmRKfZM52LeUPP5q\n"


def registry_installed() -> bool:
    return shutil.which(REGISTRY_BIN) is not None


@dataclass(frozen=True)
class TokenRequest:
    """One request the token server answered: what was asked, and who asked (None: no valid credentials)."""

    service: str
    scopes: tuple[str, ...]
    username: str | None


@dataclass
class TokenAuth:
    """Settings of the token server, and the requests it has seen (tests assert on `requests`)."""

    username: str = "ci-token-user"
    password: str = "ci-token-password"
    service: str = "quarterdeck-test-registry"
    issuer: str = "quarterdeck-test-issuer"
    expires_in: int = 300
    token_field: str = "token"
    requests: list[TokenRequest] = field(default_factory=list)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact_json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class _TokenIssuer:
    """Signs RS256 JWTs in the shape distribution's token access controller verifies."""

    def __init__(self, auth: TokenAuth) -> None:
        self.auth = auth
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, auth.issuer)])
        now = datetime.now(UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def mint(self, subject: str, scopes: tuple[str, ...]) -> str:
        access = []
        for scope in " ".join(scopes).split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {
            "iss": self.auth.issuer,
            "sub": subject,
            "aud": self.auth.service,
            "exp": now + self.auth.expires_in,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        signing_input = f"{_b64url(_compact_json(header))}.{_b64url(_compact_json(claims))}".encode()
        signature = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode()}.{_b64url(signature)}"


class _TokenServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, issuer: _TokenIssuer) -> None:
        super().__init__(("127.0.0.1", port), _TokenHandler)
        self.issuer = issuer


class _TokenHandler(BaseHTTPRequestHandler):
    server: _TokenServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/token":
            self._answer(404, {"error": "no such path"})
            return
        auth = self.server.issuer.auth
        query = parse_qs(url.query)
        service = query.get("service", [""])[0]
        scopes = tuple(query.get("scope", []))
        username = self._authenticated_user(auth)
        auth.requests.append(TokenRequest(service, scopes, username))
        if username is None:
            self._answer(401, {"error": "credentials required"}, {"WWW-Authenticate": 'Basic realm="tokens"'})
            return
        if service != auth.service:
            self._answer(400, {"error": f"unknown service {service!r}"})
            return
        token = self.server.issuer.mint(username, scopes)
        issued_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        self._answer(200, {auth.token_field: token, "expires_in": auth.expires_in, "issued_at": issued_at})

    def _authenticated_user(self, auth: TokenAuth) -> str | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            username, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None
        user_ok = hmac.compare_digest(username.encode(), auth.username.encode())
        password_ok = hmac.compare_digest(password.encode(), auth.password.encode())
        return username if user_ok and password_ok else None

    def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = _compact_json(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows stderr of failing tests, and the access log is noise there."""


@contextmanager
def _token_server(folder: Path, auth: TokenAuth) -> Iterator[tuple[str, Path]]:
    issuer = _TokenIssuer(auth)
    bundle = folder / "token-root.pem"
    bundle.write_bytes(issuer.certificate_pem())
    server = _TokenServer(free_port(), issuer)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="registry-token-server", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/token", bundle
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _wait_until_up(base_url: str, process: subprocess.Popen[bytes], log: Path, *, status: int) -> None:
    """Wait until /v2/ answers `status`: 200 open, 401 behind authentication."""
    deadline = time.monotonic() + 15
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"docker-registry exited with {process.returncode}: {log.read_text()[-2000:]}"
                )
            try:
                if client.get(f"{base_url}/v2/").status_code == status:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise RuntimeError(
        f"docker-registry did not answer {status} on {base_url}/v2/ within 15 s: {log.read_text()[-2000:]}"
    )


@contextmanager
def registry_server(
    folder: Path, *, token_auth: TokenAuth | None = None, basic_auth: bool = False
) -> Iterator[str]:
    """Run `docker-registry serve` on a free loopback port; yields its base URL `http://127.0.0.1:PORT`.

    `basic_auth` puts it behind htpasswd (BASIC_USERNAME / BASIC_PASSWORD); `token_auth` behind a token
    server started here. At most one of the two.
    """
    if token_auth is not None and basic_auth:
        raise ValueError("choose token_auth or basic_auth, not both")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(folder / "data")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "ci-not-secret"},
    }
    with ExitStack() as stack:
        if basic_auth:
            htpasswd = folder / "htpasswd"
            htpasswd.write_text(_HTPASSWD)
            config["auth"] = {"htpasswd": {"realm": "quarterdeck-test", "path": str(htpasswd)}}
        if token_auth is not None:
            realm, bundle = stack.enter_context(_token_server(folder, token_auth))
            config["auth"] = {
                "token": {
                    "realm": realm,
                    "service": token_auth.service,
                    "issuer": token_auth.issuer,
                    "rootcertbundle": str(bundle),
                }
            }
        config_file = folder / "config.yml"
        config_file.write_text(json.dumps(config, indent=1))
        log = folder / "registry.log"
        log_file = stack.enter_context(log.open("wb"))
        process = subprocess.Popen(
            [REGISTRY_BIN, "serve", str(config_file)], stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            _wait_until_up(base_url, process, log, status=401 if "auth" in config else 200)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class ChallengeAuth(httpx.Auth):
    """httpx auth for pushing: answers a registry's Basic or Bearer challenge, keeping the last token.

    Written independently of the adapter under test so pushes do not depend on the code being tested.
    """

    requires_response_body = True

    def __init__(self, username: str, password: str) -> None:
        raw = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._basic = f"Basic {raw}"
        self._authorization: str | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._authorization:
            request.headers["Authorization"] = self._authorization
        response = yield request
        if response.status_code != 401:
            return
        challenge = response.headers.get("WWW-Authenticate", "")
        if challenge.lower().startswith("bearer "):
            params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            query = {key: params[key] for key in ("service", "scope") if key in params}
            token_response = yield httpx.Request(
                "GET", params["realm"], params=query, headers={"Authorization": self._basic}
            )
            body = token_response.json()
            self._authorization = f"Bearer {body.get('token') or body['access_token']}"
        else:
            self._authorization = self._basic
        request.headers["Authorization"] = self._authorization
        yield request


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _push_blob(client: httpx.Client, repository: str, data: bytes) -> str:
    digest = _sha256(data)
    if client.head(f"/v2/{repository}/blobs/{digest}").status_code == 200:
        return digest
    started = client.post(f"/v2/{repository}/blobs/uploads/")
    if started.status_code != 202:
        raise RuntimeError(f"blob upload start answered {started.status_code}: {started.text}")
    # Location carries ?_state=...; httpx's params= would replace that query (404 BLOB_UPLOAD_INVALID).
    url = httpx.URL(started.headers["Location"]).copy_add_param("digest", digest)
    done = client.put(url, content=data, headers={"Content-Type": "application/octet-stream"})
    if done.status_code != 201:
        raise RuntimeError(f"blob upload answered {done.status_code}: {done.text}")
    return digest


def _put_manifest(client: httpx.Client, repository: str, reference: str, body: bytes, media_type: str) -> str:
    answer = client.put(
        f"/v2/{repository}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
    )
    if answer.status_code != 201:
        raise RuntimeError(f"manifest {reference} answered {answer.status_code}: {answer.text}")
    return _sha256(body)


def push_image(
    base_url: str,
    repository: str,
    tags: list[str],
    *,
    created: str,
    payload: bytes = b"hello from a tiny layer\n",
    auth: httpx.Auth | None = None,
    config_created: bool = True,
    architecture: str = "amd64",
) -> str:
    """Push a one-layer OCI image under each of `tags` (by digest alone when `tags` is empty); its digest.

    `created` goes into the config blob (unless `config_created` is False) and into the manifest's
    `org.opencontainers.image.created` annotation.
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        member = tarfile.TarInfo("hello.txt")
        member.size = len(payload)
        member.mtime = 0
        tar.addfile(member, io.BytesIO(payload))
    layer_tar = raw.getvalue()
    layer_gz = gzip.compress(layer_tar, mtime=0)
    config_doc: dict[str, Any] = {
        "architecture": architecture,
        "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [_sha256(layer_tar)]},
        "history": [{"created_by": "tests/registry_server.py"}],
    }
    if config_created:
        config_doc["created"] = created
    config = _compact_json(config_doc)
    with httpx.Client(base_url=base_url, timeout=10, auth=auth) as client:
        config_digest = _push_blob(client, repository, config)
        layer_digest = _push_blob(client, repository, layer_gz)
        manifest = _compact_json(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer_gz)}],
                "annotations": {"org.opencontainers.image.created": created},
            }
        )
        digest = _sha256(manifest)
        for reference in tags or [digest]:
            _put_manifest(client, repository, reference, manifest, OCI_MANIFEST)
    return digest


def push_index(
    base_url: str,
    repository: str,
    tag: str,
    platforms: list[tuple[str, str, str]],
    *,
    auth: httpx.Auth | None = None,
) -> str:
    """Push an OCI image index over already pushed manifests, given as (digest, os, architecture)."""
    with httpx.Client(base_url=base_url, timeout=10, auth=auth) as client:
        entries = []
        for digest, os_name, architecture in platforms:
            head = client.head(f"/v2/{repository}/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
            if head.status_code != 200:
                raise RuntimeError(f"manifest {digest} answered {head.status_code}")
            entries.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": int(head.headers["Content-Length"]),
                    "platform": {"os": os_name, "architecture": architecture},
                }
            )
        index = _compact_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
        return _put_manifest(client, repository, tag, index, OCI_INDEX)


def delete_manifest(base_url: str, repository: str, digest: str, *, auth: httpx.Auth | None = None) -> None:
    """Delete a manifest by digest, which untags every tag pointing at it."""
    with httpx.Client(base_url=base_url, timeout=10, auth=auth) as client:
        answer = client.delete(f"/v2/{repository}/manifests/{digest}")
        if answer.status_code != 202:
            raise RuntimeError(f"deleting {digest} answered {answer.status_code}: {answer.text}")
