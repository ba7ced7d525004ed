"""Hostile sources: symbolic links out of the tree, devices and FIFOs, YAML alias bombs, deep nesting,
oversized files and option-like git URLs. Each case is a folder (or a git repository) holding one good
descriptor beside the hostile one, imported as `quarterdeck import` imports it, on both dialects.

In every case the import ends quickly (a 20 s alarm is only a safety net, not a speed test), its
Python allocations peak below MEMORY_CEILING (tracemalloc: an assertion that can fail), the hostile
file is a located error of its own, and the good descriptor is in the catalog afterwards. An address
space limit keeps a runaway read (the unpatched importer on /dev/zero) from taking the machine down.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from quarterdeck.catalog import service
from quarterdeck.catalog.descriptors.limits import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_DOCUMENTS,
    MAX_FILE_BYTES,
    MAX_NODES,
)
from quarterdeck.catalog.importer import ImportReport, import_source
from quarterdeck.cli import app as cli
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from quarterdeck.errors import Invalid, NotFound
from quarterdeck.integrations import git
from tests.helpers import git as run_git

SAFETY_NET_SECONDS = 20
MEMORY_CEILING = 200 * 1024 * 1024
ADDRESS_SPACE_HEADROOM = 4 * 1024 * 1024 * 1024

GOOD = """\
apiVersion: quarterdeck/v1
kind: Team
slug: payments-team
name: Payments
---
apiVersion: quarterdeck/v1
kind: Service
slug: payments-api
owner: payments-team
"""

OUTSIDER = """\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: outsider
spec:
  type: service
  lifecycle: production
  owner: payments-team
"""


def component(name: str) -> str:
    """A Backstage Component owned by payments-team."""
    return OUTSIDER.replace("name: outsider", f"name: {name}")


def api_with_text(target: str) -> str:
    return (
        "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: leaky-api\nspec:\n"
        "  type: openapi\n  lifecycle: production\n  owner: payments-team\n"
        f"  definition:\n    $text: {target}\n"
    )


def billion_laughs() -> str:
    """The classic: nine levels of nine aliases each, 81 aliases in all, 9^9 strings expanded."""
    lines = ['a0: &a0 "lol"']
    for level in range(1, 10):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def wide_aliases() -> str:
    """Few nodes expanded, but far more alias references than the limit allows."""
    refs = ", ".join(["*item"] * (MAX_ALIASES * 50))
    return f"apiVersion: quarterdeck/v1\nkind: Service\nitem: &item x\ntags: [{refs}]\n"


def merge_bomb() -> str:
    """Merge keys `<<: [*m, *m, ...]` nested: PyYAML's flattening copies each merged mapping."""
    lines = ["m0: &m0 {k0: 0, k1: 1, k2: 2, k3: 3, k4: 4, k5: 5, k6: 6, k7: 7, k8: 8, k9: 9}"]
    for level in range(1, 10):
        merges = ", ".join([f"*m{level - 1}"] * 10)
        lines.append(f"m{level}: &m{level}\n  <<: [{merges}]\n  own{level}: {level}")
    return "\n".join(lines) + "\n"


def nested_block(levels: int) -> str:
    """`levels` mappings, each indented under the one before."""
    return "".join(f"{'  ' * depth}k{depth}:\n" for depth in range(levels)) + "  " * levels + "end\n"


@dataclass
class Expected:
    """What the report must say about the hostile file."""

    file: str
    fragment: str
    line: int | None = None
    notice: bool = False  # reported among the notices (an unfollowed Location target), not the errors


Build = Callable[[Path, Path], Expected]
"""Writes the hostile part of a case into the source (first argument) and, when it needs one, into a
folder beside the source (second argument); returns what the report must say."""


def symlink_to_outside_file(source: Path, outside: Path) -> Expected:
    (outside / "secret.yaml").write_text(OUTSIDER, encoding="utf-8")
    (source / "evil").mkdir()
    (source / "evil" / "catalog-info.yaml").symlink_to(outside / "secret.yaml")
    return Expected("evil/catalog-info.yaml", "symbolic link to a place outside the source")


def symlink_to_outside_folder(source: Path, outside: Path) -> Expected:
    # the walk never enters a linked folder; a $text reaching through it is refused
    (outside / "catalog-info.yaml").write_text(OUTSIDER, encoding="utf-8")
    (outside / "openapi.yaml").write_text("openapi: 3.0.0\n", encoding="utf-8")
    (source / "linked").symlink_to(outside, target_is_directory=True)
    (source / "evil").mkdir()
    (source / "evil" / "catalog-info.yaml").write_text(
        api_with_text("../linked/openapi.yaml"), encoding="utf-8"
    )
    return Expected("evil/catalog-info.yaml", "outside the source", line=9)


def symlink_to_dev_zero(source: Path, outside: Path) -> Expected:
    (source / "evil").mkdir()
    (source / "evil" / "catalog-info.yaml").symlink_to("/dev/zero")
    return Expected("evil/catalog-info.yaml", "outside the source")


def fifo_in_the_tree(source: Path, outside: Path) -> Expected:
    (source / "evil").mkdir()
    os.mkfifo(source / "evil" / "catalog-info.yaml")
    os.mkfifo(source / "evil" / "values.yaml")  # sniffed for an apiVersion if it could be opened: it is not
    return Expected("evil/catalog-info.yaml", "is a FIFO, not a regular file")


def symlink_loop(source: Path, outside: Path) -> Expected:
    (source / "evil").mkdir()
    (source / "evil" / "catalog-info.yaml").symlink_to("catalog-info.yaml")
    return Expected("evil/catalog-info.yaml", "symbolic link loop")


def classic_billion_laughs(source: Path, outside: Path) -> Expected:
    write(source / "evil" / "catalog-info.yaml", billion_laughs())
    return Expected("evil/catalog-info.yaml", f"the limit is {MAX_NODES}")


def many_alias_references(source: Path, outside: Path) -> Expected:
    write(source / "evil" / "quarterdeck.yaml", wide_aliases())
    return Expected("evil/quarterdeck.yaml", f"alias references (*name): the limit is {MAX_ALIASES}", line=3)


def nested_merge_keys(source: Path, outside: Path) -> Expected:
    write(source / "evil" / "catalog-info.yaml", merge_bomb())
    return Expected("evil/catalog-info.yaml", f"the limit is {MAX_NODES}")


def recursive_alias(source: Path, outside: Path) -> Expected:
    write(source / "evil" / "catalog-info.yaml", "apiVersion: quarterdeck/v1\nloop: &loop [1, *loop]\n")
    return Expected("evil/catalog-info.yaml", "recursive alias", line=2)


def scalar_over_the_size_limit(source: Path, outside: Path) -> Expected:
    write(source / "evil" / "catalog-info.yaml", "description: " + "x" * MAX_FILE_BYTES + "\n")
    return Expected("evil/catalog-info.yaml", f"bytes; the limit is {MAX_FILE_BYTES}")


def long_key_over_many_children(source: Path, outside: Path) -> Expected:
    # under the size limit; recording a path per child would copy the 400 KB key 20,000 times
    children = "".join(f"  c{index}: 1\n" for index in range(20_000))
    # an implicit key stops at 1,024 characters (YAML's rule); an explicit `? key` has no such limit
    write(
        source / "evil" / "quarterdeck.yaml",
        GOOD.split("---\n")[1] + "? " + "k" * 400_000 + "\n:\n" + children,
    )
    return Expected("evil/quarterdeck.yaml", "unknown field", line=1)  # too long a path: the document's line


def ten_thousand_brackets(source: Path, outside: Path) -> Expected:
    write(source / "evil" / "catalog-info.yaml", "[" * 10_000 + "]" * 10_000 + "\n")
    return Expected("evil/catalog-info.yaml", f"nesting is too deep: the limit is {MAX_DEPTH}", line=1)


def nesting_past_the_depth_limit(source: Path, outside: Path) -> Expected:
    write(source / "evil" / "catalog-info.yaml", nested_block(MAX_DEPTH + 10))
    return Expected(
        "evil/catalog-info.yaml", f"nesting is too deep: the limit is {MAX_DEPTH}", line=MAX_DEPTH
    )


def ten_thousand_brackets_in_json(source: Path, outside: Path) -> Expected:
    # a tab YAML refuses, JSON does not: the file is read again as JSON, which recurses
    write(source / "evil" / "catalog-info.json", "\t" + "[" * 10_000 + "]" * 10_000)
    return Expected("evil/catalog-info.json", f"nesting is too deep: the limit is {MAX_DEPTH}")


def ten_thousand_documents(source: Path, outside: Path) -> Expected:
    write(source / "evil" / "catalog-info.yaml", "---\n" * 10_000)
    return Expected("evil/catalog-info.yaml", f"too many YAML documents: the limit is {MAX_DOCUMENTS}")


def location_target_outside(source: Path, outside: Path) -> Expected:
    (outside / "catalog-info.yaml").write_text(OUTSIDER, encoding="utf-8")
    location = (
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: escape\nspec:\n  targets:\n"
        f"    - ../../{outside.name}/catalog-info.yaml\n    - ../linked/*.yaml\n    - ../linked/**\n"
    )
    (source / "linked").symlink_to(outside, target_is_directory=True)
    write(source / "evil" / "catalog-info.yaml", location)
    return Expected("evil/catalog-info.yaml", "is outside the source", notice=True)


def text_reference_outside(source: Path, outside: Path) -> Expected:
    (outside / "secret.txt").write_text("not yours", encoding="utf-8")
    write(source / "evil" / "catalog-info.yaml", api_with_text(f"../../{outside.name}/secret.txt"))
    return Expected("evil/catalog-info.yaml", "$text", line=9)


CASES: list[Build] = [
    symlink_to_outside_file,
    symlink_to_outside_folder,
    symlink_to_dev_zero,
    fifo_in_the_tree,
    symlink_loop,
    classic_billion_laughs,
    many_alias_references,
    nested_merge_keys,
    recursive_alias,
    scalar_over_the_size_limit,
    long_key_over_many_children,
    ten_thousand_brackets,
    nesting_past_the_depth_limit,
    ten_thousand_brackets_in_json,
    ten_thousand_documents,
    location_target_outside,
    text_reference_outside,
]


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


class StillRunning(BaseException):
    """Raised by the safety net; not an OSError (as TimeoutError is), which the importer may catch."""


@contextmanager
def bounded_run() -> Iterator[Callable[[], int]]:
    """Run the block under the safety nets; yields a function giving its peak of Python allocations."""

    def expire(_signal: int, _frame: FrameType | None) -> None:
        raise StillRunning(f"the import still ran after {SAFETY_NET_SECONDS}s")

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    in_use = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    previous = signal.signal(signal.SIGALRM, expire)
    ceiling = in_use + ADDRESS_SPACE_HEADROOM
    resource.setrlimit(
        resource.RLIMIT_AS, (ceiling if hard == resource.RLIM_INFINITY else min(ceiling, hard), hard)
    )
    signal.alarm(SAFETY_NET_SECONDS)
    tracemalloc.start()
    try:
        yield lambda: tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        signal.alarm(0)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, previous)


def import_bounded(
    sessions: sessionmaker[Session], settings: Settings, clock: FrozenClock, target: str
) -> ImportReport:
    with bounded_run() as peak:
        report = import_source(sessions, target, settings=settings, clock=clock)
        used = peak()
    assert used < MEMORY_CEILING, f"the import peaked at {used / 2**20:.0f} MiB of Python allocations"
    return report


def assert_reported(report: ImportReport, expected: Expected) -> None:
    problems = report.notices if expected.notice else report.errors
    located = [p for p in problems if p.file == expected.file and expected.fragment in p.message]
    assert located, (expected, report.errors, report.notices)
    if expected.line is not None:
        assert located[0].line == expected.line, located
    others = [p for p in report.errors if p.file != expected.file]
    assert others == [], others


def assert_good_imported_alone(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        assert service.service_view(session, "payments-api").owner == "payments-team"
        for slug in ("outsider", "leaky-api"):
            with pytest.raises(NotFound):
                service.service_view(session, slug)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    write(folder / "quarterdeck.yaml", GOOD)
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("build", CASES, ids=[case.__name__ for case in CASES])
def test_hostile_folder_is_refused_file_by_file(
    build: Build,
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FrozenClock,
    source: Path,
    outside: Path,
) -> None:
    expected = build(source, outside)

    report = import_bounded(sessions, settings, clock, str(source))

    assert_reported(report, expected)
    assert report.outcomes["quarterdeck.yaml"] == "imported"
    assert_good_imported_alone(sessions)


def test_symlink_inside_the_tree_is_followed(
    sessions: sessionmaker[Session], settings: Settings, clock: FrozenClock, source: Path
) -> None:
    # the target's extension keeps the walk from reading it a second time under its own name
    write(source / "shared" / "storefront.txt", component("storefront"))
    (source / "web").mkdir()
    (source / "web" / "catalog-info.yaml").symlink_to("../shared/storefront.txt")

    report = import_bounded(sessions, settings, clock, str(source))

    assert (report.errors, report.created) == ([], 3)
    with sessions() as session:
        assert service.service_view(session, "storefront").source.file == "web/catalog-info.yaml"


def test_location_glob_inside_the_tree_still_matches(
    sessions: sessionmaker[Session], settings: Settings, clock: FrozenClock, source: Path, outside: Path
) -> None:
    location = (
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: all\nspec:\n  targets:\n"
        "    - ./generated/**/*.txt\n    - ./linked/*.yaml\n"
    )
    write(source / "catalog-info.yaml", location)
    write(source / "generated" / "a" / "b" / "billing.txt", component("billing"))
    write(source / "generated" / "fx.txt", component("fx"))
    (outside / "outsider.yaml").write_text(OUTSIDER, encoding="utf-8")
    (source / "linked").symlink_to(outside, target_is_directory=True)

    report = import_bounded(sessions, settings, clock, str(source))

    assert report.errors == []
    assert sorted(report.outcomes) == [
        "catalog-info.yaml",
        "generated/a/b/billing.txt",
        "generated/fx.txt",
        "quarterdeck.yaml",
    ]
    assert [n.message for n in report.notices] == ["Location target './linked/*.yaml' is outside the source"]
    assert_good_imported_alone(sessions)


# ---------------------------------------------------------------- git sources


def test_git_checkout_with_symlinks_out_of_it(
    sessions: sessionmaker[Session], settings: Settings, clock: FrozenClock, source: Path, outside: Path
) -> None:
    (outside / "secret.yaml").write_text(OUTSIDER, encoding="utf-8")
    (source / "evil").mkdir()
    (source / "evil" / "catalog-info.yaml").symlink_to(outside / "secret.yaml")
    (source / "evil" / "passwd.yaml").symlink_to("/etc/passwd")
    write(source / "api" / "catalog-info.yaml", api_with_text("../evil/passwd.yaml"))
    write(source / "config" / "catalog-info.yaml", api_with_text("../.git/config"))
    run_git(source, "init", "--quiet", "--initial-branch=main")
    run_git(source, "add", "--all")
    run_git(source, "commit", "--quiet", "-m", "Describe payments, and try to read what is not ours")

    report = import_bounded(sessions, settings, clock, source.as_uri())

    assert report.revision == run_git(source, "rev-parse", "HEAD")
    link_out = "the file is a symbolic link to a place outside the source; not read"
    assert sorted((p.file, p.line, p.message) for p in report.errors) == [
        ("api/catalog-info.yaml", 9, f"$text '../evil/passwd.yaml': {link_out}"),
        (
            "config/catalog-info.yaml",
            9,
            "$text '../.git/config': the path leads into the source's .git folder; not read",
        ),
        ("evil/catalog-info.yaml", None, link_out),
    ]
    assert_good_imported_alone(sessions)


# ---------------------------------------------------------------- the command line


def test_cli_reports_the_hostile_file_and_exits_1(
    settings: Settings, tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(source / "evil" / "catalog-info.yaml", billion_laughs())
    monkeypatch.chdir(tmp_path)
    env = {"QD_DATABASE_URL": settings.database_url, "QD_GIT_CACHE_DIR": str(settings.git_cache_dir)}

    with bounded_run():
        result = CliRunner().invoke(cli, ["import", str(source)], env=env)

    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "2 entities: 2 created" in result.stdout
    assert re.search(
        rf"error evil/catalog-info.yaml:\d+: too many YAML nodes once aliases are expanded: "
        rf"the limit is {MAX_NODES}",
        result.stdout,
    ), result.stdout


OPTION_LIKE_TARGETS = [
    "--upload-pack=touch {marker}",
    "--upload-pack=touch {marker};.git",
    "-c core.sshCommand=touch {marker}",
    "--config=core.sshCommand=touch {marker} ssh://example.invalid/repo.git",
    "-uvtouch {marker}",
]


@pytest.mark.parametrize("target", OPTION_LIKE_TARGETS)
def test_option_like_git_url_never_reaches_git(
    target: str, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    target = target.format(marker=marker)
    monkeypatch.chdir(tmp_path)
    env = {"QD_DATABASE_URL": settings.database_url, "QD_GIT_CACHE_DIR": str(settings.git_cache_dir)}

    result = CliRunner().invoke(cli, ["import", "--", target], env=env)

    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: import target "), result.stderr
    assert "starts with '-'" in result.stderr
    assert not marker.exists()
    with pytest.raises(Invalid, match="starts with '-'"):
        git.checkout(target, tmp_path / "cache")
    assert not marker.exists()


def test_option_like_ref_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="git ref '--upload-pack=x' starts with '-'"):
        git.checkout("https://example.invalid/repo.git", tmp_path, ref="--upload-pack=x")


def test_clone_passes_the_url_after_a_double_dash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def fake_run(args: list[str], **_kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        return subprocess.CompletedProcess(args, 0, stdout="0" * 40, stderr="")

    monkeypatch.setattr("quarterdeck.integrations.git.subprocess.run", fake_run)

    git.checkout("https://example.invalid/repo.git", tmp_path, ref="main")

    clone = calls[0]
    assert clone[:2] == ["git", "clone"]
    assert clone[-3:] == ["--", "https://example.invalid/repo.git", str(clone[-1])]
    assert clone[clone.index("--branch") + 1] == "main"
