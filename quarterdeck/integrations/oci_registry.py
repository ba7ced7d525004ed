"""Image references, and reading tags, digests and build times from an OCI Distribution (Registry v2) API.

Authentication follows what real registries ask for in `WWW-Authenticate`: a Bearer challenge sends
the client to a token service (Docker Hub, GHCR, distribution's `auth: token`), a Basic challenge
takes the username and password directly. Credentials and tokens never appear in errors.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import httpx

from quarterdeck.clock import Clock, SystemClock
from quarterdeck.errors import Invalid, NotFound, Unavailable
from quarterdeck.integrations.http import check_status, make_client, mapped_errors

__all__ = [
    "DOCKER_HUB",
    "MANIFEST_ACCEPT",
    "CachedRegistry",
    "ImageRef",
    "ImageTag",
    "RegistryClient",
    "parse_image_ref",
]

SYSTEM = "registry"
DOCKER_HUB = "registry-1.docker.io"
_DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io", DOCKER_HUB})

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST))
_INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CREATED_ANNOTATION = "org.opencontainers.image.created"

DEFAULT_TOKEN_SECONDS = 60
_PARALLEL_READS = 4
_MAX_TAG_PAGES = 1000
_MAX_INDEX_DEPTH = 3
_PLATFORM = ("linux", "amd64")

# The grammar of github.com/distribution/reference (reference.go), ASCII only.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*", re.ASCII)
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?", re.ASCII
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
_DIGEST_LENGTHS = {"sha256": 64, "sha512": 128}
_MAX_NAME_LENGTH = 255
_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    tag: str | None
    digest: str | None


@dataclass(frozen=True)
class ImageTag:
    tag: str
    digest: str
    created: datetime | None


def _bad_reference(ref: str, problem: str) -> Invalid:
    return Invalid(
        f"image reference {ref!r} is not valid: {problem}",
        code="registry.bad_reference",
        details={"reference": ref},
    )


def _repository_problem(repository: str) -> str | None:
    if not repository:
        return "the repository name is empty"
    if len(repository) > _MAX_NAME_LENGTH:
        return f"the repository name is longer than {_MAX_NAME_LENGTH} characters"
    if _REPOSITORY.fullmatch(repository):
        return None
    if _REPOSITORY.fullmatch(repository.lower()):
        return f"repository {repository!r} must be lowercase"
    return f"repository {repository!r} is not a valid name (lowercase letters, digits, separators . _ __ -)"


def _digest_problem(digest: str) -> str | None:
    algorithm, _, encoded = digest.partition(":")
    length = _DIGEST_LENGTHS.get(algorithm)
    if length is None:
        return f"digest {digest!r} does not start with sha256: or sha512:"
    if len(encoded) != length or not re.fullmatch(r"[0-9a-f]+", encoded):
        return f"digest {digest!r} must be {length} lowercase hex digits after {algorithm}:"
    return None


def parse_image_ref(ref: str) -> ImageRef:
    """Split `[registry/]repository[:tag][@digest]` as Docker does, naming Docker Hub's defaults."""
    if not ref:
        raise _bad_reference(ref, "it is empty")
    name, has_digest, digest = ref.partition("@")
    if has_digest and (problem := _digest_problem(digest)):
        raise _bad_reference(ref, problem)
    tag: str | None = None
    if name.rfind(":") > name.rfind("/"):
        name, _, tag = name.rpartition(":")
        if not _TAG.fullmatch(tag):
            raise _bad_reference(
                ref, f"tag {tag!r} is not valid (up to 128 of A-Z a-z 0-9 _ . -, not first . -)"
            )
    first, has_slash, rest = name.partition("/")
    if has_slash and ("." in first or ":" in first or first == "localhost"):
        if not _DOMAIN.fullmatch(first):
            raise _bad_reference(ref, f"registry {first!r} is not a valid host[:port]")
        registry, repository = _registry_host(first), rest
    else:
        registry, repository = DOCKER_HUB, name
    if registry == DOCKER_HUB and repository and "/" not in repository:
        repository = f"library/{repository}"
    if problem := _repository_problem(repository):
        raise _bad_reference(ref, problem)
    return ImageRef(registry=registry, repository=repository, tag=tag, digest=digest if has_digest else None)


def _registry_host(registry: str) -> str:
    return DOCKER_HUB if registry in _DOCKER_HUB_NAMES else registry


def _check_repository(repository: str) -> None:
    if problem := _repository_problem(repository):
        raise Invalid(problem, code="registry.bad_reference", details={"repository": repository})


def _check_tag(tag: str) -> None:
    if not _TAG.fullmatch(tag):
        raise Invalid(
            f"tag {tag!r} is not a valid image tag", code="registry.bad_reference", details={"tag": tag}
        )


def _bad_answer(host: str, path: str, problem: str) -> Unavailable:
    return Unavailable(
        f"registry {host} answered {path} with {problem}",
        code="registry.bad_answer",
        details={"registry": host, "path": path},
    )


def _json_object(host: str, response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise _bad_answer(host, response.url.path, "malformed JSON") from exc
    if not isinstance(body, dict):
        raise _bad_answer(host, response.url.path, f"JSON {type(body).__name__}, not an object")
    return body


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    # Go's zero time (year 1) is what unset build times serialise as.
    if moment.year <= 1:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class _Challenge:
    scheme: str
    realm: str
    service: str
    scope: str


def _parse_challenge(header: str) -> _Challenge:
    scheme, _, rest = header.strip().partition(" ")
    params = {key.lower(): quoted or bare for key, quoted, bare in _CHALLENGE_PARAM.findall(rest)}
    return _Challenge(
        scheme=scheme.lower(),
        realm=params.get("realm", ""),
        service=params.get("service", ""),
        scope=params.get("scope", ""),
    )


@dataclass(frozen=True)
class _Token:
    value: str
    expires_at: datetime


def _natural_key(tag: str) -> tuple[tuple[int, int, str], ...]:
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.findall(r"\d+|\D+", tag)
    )


def _newest_first(image: ImageTag) -> tuple[bool, float, str]:
    return (image.created is None, -image.created.timestamp() if image.created else 0.0, image.tag)


class RegistryClient:
    """A Registry v2 API client; safe to share between threads (tokens are cached under a lock)."""

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        plain_http_hosts: frozenset[str] = frozenset(),
        transport: httpx.BaseTransport | None = None,
        timeout: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self._basic: str | None = None
        if username is not None:
            pair = f"{username}:{password or ''}".encode()
            self._basic = f"Basic {base64.b64encode(pair).decode()}"
        self._plain_http_hosts = plain_http_hosts
        self._http = make_client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)), transport=transport
        )
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str, str], _Token] = {}
        self._challenges: dict[str, _Challenge] = {}

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def list_tags(self, registry: str, repository: str) -> list[str]:
        """Every tag of the repository, in the registry's order, following `Link: rel="next"` pages."""
        _check_repository(repository)
        host = _registry_host(registry)
        what = f"repository {repository} on {host}"
        tags: dict[str, None] = {}
        url: httpx.URL | None = self._url(host, f"/v2/{repository}/tags/list")
        seen: set[httpx.URL] = set()
        while url is not None:
            if url in seen or len(seen) >= _MAX_TAG_PAGES:
                raise _bad_answer(host, url.path, "tag pages that never end")
            seen.add(url)
            response = self._get(host, url, repository=repository, what=what)
            page = _json_object(host, response).get("tags")
            if page is None:
                page = []
            if not isinstance(page, list) or not all(isinstance(tag, str) for tag in page):
                raise _bad_answer(host, response.url.path, '"tags" that is not a list of strings')
            tags.update(dict.fromkeys(page))
            following = response.links.get("next", {}).get("url")
            url = response.url.join(following) if following else None
        return list(tags)

    def tag_info(self, registry: str, repository: str, tag: str) -> ImageTag:
        """Digest and build time of the tag; of its linux/amd64 (else first) image when it is an index."""
        _check_repository(repository)
        _check_tag(tag)
        return self._tag_info(_registry_host(registry), repository, tag, {})

    def images(self, registry: str, repository: str, *, limit: int = 100) -> list[ImageTag]:
        """Tag infos newest first (ties by tag name; unknown build times last).

        At most `limit` tags are read: the highest by natural order (`1.10` after `1.9`), since the
        registry cannot say which are newest without reading each one.
        """
        host = _registry_host(registry)
        tags = sorted(self.list_tags(host, repository), key=_natural_key, reverse=True)[: max(limit, 0)]
        config_times: dict[str, datetime | None] = {}

        def read(tag: str) -> ImageTag | None:
            try:
                return self._tag_info(host, repository, tag, config_times)
            except NotFound:
                return None  # untagged between listing and reading

        if not tags:
            return []
        with ThreadPoolExecutor(max_workers=min(_PARALLEL_READS, len(tags))) as pool:
            found = [image for image in pool.map(read, tags) if image is not None]
        return sorted(found, key=_newest_first)

    def _tag_info(
        self, host: str, repository: str, tag: str, config_times: dict[str, datetime | None]
    ) -> ImageTag:
        path = f"/v2/{repository}/manifests/{tag}"
        response = self._get_manifest(
            host, repository, path, f"tag {tag} of repository {repository} on {host}"
        )
        digest = response.headers.get("Docker-Content-Digest") or _sha256(response.content)
        manifest = _json_object(host, response)
        annotated = [_parse_time(self._annotations(manifest).get(CREATED_ANNOTATION))]
        depth = 0
        while self._is_index(manifest, response):
            depth += 1
            if depth > _MAX_INDEX_DEPTH:
                raise _bad_answer(host, path, f"image indexes nested deeper than {_MAX_INDEX_DEPTH}")
            chosen = self._pick_platform(host, response.url.path, manifest)
            response = self._get_manifest(
                host, repository, f"/v2/{repository}/manifests/{chosen}", f"manifest {chosen} of {repository}"
            )
            manifest = _json_object(host, response)
            annotated.insert(0, _parse_time(self._annotations(manifest).get(CREATED_ANNOTATION)))
        created = self._config_created(host, repository, response.url.path, manifest, config_times)
        return ImageTag(tag=tag, digest=digest, created=created or next((t for t in annotated if t), None))

    @staticmethod
    def _annotations(manifest: dict[str, Any]) -> dict[str, Any]:
        annotations = manifest.get("annotations")
        return annotations if isinstance(annotations, dict) else {}

    @staticmethod
    def _is_index(manifest: dict[str, Any], response: httpx.Response) -> bool:
        media_type = (
            manifest.get("mediaType") or response.headers.get("Content-Type", "").split(";")[0].strip()
        )
        return media_type in _INDEX_TYPES or ("manifests" in manifest and "config" not in manifest)

    @staticmethod
    def _pick_platform(host: str, path: str, index: dict[str, Any]) -> str:
        entries = index.get("manifests")
        if (
            not isinstance(entries, list)
            or not entries
            or not all(isinstance(entry, dict) and isinstance(entry.get("digest"), str) for entry in entries)
        ):
            raise _bad_answer(host, path, "an image index without manifest entries")
        for entry in entries:
            platform = entry.get("platform")
            if isinstance(platform, dict) and (platform.get("os"), platform.get("architecture")) == _PLATFORM:
                return str(entry["digest"])
        return str(entries[0]["digest"])

    def _config_created(
        self,
        host: str,
        repository: str,
        path: str,
        manifest: dict[str, Any],
        config_times: dict[str, datetime | None],
    ) -> datetime | None:
        config = manifest.get("config")
        if not isinstance(config, dict) or not isinstance(config.get("digest"), str):
            raise _bad_answer(host, path, "an image manifest without a config descriptor")
        digest: str = config["digest"]
        if digest not in config_times:
            blob = self._get(
                host,
                self._url(host, f"/v2/{repository}/blobs/{digest}"),
                repository=repository,
                what=f"config blob {digest} of {repository} on {host}",
            )
            config_times[digest] = _parse_time(_json_object(host, blob).get("created"))
        return config_times[digest]

    def _get_manifest(self, host: str, repository: str, path: str, what: str) -> httpx.Response:
        return self._get(
            host, self._url(host, path), repository=repository, what=what, headers={"Accept": MANIFEST_ACCEPT}
        )

    def _url(self, host: str, path: str) -> httpx.URL:
        scheme = "http" if host in self._plain_http_hosts else "https"
        return httpx.URL(f"{scheme}://{host}").join(path)

    def _get(
        self, host: str, url: httpx.URL, *, repository: str, what: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """GET with whatever the registry last asked for, answering one fresh 401 challenge."""
        scope = f"repository:{repository}:pull"
        known = self._known_authorization(host, scope)
        response = self._send(host, url, headers, known)
        if response.status_code == 401:
            challenge = _parse_challenge(response.headers.get("WWW-Authenticate", ""))
            if known is not None and challenge.scheme == "bearer":
                self._forget_token(challenge, challenge.scope or scope)
            authorization = self._answer_challenge(host, challenge, scope)
            response = self._send(host, url, headers, authorization)
            if response.status_code == 401:
                raise Invalid(
                    f"registry {host} refused access to {what} "
                    "(it may not exist, or the configured credentials may not read it)",
                    code="registry.unauthorized",
                    details={"registry": host, "status": 401},
                )
        check_status(SYSTEM, response, what)
        return response

    def _send(
        self, host: str, url: httpx.URL, headers: dict[str, str] | None, authorization: str | None
    ) -> httpx.Response:
        sent = dict(headers or {})
        if authorization:
            sent["Authorization"] = authorization
        try:
            with mapped_errors(SYSTEM):
                return self._http.get(url, headers=sent)
        except Unavailable as exc:
            why = exc.details if isinstance(exc.details, dict) else {}
            raise Unavailable(
                f"{exc.message} (GET {url.path} on {host})", code=exc.code, details={**why, "registry": host}
            ) from exc.__cause__

    def _forget_token(self, challenge: _Challenge, scope: str) -> None:
        with self._lock:
            self._tokens.pop((challenge.realm, challenge.service, scope), None)

    def _known_authorization(self, host: str, scope: str) -> str | None:
        with self._lock:
            challenge = self._challenges.get(host)
            if challenge is None:
                return None
            if challenge.scheme == "basic":
                return self._basic
            token = self._tokens.get((challenge.realm, challenge.service, scope))
            if token is not None and token.expires_at > self._clock.now():
                return f"Bearer {token.value}"
            return None

    def _answer_challenge(self, host: str, challenge: _Challenge, scope: str) -> str:
        if challenge.scheme == "basic":
            basic = self._basic
            if basic is None:
                raise Invalid(
                    f"registry {host} asks for a username and password, and none are configured",
                    code="registry.unauthorized",
                    details={"registry": host},
                )
            with self._lock:
                self._challenges[host] = challenge
            return basic
        if challenge.scheme == "bearer" and challenge.realm:
            with self._lock:
                self._challenges[host] = challenge
            return f"Bearer {self._token(host, challenge, challenge.scope or scope)}"
        raise Invalid(
            f"registry {host} answered 401 without a Basic or Bearer challenge",
            code="registry.unauthorized",
            details={"registry": host},
        )

    def _token(self, host: str, challenge: _Challenge, scope: str) -> str:
        key = (challenge.realm, challenge.service, scope)
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and cached.expires_at > self._clock.now():
                return cached.value
        params = {name: value for name, value in (("service", challenge.service), ("scope", scope)) if value}
        credentials = {"Authorization": self._basic} if self._basic else {}
        with mapped_errors(SYSTEM):
            response = self._http.get(challenge.realm, params=params, headers=credentials)
        if response.status_code in (401, 403):
            who = "the configured credentials" if self._basic else "anonymous access"
            raise Invalid(
                f"the token service of registry {host} refused {who} for {scope}",
                code="registry.unauthorized",
                details={"registry": host, "status": response.status_code},
            )
        check_status(SYSTEM, response, f"a token for {scope} from {host}")
        body = _json_object(host, response)
        value = body.get("token") or body.get("access_token")
        if not isinstance(value, str) or not value:
            raise _bad_answer(host, response.url.path, "no token or access_token")
        lifetime = body.get("expires_in")
        seconds = lifetime if isinstance(lifetime, int | float) and lifetime > 0 else DEFAULT_TOKEN_SECONDS
        token = _Token(value, self._clock.now() + timedelta(seconds=seconds))
        with self._lock:
            self._tokens[key] = token
        return token.value


@dataclass(frozen=True)
class _Entry:
    limit: int
    expires_at: datetime
    images: tuple[ImageTag, ...]


class CachedRegistry:
    """`images()` of a RegistryClient, remembered per (registry, repository) for `ttl_seconds`.

    Only successes are remembered; concurrent misses for one repository wait for a single fetch.
    """

    def __init__(self, client: RegistryClient, *, ttl_seconds: float, clock: Clock) -> None:
        self.client = client
        self._ttl = timedelta(seconds=ttl_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._generations: dict[tuple[str, str], int] = {}
        self._fetch_locks: dict[tuple[str, str], threading.Lock] = {}

    def images(self, registry: str, repository: str, *, limit: int = 100) -> list[ImageTag]:
        key = (_registry_host(registry), repository)
        if (hit := self._fresh(key, limit)) is not None:
            return hit
        with self._lock:
            fetch_lock = self._fetch_locks.setdefault(key, threading.Lock())
        with fetch_lock:
            if (hit := self._fresh(key, limit)) is not None:
                return hit
            with self._lock:
                generation = self._generations.get(key, 0)
            images = self.client.images(key[0], repository, limit=limit)
            with self._lock:
                if self._generations.get(key, 0) == generation:
                    self._entries[key] = _Entry(limit, self._clock.now() + self._ttl, tuple(images))
        return images

    def invalidate(self, registry: str, repository: str) -> None:
        key = (_registry_host(registry), repository)
        with self._lock:
            self._entries.pop(key, None)
            self._generations[key] = self._generations.get(key, 0) + 1

    def _fresh(self, key: tuple[str, str], limit: int) -> list[ImageTag] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.limit != limit or entry.expires_at <= self._clock.now():
                return None
            return list(entry.images)
