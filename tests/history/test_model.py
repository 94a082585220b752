"""Model-based test of gc and checkout over generated Git histories (RELIABILITY K1, F1, F2).

A hypothesis state machine drives a real Git repository through `repro` (the CLI, in-process):
files in the tracked directory `data/` and the tracked file `model.bin` are written and
deleted, recorded (`repro commit`), committed, branched and tagged; `repro checkout REV`,
`repro checkout REV -- PATH` and `repro checkout` move the workspace, with and without
`--force`, often right after an unrecorded edit; `repro gc -f --grace 0` runs with every
combination of `--all-branches/--all-tags/--all-commits`. There is no remote: everything a
checkout needs must come from the local cache.

The model knows the exact bytes of every tracked file in the workspace, in the pointers and
at every commit, and which objects the cache holds. With a grace period of 0, gc is exact:
it must delete precisely the objects that neither the workspace, the index, HEAD nor the
revisions it was told to keep name. After every step:

- the workspace, the pointers, HEAD, the branch and Git's cleanliness are as modelled;
- the cache holds exactly the modelled objects, each hashing to its name (DESIGN §4
  invariant 2);
- after a gc, every kept revision that was whole before it is byte-exact in the cache, and
  one of them (every one in the slow run) is checked out offline with `repro checkout REV`
  in a scratch `git worktree` that shares the cache through `cache.dir` (invariant 4);
- a checkout without `--force` either refuses (exit 2, nothing touched) or leaves every byte
  that was in the workspace before it either still there or in the cache (invariant 3);
  with `--force` the workspace is exactly the target.

Pointers staged in the index count for gc too (RELIABILITY K2): with `core.autostage` off,
a pointer can be recorded, staged, then recorded again, so that only the index names a
version. A gc that is told to keep a revision whose directory manifest an earlier, narrower
gc deleted refuses and deletes nothing, as gc.py documents.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import pytest
import xxhash
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from typer.testing import CliRunner

from reprocli.core import manifest as manifest_format
from reprocli.core import pointer as pointer_format
from reprocli.core.hashing import ObjectId
from reprocli.core.objects import ObjectStore
from reprocli.core.paths import RepoPath
from tests.builders import git

DATA_NAMES = ("a.csv", "b.csv", "sub/c.csv", "sub/deep/d.bin", "e")
BRANCH_NAMES = ("main", "b1", "b2")
TAG_NAMES = ("v1", "v2", "v3")


class Big(bytes):
    """Bytes with a short repr: hypothesis prints strategies and steps, 4 MB at a time."""

    def __repr__(self) -> str:
        return "BIG"


BIG = Big(b"\0" * (1 << 20) + b"tail")  # over SMALL_FILE: streamed; its zero chunk is a hole
CONTENT = st.one_of(
    st.sampled_from([b"", b"1\n", b"2\n", b"shared bytes\n", BIG]),
    st.binary(min_size=1, max_size=40),
)
CONTENT_AFTER = b"changed: "
LINK_TYPES = (None, "copy", "hardlink", "symlink")  # None: the default, reflink then copy
POINTERS = ("data.repro", "model.bin.repro")

FAST = settings(  # about 30 s on a 2-core machine
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SLOW = settings(  # 1,000 histories take hours; REPRO_MODEL_EXAMPLES picks another number
    FAST, max_examples=int(os.environ.get("REPRO_MODEL_EXAMPLES", "1000")), stateful_step_count=60
)


def oid(data: bytes) -> str:
    """The object id of `data` (xxh3-128), computed without repro."""
    return xxhash.xxh3_128_hexdigest(data)


class Outcome(NamedTuple):
    """Exit code and output of one `repro` call."""

    exit_code: int
    stdout: str
    stderr: str


RUNNER = CliRunner()


@functools.cache
def repro_command() -> Any:
    """The click command of `repro`, built once: typer's CliRunner.invoke rebuilds it from the
    annotations on every call, which costs more than most repro commands."""
    import typer.main

    from reprocli.cli.app import app

    return typer.main.get_command(app)


def repro(where: Path, *args: str) -> Outcome:
    """Run `repro -C WHERE ARGS` in-process (as CliRunner.invoke does); the working directory
    is restored afterwards."""
    here = os.getcwd()
    code: Any = None
    with RUNNER.isolation() as (out, err, _):
        try:
            repro_command().main(args=["-C", str(where), *args], prog_name="repro")
        except SystemExit as exc:
            code = exc.code
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.chdir(here)
        outcome = Outcome(code or 0, out.getvalue().decode(), err.getvalue().decode())
    assert "Traceback" not in outcome.stderr, outcome
    assert "internal error" not in outcome.stderr, outcome
    return outcome


def ok(where: Path, *args: str) -> Outcome:
    """`repro ARGS`, which must succeed."""
    outcome = repro(where, *args)
    assert outcome.exit_code == 0, (args, outcome)
    return outcome


def files_under(top: Path) -> dict[str, bytes]:
    """Every file under `top` (links followed) as {relative POSIX path: bytes}."""
    found: dict[str, bytes] = {}
    for folder, _, names in os.walk(top):
        for name in names:
            path = Path(folder) / name
            rel = path.relative_to(top).as_posix()
            try:
                found[rel] = path.read_bytes()
            except FileNotFoundError:  # a dangling link: its bytes are gone
                found[rel] = b"<dangling link to " + os.readlink(path).encode() + b">"
    return found


class Snap(NamedTuple):
    """The tracked content of one state: data/ as sorted (path, bytes) pairs, and model.bin."""

    data: tuple[tuple[str, bytes], ...]
    model: bytes


@dataclass(frozen=True)
class Commit:
    """A commit the machine made: its parent and what its pointers name."""

    parent: str | None
    snap: Snap


class GcModel(RuleBasedStateMachine):
    """A repository, and the model of its workspace, pointers, commits, refs and cache."""

    base: Path | None = None
    """Where each example makes its temp folder (the test's tmp_path)."""
    checkout_every_kept = False
    """After gc, check out every kept revision in a worktree (not only one drawn at random)."""
    tally: ClassVar[Counter[str]] = Counter()
    """Across examples: histories, gc runs, offline checkouts (for the FIGURE line)."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp: Path | None = None
        self.counter = 0
        GcModel.tally["histories"] += 1

    # --- set-up and helpers -------------------------------------------------------------

    @initialize(
        files=st.dictionaries(st.sampled_from(DATA_NAMES), CONTENT, max_size=4),
        model=CONTENT,
        link=st.sampled_from(LINK_TYPES),
        autostage=st.booleans(),
    )
    def setup(
        self, files: dict[str, bytes], model: bytes, link: str | None, autostage: bool
    ) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="model-", dir=self.base))
        self.root = root = self.tmp / "repo"
        root.mkdir()
        self.link = link
        git(root, "init", "-q", "-b", "main")
        git(root, "config", "gc.auto", "0")
        ok(root, "init")
        self.autostage = autostage
        local = {"core": {"autostage": autostage}} | ({"cache": {"type": link}} if link else {})
        (root / ".repro/config.local.yaml").write_text(json.dumps({"version": 1, **local}))
        (root / "data").mkdir()
        self.work_data: dict[str, bytes] = {}
        for name, content in files.items():
            self.write(f"data/{name}", content)
        self.write("model.bin", model)
        self.cache_root = root / ".repro/cache"
        self.store = ObjectStore(self.cache_root)
        self.cache: set[str] = set()
        self.manifests: dict[tuple[tuple[str, bytes], ...], str] = {}
        ok(root, "add", "data", "model.bin")
        git(root, "add", "--", ".gitignore", *POINTERS)
        self.recorded = self.index = self.learn_recording()
        self.commits: dict[str, Commit] = {}
        self.branches: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.head = ""
        self.branch: str | None = "main"
        self.git_commit()

    def teardown(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, rel: str, content: bytes) -> None:
        """Write a workspace file as an editor would; a file shared with the cache (a hardlink
        or symlink checkout) is replaced, never written through (the tests run as root, so
        read-only modes would not stop an in-place write)."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or (path.exists() and path.stat().st_nlink > 1):
            path.unlink()
        path.write_bytes(content)
        if rel == "model.bin":
            self.work_model = content
        else:
            self.work_data[rel.removeprefix("data/")] = content

    def workspace(self) -> dict[str, bytes]:
        """The workspace as the model sees it: data/ files and model.bin, by repository path."""
        return {f"data/{k}": v for k, v in self.work_data.items()} | {"model.bin": self.work_model}

    def objects_of(self, snap: Snap) -> set[str]:
        """Every object a state's pointers name: file objects, the manifest, model.bin."""
        return {oid(b) for _, b in snap.data} | {self.manifests[snap.data], oid(snap.model)}

    def learn_recording(self) -> Snap:
        """After `repro add/commit`: the workspace is recorded and its bytes are in the cache.

        The manifest id is learnt from the pointer (the same tree must always get the same id)
        and its entries are checked against the model."""
        snap = Snap(tuple(sorted(self.work_data.items())), self.work_model)
        ptr = pointer_format.decode(
            (self.root / "data.repro").read_bytes(), file=RepoPath("data.repro")
        )
        assert self.manifests.setdefault(snap.data, ptr.oid) == ptr.oid, "same tree, new id"
        self.cache |= self.objects_of(snap)
        self.check_in_cache(snap, "the workspace just recorded")
        return snap

    def check_in_cache(self, snap: Snap, what: str) -> None:
        """Every byte of `snap` is readable from the cache, verified against its name."""
        entries = manifest_format.decode(
            self.store.read_bytes(ObjectId(self.manifests[snap.data])), where=what
        )
        assert {e.path: e.oid for e in entries} == {p: oid(b) for p, b in snap.data}, what
        for path, content in snap.data:
            assert self.store.path_of(ObjectId(oid(content))).read_bytes() == content, (what, path)
        model = self.store.path_of(ObjectId(oid(snap.model))).read_bytes()
        assert model == snap.model, (what, "model.bin")

    def revision_names(self) -> list[tuple[str, str]]:
        """(name, commit) of every branch, tag and commit, commits by their full SHA."""
        return (
            sorted(self.branches.items())
            + sorted(self.tags.items())
            + [(sha, sha) for sha in self.commits]  # in the order they were made
        )

    def reachable(self) -> set[str]:
        """Commits reachable from any ref or HEAD (what `git rev-list --all` lists)."""
        todo = [*self.branches.values(), *self.tags.values(), self.head]
        seen: set[str] = set()
        while todo:
            sha = todo.pop()
            if sha in seen:
                continue
            seen.add(sha)
            parent = self.commits[sha].parent
            if parent is not None:
                todo.append(parent)
        return seen

    def git_commit(self) -> None:
        """`git commit` of what is staged."""
        git(self.root, "commit", "-q", "--allow-empty", "-m", f"commit {len(self.commits)}")
        sha = git(self.root, "rev-parse", "HEAD").strip()
        self.commits[sha] = Commit(self.head or None, self.index)
        self.head = sha
        if self.branch is not None:
            self.branches[self.branch] = sha

    @property
    def git_dirty(self) -> bool:
        """Whether Git has uncommitted changes: staged, or pointers changed but not staged."""
        return self.recorded != self.index or self.index != self.commits[self.head].snap

    def predict(self, targets: dict[str, Any], force: bool) -> tuple[str | None, Snap]:
        """What restoring `targets` ({"data": Snap.data, "model.bin": bytes}) does: the error
        ("missing" or "uncommitted", or None) and the workspace afterwards.

        A workspace file is overwritten or deleted only when its bytes are in the cache (or
        with force); an untracked file whose bytes are not is kept; any object to write that
        the cache lacks (offline: no remote) is a MissingObjectError."""
        missing = False
        conflicts: list[str] = []
        data = dict(self.work_data)
        if "data" in targets:
            target = dict(targets["data"])
            if self.manifests[targets["data"]] not in self.cache:
                missing = True
            current = dict(self.work_data)
            data = {}
            for path, content in target.items():
                have = current.pop(path, None)
                unsafe = have is not None and have != content and oid(have) not in self.cache
                if unsafe and not force:
                    conflicts.append(path)
                    continue
                if have != content and oid(content) not in self.cache:
                    missing = True
                data[path] = content
            for path, have in current.items():
                if not force and oid(have) not in self.cache:
                    data[path] = have  # untracked and not safe anywhere else: kept
        model = self.work_model
        if "model.bin" in targets and targets["model.bin"] != model:
            if not force and oid(model) not in self.cache:
                conflicts.append("model.bin")
            elif oid(targets["model.bin"]) not in self.cache:
                missing = True
            else:
                model = targets["model.bin"]
        error = "missing" if missing else "uncommitted" if conflicts else None
        return error, Snap(tuple(sorted(data.items())), model)

    def expect(self, label: str, outcome: Outcome, error: str | None) -> None:
        """Success, or exit 2 with the error the model predicts."""
        event(f"{label}: {error or 'done'}")
        if error is None:
            assert outcome.exit_code == 0, outcome
            return
        assert outcome.exit_code == 2, (error, outcome)
        wording = {
            "git": "Git has uncommitted changes",
            "missing": "not in the cache",
            "uncommitted": "uncommitted change",
        }[error]
        assert wording in outcome.stderr, (error, outcome)

    def nothing_lost(self, before: dict[str, bytes]) -> None:
        """Every byte that was in the workspace is still there or intact in the cache."""
        now = files_under(self.root / "data")
        model = self.root / "model.bin"
        after = {f"data/{k}": v for k, v in now.items()} | (
            {"model.bin": model.read_bytes()} if model.exists() else {}
        )
        for path, content in before.items():
            if after.get(path) == content:
                continue
            assert self.store.verify(ObjectId(oid(content))), f"{path}: uncommitted bytes lost"

    def apply(self, snap: Snap) -> None:
        self.work_data = dict(snap.data)
        self.work_model = snap.model

    # --- edits --------------------------------------------------------------------------

    @rule(name=st.sampled_from(DATA_NAMES), content=CONTENT)
    def write_data(self, name: str, content: bytes) -> None:
        self.write(f"data/{name}", content)

    @precondition(lambda self: bool(self.work_data))
    @rule(data=st.data())
    def delete_data(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.work_data)))
        (self.root / "data" / name).unlink()
        del self.work_data[name]

    @rule(content=CONTENT)
    def write_model(self, content: bytes) -> None:
        self.write("model.bin", content)

    # --- recording and Git --------------------------------------------------------------

    @rule()
    def repro_commit(self) -> None:
        ok(self.root, "commit")
        self.recorded = self.learn_recording()
        if self.autostage:
            self.index = self.recorded

    @rule()
    def stage(self) -> None:
        git(self.root, "add", "--", *POINTERS)
        self.index = self.recorded

    @rule()
    def commit(self) -> None:
        self.git_commit()

    @rule()
    def repro_commit_and_commit(self) -> None:
        self.repro_commit()
        self.stage()
        self.git_commit()

    @rule(
        files=st.dictionaries(st.sampled_from(DATA_NAMES), CONTENT, min_size=1, max_size=3),
        model=st.none() | CONTENT,
        then=st.sampled_from(["commit", "stage", "record"]),
    )
    def new_version(self, files: dict[str, bytes], model: bytes | None, then: str) -> None:
        """Edit and record in one step, then stage and commit, only stage, or neither (with
        autostage off, a pointer recorded but not staged): many versions, in every place."""
        for name, content in files.items():
            self.write(f"data/{name}", content)
        if model is not None:
            self.write("model.bin", model)
        self.repro_commit()
        if then != "record":
            self.stage()
        if then == "commit":
            self.git_commit()

    @rule(
        first=st.dictionaries(st.sampled_from(DATA_NAMES), CONTENT, min_size=1, max_size=2),
        model=CONTENT,
        second=st.dictionaries(st.sampled_from(DATA_NAMES), CONTENT, max_size=2),
    )
    def stage_then_record_again(
        self, first: dict[str, bytes], model: bytes, second: dict[str, bytes]
    ) -> None:
        """A version recorded and staged, then another recorded over it (not staged when
        autostage is off): the index alone names the first one (RELIABILITY K2)."""
        self.new_version(first, model, "stage")
        self.new_version(second or first, CONTENT_AFTER + model, "record")

    @rule(name=st.sampled_from(BRANCH_NAMES), data=st.data())
    def branch_at(self, name: str, data: st.DataObject) -> None:
        if name == self.branch:
            return  # git refuses to move the branch checked out
        sha = data.draw(st.sampled_from(list(self.commits)))
        git(self.root, "branch", "-f", name, sha)
        self.branches[name] = sha

    @precondition(lambda self: any(b != self.branch for b in self.branches))
    @rule(data=st.data())
    def delete_branch(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(b for b in self.branches if b != self.branch)))
        git(self.root, "branch", "-q", "-D", name)
        del self.branches[name]

    @rule(name=st.sampled_from(TAG_NAMES), annotated=st.booleans(), data=st.data())
    def tag(self, name: str, annotated: bool, data: st.DataObject) -> None:
        sha = data.draw(st.sampled_from([self.head, *self.commits]))
        git(self.root, "tag", "-f", *(["-a", "-m", name] if annotated else []), name, sha)
        self.tags[name] = sha

    @precondition(lambda self: bool(self.tags))
    @rule(data=st.data())
    def delete_tag(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.tags)))
        git(self.root, "tag", "-d", name)
        del self.tags[name]

    # --- checkout -----------------------------------------------------------------------

    def switch(self, name: str, sha: str, force: bool) -> None:
        """`repro checkout [--force] NAME`, predicted by the model."""
        before = self.workspace()
        target = self.commits[sha].snap
        error, after = (
            ("git", Snap((), b""))
            if self.git_dirty
            else self.predict({"data": target.data, "model.bin": target.model}, force)
        )
        self.expect(
            "checkout REV",
            repro(self.root, "checkout", *(["--force"] if force else []), name),
            error,
        )
        if error is None:
            self.apply(after)
            self.recorded = self.index = target
            self.head = sha
            self.branch = name if name in self.branches else None
        if not force:
            self.nothing_lost(before)

    @rule(data=st.data(), force=st.booleans())
    def checkout_revision(self, data: st.DataObject, force: bool) -> None:
        self.switch(*data.draw(st.sampled_from(self.revision_names())), force)

    @rule(
        data=st.data(),
        where=st.sampled_from([*(f"data/{n}" for n in DATA_NAMES), "model.bin"]),
        force=st.booleans(),
    )
    def edit_then_checkout_revision(self, data: st.DataObject, where: str, force: bool) -> None:
        self.counter += 1
        self.write(where, f"unrecorded edit {self.counter}\n".encode())  # not in the cache
        self.switch(*data.draw(st.sampled_from(self.revision_names())), force)

    @rule(data=st.data(), path=st.sampled_from(["model.bin", "data"]), force=st.booleans())
    def checkout_path_from_revision(self, data: st.DataObject, path: str, force: bool) -> None:
        name, sha = data.draw(st.sampled_from(self.revision_names()))
        before = self.workspace()
        target = self.commits[sha].snap
        part = target.model if path == "model.bin" else target.data
        error, after = self.predict({path: part}, force)
        args = ("checkout", *(["--force"] if force else []), name, "--", path)
        self.expect("checkout REV -- PATH", repro(self.root, *args), error)
        if error is None:
            self.apply(after)
            if path == "model.bin":
                self.recorded = self.recorded._replace(model=target.model)
            else:
                self.recorded = self.recorded._replace(data=target.data)
            if self.autostage:  # only that pointer is staged
                self.index = self.index._replace(
                    **{"model" if path == "model.bin" else "data": part}
                )
        if not force:
            self.nothing_lost(before)

    @rule(force=st.booleans())
    def checkout_workspace(self, force: bool) -> None:
        before = self.workspace()
        error, after = self.predict(
            {"data": self.recorded.data, "model.bin": self.recorded.model}, force
        )
        self.expect(
            "checkout", repro(self.root, "checkout", *(["--force"] if force else [])), error
        )
        if error is None:
            self.apply(after)
        if not force:
            self.nothing_lost(before)

    # --- gc -----------------------------------------------------------------------------

    @rule(
        all_branches=st.booleans(),
        all_tags=st.booleans(),
        all_commits=st.booleans(),
        dry_first=st.booleans(),
        data=st.data(),
    )
    def gc(
        self,
        all_branches: bool,
        all_tags: bool,
        all_commits: bool,
        dry_first: bool,
        data: st.DataObject,
    ) -> None:
        self.run_gc(all_branches, all_tags, all_commits, dry_first, data)

    @rule(
        all_branches=st.booleans(),
        all_commits=st.booleans(),
        dry_first=st.booleans(),
        data=st.data(),
    )
    def gc_all_tags(
        self, all_branches: bool, all_commits: bool, dry_first: bool, data: st.DataObject
    ) -> None:
        self.run_gc(all_branches, True, all_commits, dry_first, data)

    @rule(
        all_tags=st.booleans(), all_commits=st.booleans(), dry_first=st.booleans(), data=st.data()
    )
    def gc_all_branches(
        self, all_tags: bool, all_commits: bool, dry_first: bool, data: st.DataObject
    ) -> None:
        self.run_gc(True, all_tags, all_commits, dry_first, data)

    @rule(dry_first=st.booleans(), data=st.data())
    def gc_workspace_only(self, dry_first: bool, data: st.DataObject) -> None:
        self.run_gc(False, False, False, dry_first, data)

    @rule(dry_first=st.booleans(), data=st.data())
    def gc_all_commits(self, dry_first: bool, data: st.DataObject) -> None:
        self.run_gc(False, False, True, dry_first, data)

    def run_gc(
        self,
        all_branches: bool,
        all_tags: bool,
        all_commits: bool,
        dry_first: bool,
        data: st.DataObject,
    ) -> None:
        """`repro gc -f --grace 0` with these flags deletes exactly what the model says nothing
        kept names; then every kept revision is intact in the cache and checks out offline."""
        kept = {self.head}
        if all_branches:
            kept |= set(self.branches.values())
        if all_tags:
            kept |= set(self.tags.values())
        if all_commits:
            kept |= self.reachable()
        keep = self.objects_of(self.recorded) | self.objects_of(self.index)
        for sha in kept:
            keep |= self.objects_of(self.commits[sha].snap)
        flags = [
            flag
            for flag, on in (
                ("--all-branches", all_branches),
                ("--all-tags", all_tags),
                ("--all-commits", all_commits),
            )
            if on
        ]
        doomed = sorted(self.cache - keep)
        snaps = [self.recorded, self.index] + [self.commits[sha].snap for sha in kept]
        if any(self.manifests[snap.data] not in self.cache for snap in snaps):
            # A kept directory whose manifest is gone (an earlier, narrower gc took it): gc
            # cannot tell what the directory needs, so it deletes nothing (gc.py docstring).
            for dry in [True] * dry_first + [False]:
                args = ("gc", "--dry" if dry else "-f", "--grace", "0", *flags)
                refused = repro(self.root, *args)
                assert refused.exit_code == 2, (args, refused)
                assert "cannot read the manifest" in refused.stderr, (args, refused)
            event("gc: refused (a kept manifest is gone)")
            return
        complete = [sha for sha in self.commits if sha in kept and self.complete(sha)]
        if dry_first:
            report = json.loads(
                ok(self.root, "gc", "--dry", "--grace", "0", *flags, "--json").stdout
            )
            assert report["stores"][0]["deleted"] == doomed, ("--dry", flags)
            assert set(self.store.iter_oids()) == self.cache, "--dry deleted something"
        report = json.loads(ok(self.root, "gc", "-f", "--grace", "0", *flags, "--json").stdout)
        assert report["stores"][0]["deleted"] == doomed, flags
        GcModel.tally["gc runs"] += 1
        event(f"gc: {'some' if doomed else 'no'} objects deleted")
        whole = [s for s in (self.recorded, self.index) if self.objects_of(s) <= self.cache]
        self.cache -= set(doomed)
        # DESIGN §4 invariant 4: what was whole before gc and is kept is whole after it.
        for snap in whole:
            self.check_in_cache(snap, "the workspace or the index")
        for sha in complete:
            self.check_in_cache(self.commits[sha].snap, f"kept commit {sha[:8]}")
        if complete and doomed:  # (when nothing was deleted, nothing could break)
            chosen = (
                complete if self.checkout_every_kept else [data.draw(st.sampled_from(complete))]
            )
            for sha in chosen:
                self.check_offline_checkout(sha)
                GcModel.tally["offline checkouts"] += 1

    def complete(self, sha: str) -> bool:
        """Whether the cache holds every object commit `sha` names."""
        return self.objects_of(self.commits[sha].snap) <= self.cache

    def check_offline_checkout(self, sha: str) -> None:
        """`repro checkout SHA` in a fresh worktree sharing the cache: byte-exact, no remote."""
        assert self.tmp is not None
        tree = self.tmp / "worktree"
        git(self.root, "worktree", "add", "-q", "--detach", str(tree), self.head)
        try:
            cache = {"dir": str(self.cache_root)} | ({"type": self.link} if self.link else {})
            local = json.dumps({"version": 1, "cache": cache})  # JSON is YAML
            (tree / ".repro/config.local.yaml").write_text(local)
            ok(tree, "checkout", sha)
            snap = self.commits[sha].snap
            assert git(tree, "rev-parse", "HEAD").strip() == sha
            assert files_under(tree / "data") == dict(snap.data), f"worktree at {sha[:8]}"
            assert (tree / "model.bin").read_bytes() == snap.model, f"worktree at {sha[:8]}"
        finally:
            git(self.root, "worktree", "remove", "--force", str(tree))

    # --- invariants ---------------------------------------------------------------------

    @invariant()
    def workspace_is_as_modelled(self) -> None:
        assert files_under(self.root / "data") == self.work_data
        assert (self.root / "model.bin").read_bytes() == self.work_model

    @invariant()
    def pointers_name_the_recorded_state(self) -> None:
        data = pointer_format.decode(
            (self.root / "data.repro").read_bytes(), file=RepoPath("data.repro")
        )
        assert (data.oid, data.size, data.nfiles) == (
            self.manifests[self.recorded.data],
            sum(len(b) for _, b in self.recorded.data),
            len(self.recorded.data),
        )
        model = pointer_format.decode(
            (self.root / "model.bin.repro").read_bytes(), file=RepoPath("model.bin.repro")
        )
        assert (model.oid, model.size) == (oid(self.recorded.model), len(self.recorded.model))

    @invariant()
    def git_is_as_modelled(self) -> None:
        status = git(self.root, "status", "--porcelain=v2", "--branch", "--untracked-files=no")
        lines = status.splitlines()
        assert f"# branch.oid {self.head}" in lines
        assert f"# branch.head {self.branch or '(detached)'}" in lines
        changed = {line.split()[-1]: line.split()[1] for line in lines if line.startswith("1 ")}
        head = self.commits[self.head].snap
        expected = {}
        for file, part in zip(POINTERS, ("data", "model"), strict=True):
            staged = getattr(self.index, part) != getattr(head, part)
            unstaged = getattr(self.recorded, part) != getattr(self.index, part)
            if staged or unstaged:
                expected[file] = ("M" if staged else ".") + ("M" if unstaged else ".")
        assert changed == expected, status
        assert [line for line in lines if line[0] not in "#1"] == [], status

    @invariant()
    def cache_holds_exactly_the_modelled_objects_each_named_by_its_hash(self) -> None:
        present = set(self.store.iter_oids())
        assert present == self.cache, (present - self.cache, self.cache - present)
        corrupt = [o for o in present if not self.store.verify(o)]
        assert corrupt == [], corrupt


def run_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: settings, every_kept: bool
) -> None:
    """Run the machine with each example in its own folder under `tmp_path`. isolated_env has
    set HOME and the Git identity; fixed dates make every replay make the same commit SHAs."""
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2001-02-03T04:05:06+0000")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2001-02-03T04:05:06+0000")
    monkeypatch.setattr(GcModel, "base", tmp_path)
    monkeypatch.setattr(GcModel, "checkout_every_kept", every_kept)
    GcModel.tally.clear()
    run_state_machine_as_test(GcModel, settings=config)
    print(
        f"\nFIGURE K1: {GcModel.tally['histories']} generated histories of up to "
        f"{config.stateful_step_count} steps: {GcModel.tally['gc runs']} gc runs, "
        f"{GcModel.tally['offline checkouts']} offline checkouts of kept revisions, "
        "0 reachable objects deleted"
    )


def test_gc_keeps_every_revision_it_was_told_to_keep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RELIABILITY K1 (fast tier): gc, checkout and rollback over generated histories."""
    run_machine(tmp_path, monkeypatch, FAST, every_kept=False)


@pytest.mark.slow
def test_gc_keeps_every_revision_it_was_told_to_keep_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RELIABILITY K1 (slow tier): more and longer histories; every kept revision is checked
    out offline after each gc."""
    run_machine(tmp_path, monkeypatch, SLOW, every_kept=True)
