"""Fetching a git repository with the git binary: shallow clone, or fetch when already cloned; and
listing the blobs of the checked-out commit, so a re-sync can tell which files changed.

What the user names (a URL, a ref) reaches git only as a positional argument after `--`, and never
when it starts with `-`: `--upload-pack=...` or `-c core.sshCommand=...` would run a command.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from quarterdeck.errors import Invalid, Unavailable

GIT_TIMEOUT_SECONDS = 300
# Transports an import may use; git's `ext::` (runs a command) and the like are never allowed.
ALLOWED_PROTOCOLS = "file:git:http:https:ssh"
REGULAR_MODES = frozenset({"100644", "100755"})
SYMLINK_MODE = "120000"
# `https://user:token@host/...`: what git may echo back in an error, and what pages must not show.
CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


@dataclass(frozen=True)
class TreeEntry:
    """One file of a commit as `git ls-tree` lists it."""

    mode: str
    blob: str

    @property
    def is_regular(self) -> bool:
        return self.mode in REGULAR_MODES

    @property
    def is_symlink(self) -> bool:
        return self.mode == SYMLINK_MODE


def redact(text: str) -> str:
    """`text` with the credentials of any URL in it replaced by `***`."""
    return CREDENTIALS.sub("***@", text)


def looks_like_git_url(target: str) -> bool:
    return target.startswith(("http://", "https://", "ssh://", "git://", "git@", "file://")) or (
        target.endswith(".git") and not Path(target).is_dir()
    )


def refuse_option_like(value: str, what: str) -> None:
    """Refuse a URL, path or ref that git (or any command) would read as an option."""
    if value.startswith("-"):
        raise Invalid(
            f"{what} {value!r} starts with '-', so git would read it as an option; refused",
            code="import.invalid_target",
            details=[{"field": what, "message": "must not start with '-'"}],
        )


def _git(args: list[str], cwd: Path | None = None, *, strip: bool = True) -> str:
    """git's output; file names that are not UTF-8 come back as os.walk gives them (surrogate escapes)."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS}
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            errors="surrogateescape",
            timeout=GIT_TIMEOUT_SECONDS,
        )
    except FileNotFoundError as exc:
        raise Unavailable("the git binary is not installed", code="git.missing") from exc
    except subprocess.TimeoutExpired as exc:
        raise Unavailable(
            f"git {args[0]} took longer than {GIT_TIMEOUT_SECONDS}s", code="git.timeout"
        ) from exc
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise Unavailable(
            redact(f"git {args[0]} failed: {message[-1] if message else 'exit ' + str(done.returncode)}"),
            code="git.failed",
        )
    return done.stdout.strip() if strip else done.stdout


def _folder(url: str, cache_dir: Path) -> Path:
    return cache_dir / hashlib.sha256(url.encode()).hexdigest()[:16]


def checkout(url: str, cache_dir: Path, ref: str | None = None) -> tuple[Path, str]:
    """A local working tree of `url` at `ref` (default branch when None), and its commit SHA.

    When the fetched commit is the one checked out already, the working tree is left as it is:
    resetting a tree of 10,000 files costs a fifth of a second even when nothing changed. (A reset
    that died half-way has not moved HEAD yet, so the next fetch resets again.)
    """
    refuse_option_like(url, "git URL")
    if ref is not None:
        refuse_option_like(ref, "git ref")
    cache_dir.mkdir(parents=True, exist_ok=True)
    folder = _folder(url, cache_dir)
    if (folder / ".git").is_dir():
        _git(["fetch", "--depth", "1", "--", "origin", ref or "HEAD"], cwd=folder)
        fetched = _git(["rev-parse", "FETCH_HEAD"], cwd=folder)
        if fetched != _git(["rev-parse", "HEAD"], cwd=folder):
            _git(["reset", "--hard", fetched], cwd=folder)
            _git(["clean", "-fdx"], cwd=folder)
        return folder, fetched
    args = ["clone", "--depth", "1", "--quiet"]
    if ref:
        args += ["--branch", ref]
    _git([*args, "--", url, str(folder)])
    return folder, _git(["rev-parse", "HEAD"], cwd=folder)


@contextmanager
def working_copy(url: str, cache_dir: Path, ref: str | None = None) -> Iterator[tuple[Path, str]]:
    """checkout(), holding an exclusive lock on the cached copy until the block ends: two syncs of one
    repository (threads or processes of this machine) never fetch into, or read from, a working tree
    that the other is changing. The second waits for the first."""
    refuse_option_like(url, "git URL")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(_folder(url, cache_dir).with_suffix(".lock"), "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield checkout(url, cache_dir, ref)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def list_files(folder: Path) -> dict[str, TreeEntry]:
    """Every file of the checked-out commit (HEAD of `folder`), by path relative to the repository's
    top, with its mode and blob SHA: one `git ls-tree`, whatever the number of files."""
    listing = _git(["ls-tree", "-r", "-z", "--full-tree", "HEAD"], cwd=folder, strip=False)
    files: dict[str, TreeEntry] = {}
    for record in listing.split("\0"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        mode, kind, blob = meta.split(" ")
        if kind == "blob":
            files[path] = TreeEntry(mode, blob)
    return files
