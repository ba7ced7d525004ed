"""Pushes one small OCI image per version of the example service into the demo's registry, over the
registry's HTTP API (standard library and httpx; the registry runs open, on loopback).

    python scripts/demo_registry.py http://127.0.0.1:5055 developer-experience/hello-service \
        1.0.0 1.1.0 1.2.0-bad

Each image is one tiny layer holding the version's name, so every version has its own digest; its
creation time (in the config blob and the manifest's `org.opencontainers.image.created`) is fixed per
version and grows with the order the versions are given in, so the portal lists them newest last given
first. Pushing again changes nothing: the same bytes make the same digests.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
import tarfile
from datetime import UTC, datetime, timedelta

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
FIRST_CREATED = datetime(2026, 11, 16, 9, 50, tzinfo=UTC)
"""When the first version's image was built; each next one a week later."""


class PushError(RuntimeError):
    """The registry refused a push; the message names the registry, repository and what was pushed."""


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _layer(text: str) -> tuple[bytes, bytes]:
    """A tar with one file, `version.txt`, holding `text`; and its gzip (both reproducible)."""
    payload = text.encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        member = tarfile.TarInfo("version.txt")
        member.size = len(payload)
        member.mtime = 0
        tar.addfile(member, io.BytesIO(payload))
    layer_tar = raw.getvalue()
    return layer_tar, gzip.compress(layer_tar, mtime=0)


def _push_blob(client: httpx.Client, where: str, repository: str, data: bytes) -> str:
    digest = _digest(data)
    if client.head(f"/v2/{repository}/blobs/{digest}").status_code == 200:
        return digest
    started = client.post(f"/v2/{repository}/blobs/uploads/")
    if started.status_code != 202:
        raise PushError(
            f"{where}: starting a blob upload answered {started.status_code}: {started.text[:300]}"
        )
    # The Location carries the upload's own query (?_state=...): add the digest to it, do not replace it.
    url = httpx.URL(started.headers["Location"]).copy_add_param("digest", digest)
    done = client.put(url, content=data, headers={"Content-Type": "application/octet-stream"})
    if done.status_code != 201:
        raise PushError(f"{where}: uploading blob {digest} answered {done.status_code}: {done.text[:300]}")
    return digest


def push_version(client: httpx.Client, where: str, repository: str, version: str, created: datetime) -> str:
    """Push the image of `version` tagged with it; its manifest digest."""
    stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    layer_tar, layer_gz = _layer(f"{repository} {version}\n")
    config = _compact(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": stamp,
            "config": {"Cmd": ["python3", "hello_service.py", "--version", version]},
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer_tar)]},
            "history": [{"created": stamp, "created_by": "scripts/demo_registry.py"}],
        }
    )
    config_digest = _push_blob(client, where, repository, config)
    layer_digest = _push_blob(client, where, repository, layer_gz)
    manifest = _compact(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer_gz)}],
            "annotations": {
                "org.opencontainers.image.created": stamp,
                "org.opencontainers.image.version": version,
            },
        }
    )
    answer = client.put(
        f"/v2/{repository}/manifests/{version}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    if answer.status_code != 201:
        raise PushError(
            f"{where}: the manifest of {version} answered {answer.status_code}: {answer.text[:300]}"
        )
    return _digest(manifest)


def push(base_url: str, repository: str, versions: list[str]) -> dict[str, str]:
    """Push every version (a week apart, the first built at FIRST_CREATED); version -> digest."""
    pushed: dict[str, str] = {}
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for index, version in enumerate(versions):
            where = f"{base_url}/v2/{repository} ({version})"
            try:
                pushed[version] = push_version(
                    client, where, repository, version, FIRST_CREATED + timedelta(weeks=index)
                )
            except httpx.TransportError as exc:
                raise PushError(f"{where}: the registry is not reachable: {exc}") from exc
    return pushed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Push one small OCI image per version into a registry.")
    parser.add_argument("registry", help="the registry's base URL, e.g. http://127.0.0.1:5055")
    parser.add_argument("repository", help="e.g. developer-experience/hello-service")
    parser.add_argument("versions", nargs="+", help="tags to push, oldest first")
    args = parser.parse_args(argv)
    try:
        pushed = push(args.registry.rstrip("/"), args.repository, args.versions)
    except PushError as exc:
        print(f"demo registry: {exc}", file=sys.stderr)
        return 1
    host = httpx.URL(args.registry).netloc.decode()
    print(f"pushed {host}/{args.repository}: " + ", ".join(f"{v} ({d[:19]})" for v, d in pushed.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
