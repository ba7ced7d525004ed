"""The OCI registry adapter against the real `docker-registry` (open, htpasswd, and token auth).

httpx.MockTransport stands in only for answers distribution 2.8 never gives: `Link` pagination (it
ignores `?n=`), malformed JSON, and a manifest without a `Docker-Content-Digest` header.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from quarterdeck.clock import FrozenClock
from quarterdeck.errors import Invalid, NotFound, Unavailable
from quarterdeck.integrations.oci_registry import (
    DOCKER_HUB,
    CachedRegistry,
    ImageRef,
    ImageTag,
    RegistryClient,
    parse_image_ref,
)
from tests.conftest import NOW
from tests.pg_cluster import free_port
from tests.registry_server import (
    BASIC_PASSWORD,
    BASIC_USERNAME,
    ChallengeAuth,
    TokenAuth,
    TokenRequest,
    delete_manifest,
    push_image,
    push_index,
    registry_installed,
    registry_server,
)

SHA = "sha256:" + "0123456789abcdef" * 4
OLD = "2024-01-02T03:04:05Z"
NEW = "2024-03-04T05:06:07.123456789Z"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# --- parsing references ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        # an official image: Docker Hub, under library/
        ("nginx", ImageRef(DOCKER_HUB, "library/nginx", None, None)),
        # a tag after the last slash
        ("nginx:1.25-alpine", ImageRef(DOCKER_HUB, "library/nginx", "1.25-alpine", None)),
        # a first component without . or : is a Docker Hub namespace, not a registry
        ("someone/app", ImageRef(DOCKER_HUB, "someone/app", None, None)),
        # docker.io is spelled registry-1.docker.io on the wire
        ("docker.io/x/y", ImageRef(DOCKER_HUB, "x/y", None, None)),
        # docker.io with a single component still gets library/
        ("docker.io/nginx:latest", ImageRef(DOCKER_HUB, "library/nginx", "latest", None)),
        # the legacy index name is Docker Hub too
        ("index.docker.io/library/redis", ImageRef(DOCKER_HUB, "library/redis", None, None)),
        # host:port registry; the colon of the port is not a tag
        ("127.0.0.1:5055/demo/app:1.0", ImageRef("127.0.0.1:5055", "demo/app", "1.0", None)),
        # a port-only registry without a tag
        ("127.0.0.1:5055/demo/app", ImageRef("127.0.0.1:5055", "demo/app", None, None)),
        # pinned by digest
        (f"ghcr.io/org/app@{SHA}", ImageRef("ghcr.io", "org/app", None, SHA)),
        # tag and digest together: both kept
        (f"ghcr.io/org/app:v2@{SHA}", ImageRef("ghcr.io", "org/app", "v2", SHA)),
        # localhost is a registry without a dot or a port, and gets no library/
        ("localhost/app", ImageRef("localhost", "app", None, None)),
        # localhost with a port
        ("localhost:5000/team/app:dev", ImageRef("localhost:5000", "team/app", "dev", None)),
        # deep paths and every separator the grammar allows
        ("quay.io/a__b/c-d.e/f--g_h:1.0_rc-2", ImageRef("quay.io", "a__b/c-d.e/f--g_h", "1.0_rc-2", None)),
        # an IPv6 registry in brackets
        ("[::1]:5000/app:1", ImageRef("[::1]:5000", "app", "1", None)),
        # registry host names may have capitals; repositories may not
        ("Registry.Example.com/team/app", ImageRef("Registry.Example.com", "team/app", None, None)),
    ],
)
def test_parse_image_ref(ref: str, expected: ImageRef) -> None:
    assert parse_image_ref(ref) == expected


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        # nothing at all
        ("", "it is empty"),
        # uppercase repository on Docker Hub
        ("Nginx", "must be lowercase"),
        # uppercase repository after a registry
        ("ghcr.io/Org/app", "must be lowercase"),
        # an empty tag
        ("nginx:", "tag '' is not valid"),
        # a tag may not start with '-'
        ("nginx:-rc", "tag '-rc' is not valid"),
        # a tag has at most 128 characters
        ("nginx:" + "a" * 129, "is not valid"),
        # a short digest
        ("nginx@sha256:abc", "64 lowercase hex digits"),
        # uppercase hex in a digest
        ("nginx@sha256:" + "A" * 64, "64 lowercase hex digits"),
        # an algorithm nobody registers
        ("nginx@md5:" + "a" * 32, "does not start with sha256: or sha512:"),
        # a registry and no repository
        ("ghcr.io/", "the repository name is empty"),
        # only a digest
        (f"@{SHA}", "the repository name is empty"),
        # an empty path component
        ("ghcr.io/org//app", "is not a valid name"),
        # a separator at the end of a component
        ("ghcr.io/org_/app", "is not a valid name"),
        # whitespace
        ("nginx latest", "is not a valid name"),
        # a registry name starting with '-'
        ("-bad.io/app", "registry '-bad.io' is not a valid host[:port]"),
        # two tags: the first colon ends up inside the repository
        ("ghcr.io/org/app:1.0:2.0", "is not a valid name"),
        # longer than the 255 characters a name may have
        ("ghcr.io/" + "a" * 256, "longer than 255"),
    ],
)
def test_parse_image_ref_rejects(ref: str, problem: str) -> None:
    with pytest.raises(Invalid) as raised:
        parse_image_ref(ref)

    assert raised.value.code == "registry.bad_reference"
    assert f"image reference {ref!r} is not valid" in raised.value.message
    assert problem in raised.value.message


# --- the real registry ----------------------------------------------------------------------------


def host_of(base_url: str) -> str:
    return httpx.URL(base_url).netloc.decode()


class CountingTransport(httpx.BaseTransport):
    """A real HTTP transport that remembers what it sent and what came back."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[tuple[str, int]] = []

    @property
    def count(self) -> int:
        return len(self.sent)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        self.sent.append((request.url.path, response.status_code))
        return response

    def close(self) -> None:
        self.inner.close()


def need_registry() -> None:
    if not registry_installed():
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    need_registry()
    with registry_server(tmp_path_factory.mktemp("registry")) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def demo(registry: str) -> dict[str, str]:
    """demo/app: 1.0.0 built at OLD, 1.1.0 built at NEW, and latest pointing at 1.1.0."""
    return {
        "1.0.0": push_image(registry, "demo/app", ["1.0.0"], created=OLD, payload=b"one"),
        "1.1.0": push_image(registry, "demo/app", ["1.1.0", "latest"], created=NEW, payload=b"two"),
    }


@pytest.fixture
def host(registry: str) -> str:
    return host_of(registry)


@pytest.fixture
def client(host: str) -> Iterator[RegistryClient]:
    with RegistryClient(plain_http_hosts=frozenset({host})) as registry_client:
        yield registry_client


def test_list_tags_returns_every_pushed_tag(client: RegistryClient, host: str, demo: dict[str, str]) -> None:
    assert sorted(client.list_tags(host, "demo/app")) == ["1.0.0", "1.1.0", "latest"]


def test_tag_info_has_the_pushed_digest_and_config_created(
    client: RegistryClient, host: str, demo: dict[str, str]
) -> None:
    assert client.tag_info(host, "demo/app", "1.0.0") == ImageTag("1.0.0", demo["1.0.0"], at(OLD))
    assert client.tag_info(host, "demo/app", "latest") == ImageTag("latest", demo["1.1.0"], at(NEW))


def test_images_are_newest_first_with_ties_by_tag_name(
    client: RegistryClient, host: str, demo: dict[str, str]
) -> None:
    images = client.images(host, "demo/app")

    assert [(image.tag, image.digest) for image in images] == [
        ("1.1.0", demo["1.1.0"]),
        ("latest", demo["1.1.0"]),
        ("1.0.0", demo["1.0.0"]),
    ]
    assert images[0].created == datetime(2024, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def test_images_reads_at_most_limit_tags(host: str, demo: dict[str, str]) -> None:
    transport = CountingTransport()
    with RegistryClient(plain_http_hosts=frozenset({host}), transport=transport) as counted:
        images = counted.images(host, "demo/app", limit=1)

    assert [image.tag for image in images] == ["latest"]
    assert transport.count == 3  # tags/list, one manifest, one config blob


def test_created_falls_back_to_the_manifest_annotation(
    client: RegistryClient, registry: str, host: str
) -> None:
    digest = push_image(registry, "demo/annotated", ["1"], created=OLD, config_created=False)

    assert client.tag_info(host, "demo/annotated", "1") == ImageTag("1", digest, at(OLD))


def test_an_index_reports_its_own_digest_and_the_linux_amd64_build_time(
    client: RegistryClient, registry: str, host: str
) -> None:
    arm = push_image(registry, "demo/multi", [], created=OLD, payload=b"arm", architecture="arm64")
    amd = push_image(registry, "demo/multi", [], created=NEW, payload=b"amd")
    both = push_index(registry, "demo/multi", "both", [(arm, "linux", "arm64"), (amd, "linux", "amd64")])
    arm_only = push_index(registry, "demo/multi", "arm", [(arm, "linux", "arm64")])

    assert client.tag_info(host, "demo/multi", "both") == ImageTag("both", both, at(NEW))
    assert client.tag_info(host, "demo/multi", "arm") == ImageTag("arm", arm_only, at(OLD))


def test_a_repository_whose_tags_were_deleted_has_none(
    client: RegistryClient, registry: str, host: str
) -> None:
    digest = push_image(registry, "demo/gone", ["1"], created=OLD)
    delete_manifest(registry, "demo/gone", digest)

    assert client.list_tags(host, "demo/gone") == []
    assert client.images(host, "demo/gone") == []


def test_unknown_repository_or_tag_is_not_found(
    client: RegistryClient, host: str, demo: dict[str, str]
) -> None:
    with pytest.raises(NotFound, match="repository demo/nothing"):
        client.list_tags(host, "demo/nothing")
    with pytest.raises(NotFound, match=r"tag 9\.9\.9 of repository demo/app"):
        client.tag_info(host, "demo/app", "9.9.9")


def test_bad_names_are_refused_before_any_request(client: RegistryClient, host: str) -> None:
    with pytest.raises(Invalid) as raised:
        client.list_tags(host, "Demo/App")
    assert raised.value.code == "registry.bad_reference"
    with pytest.raises(Invalid, match="not a valid image tag"):
        client.tag_info(host, "demo/app", "../../blobs")


def test_a_registry_that_is_down_is_unavailable() -> None:
    down = f"127.0.0.1:{free_port()}"
    with RegistryClient(plain_http_hosts=frozenset({down})) as nobody, pytest.raises(Unavailable) as raised:
        nobody.list_tags(down, "demo/app")

    assert raised.value.code == "registry.unreachable"
    assert down in raised.value.message


# --- basic auth (htpasswd) ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    need_registry()
    with registry_server(tmp_path_factory.mktemp("basic"), basic_auth=True) as base_url:
        push_image(
            base_url, "team/app", ["1"], created=OLD, auth=httpx.BasicAuth(BASIC_USERNAME, BASIC_PASSWORD)
        )
        yield base_url


def test_basic_challenge_without_credentials_is_invalid(basic_registry: str) -> None:
    host = host_of(basic_registry)
    with RegistryClient(plain_http_hosts=frozenset({host})) as anonymous, pytest.raises(Invalid) as raised:
        anonymous.list_tags(host, "team/app")

    assert raised.value.code == "registry.unauthorized"
    assert f"registry {host} asks for a username and password" in raised.value.message


def test_basic_challenge_is_answered_with_the_credentials(basic_registry: str) -> None:
    host = host_of(basic_registry)
    transport = CountingTransport()
    with RegistryClient(
        username=BASIC_USERNAME,
        password=BASIC_PASSWORD,
        plain_http_hosts=frozenset({host}),
        transport=transport,
    ) as member:
        assert member.list_tags(host, "team/app") == ["1"]
        assert member.tag_info(host, "team/app", "1").created == at(OLD)

    assert transport.count == 4  # one 401, then tags, manifest and config sent with credentials up front


def test_wrong_basic_password_is_refused_without_echoing_it(basic_registry: str) -> None:
    host = host_of(basic_registry)
    wrong = "not-the-password-" + "x" * 8
    with (
        RegistryClient(username=BASIC_USERNAME, password=wrong, plain_http_hosts=frozenset({host})) as member,
        pytest.raises(Invalid) as raised,
    ):
        member.list_tags(host, "team/app")

    assert raised.value.code == "registry.unauthorized"
    assert wrong not in str(raised.value) and wrong not in json.dumps(raised.value.details)


# --- Docker-Hub-style token auth ------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_auth() -> TokenAuth:
    return TokenAuth()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory, token_auth: TokenAuth) -> Iterator[str]:
    need_registry()
    with registry_server(tmp_path_factory.mktemp("token"), token_auth=token_auth) as base_url:
        pusher = ChallengeAuth(token_auth.username, token_auth.password)
        push_image(base_url, "demo/app", ["1.0"], created=OLD, payload=b"one", auth=pusher)
        push_image(base_url, "demo/app", ["2.0"], created=NEW, payload=b"two", auth=pusher)
        yield base_url


def test_bearer_flow_sends_credentials_to_the_realm_and_caches_the_token(
    token_registry: str, token_auth: TokenAuth
) -> None:
    host = host_of(token_registry)
    clock = FrozenClock(NOW)
    transport = CountingTransport()
    token_auth.requests.clear()
    with RegistryClient(
        username=token_auth.username,
        password=token_auth.password,
        plain_http_hosts=frozenset({host}),
        transport=transport,
        clock=clock,
    ) as member:
        assert [image.tag for image in member.images(host, "demo/app")] == ["2.0", "1.0"]
        assert sorted(member.list_tags(host, "demo/app")) == ["1.0", "2.0"]
        one_token = list(token_auth.requests)
        refused_before_expiry = [sent for sent in transport.sent if sent[1] == 401]

        clock.at = NOW + timedelta(seconds=token_auth.expires_in + 1)
        member.list_tags(host, "demo/app")

    asked = TokenRequest(token_auth.service, ("repository:demo/app:pull",), token_auth.username)
    assert one_token == [asked]
    assert refused_before_expiry == [("/v2/demo/app/tags/list", 401)]  # later calls sent the token up front
    assert token_auth.requests == [asked, asked]


def test_bearer_token_may_come_as_access_token(tmp_path: Path) -> None:
    need_registry()
    auth = TokenAuth(token_field="access_token", expires_in=120)
    with registry_server(tmp_path, token_auth=auth) as base_url:
        digest = push_image(
            base_url, "demo/app", ["1"], created=OLD, auth=ChallengeAuth(auth.username, auth.password)
        )
        host = host_of(base_url)
        with RegistryClient(
            username=auth.username, password=auth.password, plain_http_hosts=frozenset({host})
        ) as c:
            assert c.tag_info(host, "demo/app", "1") == ImageTag("1", digest, at(OLD))


def test_bearer_without_credentials_is_refused_by_the_token_service(token_registry: str) -> None:
    host = host_of(token_registry)
    with RegistryClient(plain_http_hosts=frozenset({host})) as anonymous, pytest.raises(Invalid) as raised:
        anonymous.list_tags(host, "demo/app")

    assert raised.value.code == "registry.unauthorized"
    assert f"the token service of registry {host} refused anonymous access" in raised.value.message


def test_bearer_with_a_wrong_password_is_refused_without_echoing_it(
    token_registry: str, token_auth: TokenAuth
) -> None:
    host = host_of(token_registry)
    wrong = "not-the-password-" + "y" * 8
    with (
        RegistryClient(
            username=token_auth.username, password=wrong, plain_http_hosts=frozenset({host})
        ) as member,
        pytest.raises(Invalid) as raised,
    ):
        member.list_tags(host, "demo/app")

    assert "refused the configured credentials" in raised.value.message
    assert wrong not in str(raised.value) and wrong not in json.dumps(raised.value.details)


# --- the cache ------------------------------------------------------------------------------------


def test_cached_images_do_not_reach_the_registry_until_the_ttl_passes(registry: str) -> None:
    host = host_of(registry)
    clock = FrozenClock(NOW)
    transport = CountingTransport()
    push_image(registry, "demo/cached", ["1"], created=OLD, payload=b"c1")
    with RegistryClient(plain_http_hosts=frozenset({host}), transport=transport) as inner:
        cached = CachedRegistry(inner, ttl_seconds=30, clock=clock)
        assert [image.tag for image in cached.images(host, "demo/cached")] == ["1"]
        sent = transport.count

        push_image(registry, "demo/cached", ["2"], created=NEW, payload=b"c2")
        clock.at = NOW + timedelta(seconds=29)
        assert [image.tag for image in cached.images(host, "demo/cached")] == ["1"]
        assert transport.count == sent

        clock.at = NOW + timedelta(seconds=31)
        assert [image.tag for image in cached.images(host, "demo/cached")] == ["2", "1"]


def test_invalidate_forgets_one_repository(registry: str) -> None:
    host = host_of(registry)
    push_image(registry, "demo/invalidated", ["1"], created=OLD, payload=b"i1")
    with RegistryClient(plain_http_hosts=frozenset({host})) as inner:
        cached = CachedRegistry(inner, ttl_seconds=300, clock=FrozenClock(NOW))
        cached.images(host, "demo/invalidated")
        push_image(registry, "demo/invalidated", ["2"], created=NEW, payload=b"i2")

        cached.invalidate(host, "demo/invalidated")

        assert [image.tag for image in cached.images(host, "demo/invalidated")] == ["2", "1"]


def test_a_failed_fetch_is_not_cached(registry: str) -> None:
    host = host_of(registry)
    with RegistryClient(plain_http_hosts=frozenset({host})) as inner:
        cached = CachedRegistry(inner, ttl_seconds=300, clock=FrozenClock(NOW))
        with pytest.raises(NotFound):
            cached.images(host, "demo/later")
        digest = push_image(registry, "demo/later", ["1"], created=OLD, payload=b"later")

        assert cached.images(host, "demo/later") == [ImageTag("1", digest, at(OLD))]


# --- answers the real registry never gives (httpx.MockTransport) -------------------------------------


def mocked(handler: Callable[[httpx.Request], httpx.Response]) -> RegistryClient:
    return RegistryClient(transport=httpx.MockTransport(handler))


def test_tag_pages_are_followed_through_link_headers() -> None:
    pages = {
        "": ({"tags": ["a", "b"]}, '</v2/x/app/tags/list?last=b&n=2>; rel="next"'),
        "last=b&n=2": ({"tags": ["c"]}, '<https://r.example/v2/x/app/tags/list?last=c&n=2>; rel="next"'),
        "last=c&n=2": ({"tags": None}, None),
    }

    def answer(request: httpx.Request) -> httpx.Response:
        body, link = pages[request.url.query.decode()]
        return httpx.Response(200, json=body, headers={"Link": link} if link else {})

    with mocked(answer) as client:
        assert client.list_tags("r.example", "x/app") == ["a", "b", "c"]


def test_malformed_json_is_a_bad_answer_naming_the_path() -> None:
    with (
        mocked(lambda request: httpx.Response(200, text="<html>proxy</html>")) as client,
        pytest.raises(Unavailable) as raised,
    ):
        client.list_tags("r.example", "x/app")

    assert raised.value.code == "registry.bad_answer"
    assert "/v2/x/app/tags/list" in raised.value.message


def test_a_manifest_without_a_digest_header_is_digested_from_its_body() -> None:
    manifest = json.dumps({"schemaVersion": 2, "config": {"digest": SHA}, "layers": []}).encode()

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/manifests/1"):
            return httpx.Response(200, content=manifest)
        return httpx.Response(200, json={"created": OLD})

    with mocked(answer) as client:
        info = client.tag_info("r.example", "x/app", "1")

    assert info == ImageTag("1", "sha256:" + hashlib.sha256(manifest).hexdigest(), at(OLD))
