"""Fetching a git repository with the git binary: shallow clone, or fetch when already cloned.

What the user names (a URL, a ref) reaches git only as a positional argument after `--`, and never
when it starts with `-`: `--upload-pack=...` or `-c core.sshCommand=...` would run a command.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from quarterdeck.errors import Invalid, Unavailable

GIT_TIMEOUT_SECONDS = 300
# Transports an import may use; git's `ext::` (runs a command) and the like are never allowed.
ALLOWED_PROTOCOLS = "file:git:http:https:ssh"


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


def _git(args: list[str], cwd: Path | None = None) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS}
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=GIT_TIMEOUT_SECONDS
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
            f"git {args[0]} failed: {message[-1] if message else 'exit ' + str(done.returncode)}",
            code="git.failed",
        )
    return done.stdout.strip()


def checkout(url: str, cache_dir: Path, ref: str | None = None) -> tuple[Path, str]:
    """A local working tree of `url` at `ref` (default branch when None), and its commit SHA."""
    refuse_option_like(url, "git URL")
    if ref is not None:
        refuse_option_like(ref, "git ref")
    cache_dir.mkdir(parents=True, exist_ok=True)
    folder = cache_dir / hashlib.sha256(url.encode()).hexdigest()[:16]
    if (folder / ".git").is_dir():
        _git(["fetch", "--depth", "1", "--", "origin", ref or "HEAD"], cwd=folder)
        _git(["reset", "--hard", "FETCH_HEAD"], cwd=folder)
        _git(["clean", "-fdx"], cwd=folder)
    else:
        args = ["clone", "--depth", "1", "--quiet"]
        if ref:
            args += ["--branch", ref]
        _git([*args, "--", url, str(folder)])
    return folder, _git(["rev-parse", "HEAD"], cwd=folder)
