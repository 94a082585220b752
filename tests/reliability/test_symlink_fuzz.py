"""The symlink-everywhere fuzzer of the confinement suite (RELIABILITY G3-fuzz, DESIGN §4 inv. 5).

A hostile repository commits symlinks anywhere: in tracked data, on the paths of params,
metrics, outputs and deps, over `repro.yaml`, `repro.lock` and pointers, and inside repro's
own `.repro/` (fan-out folders of the cache, run records, the stat cache). Each drawn layout
is committed in HEAD, in HEAD~1 (so `checkout HEAD~1` meets links the switch brings in or
takes away) or in both, and every read-only and writing command runs over it in-process.
Per command (the witnesses of `confined`, taken per call so each problem names its command):

- nothing outside the repository is written, created or deleted, and nothing under `.git/`
  changes but what Git itself rewrites (the two witnesses of `test_confinement`: the sandbox
  hash and the audit hook; the folder remote may only gain files, from `push`);
- the command ends cleanly (a refusal with exit 2 is fine, a traceback is not);
- no byte of the decoys outside (each carries `SENTINEL`) reaches stdout or stderr, a file of
  the workspace or the cache, the index, or the remote; no workspace file becomes a link or a
  hard link to a file outside (or under `.git/`).

Failures are collected over every layout and command and reported together, grouped. The
fast tier runs one explicit layout per hole found so far, and a seeded draw (the same on
every machine); `-m slow` draws REPRO_SYMLINK_FUZZ_EXAMPLES layouts (REPRO_SYMLINK_FUZZ_SEED
replays a run; REPRO_SYMLINK_FUZZ_TRACE=1 with -s prints every call).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import xxhash
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests.builders import git, make_tree
from tests.reliability.test_confinement import (
    _GIT_OWN,
    Invoke,
    Outcome,
    Sandbox,
    Witness,
    make_invoke,
    template_cli,
    template_env,
    watching,
)

SENTINEL = "SENTINEL-5b1d-symlink-fuzz"
TRACE = bool(os.environ.get("REPRO_SYMLINK_FUZZ_TRACE"))  # print every call (-s)
BIG = 3 << 20  # a file outside, larger than any parser's cap (never /dev/zero here)


def oid_of(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def object_path(data: bytes) -> str:
    oid = oid_of(data)
    return f".repro/cache/objects/{oid[:2]}/{oid[2:]}"


# --- the template project: two commits, a pipeline, a folder remote ------------------------------


def stage_yaml(version: int) -> str:
    """Two stages: `prepare` (a cached folder) and `train` (deps, params in two files, a cached
    output, two uncached metrics, one in a folder). The commands never read a dep: any outside
    byte that reaches an output got there through repro."""
    acc, loss = ("0.5", "0.25") if version == 1 else ("0.7", "0.2")
    prepare = ["mkdir -p prep", f"echo prepared-v{version} > prep/all.csv"]
    train = [
        "mkdir -p out eval",
        f"echo model-v{version} > out/result.txt",
        f"echo '{{\"acc\": {acc}}}' > metrics.json",
        f"echo '{{\"loss\": {loss}}}' > eval/metrics.json",
    ]
    return (
        "stages:\n"
        "  prepare:\n"
        f"    cmd: {json.dumps(prepare)}\n"
        "    deps: [data]\n"
        "    outs: [prep]\n"
        "  train:\n"
        f"    cmd: {json.dumps(train)}\n"
        "    deps: [prep/all.csv, params.yaml, conf/train.yaml]\n"
        "    params: [lr, {conf/train.yaml: [epochs]}]\n"
        "    outs: [out/result.txt]\n"
        "    metrics: [metrics.json, eval/metrics.json]\n"
    )


A1, A2 = b"a\n", b"a2\n"  # data/a.csv in HEAD~1 and HEAD


@dataclass(frozen=True)
class World:
    """The template sandbox `S` (repo, remote, home, decoys) and what the strategy draws from."""

    root: Path
    pool: tuple[str, ...]  # every path of the project, its folders, and new names inside them
    names: dict[str, str]  # placeholders for the explicit layouts: OBJ_A1, FAN_A2, RUNS_FAN


def _decoy(name: str, where: str) -> bytes:
    """Bytes of a decoy outside: parsable as params or metrics when its name says so."""
    if name.endswith((".json", ".yaml", ".yml", ".lock")):
        values = {SENTINEL: 1, "lr": SENTINEL, "epochs": SENTINEL, "acc": SENTINEL}
        return (json.dumps(values | {"loss": SENTINEL, "where": where}) + "\n").encode()
    return f"{SENTINEL} {where}\n".encode()


def _plant_decoys(world: Path, repo: Path, gone: list[str]) -> None:
    """Secrets, a 3 MiB file, and a mirror of every tail of every project path (in S/outside
    and in S itself) so that a link to `..` or to `outside` finds a decoy at each name."""
    outside = world / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(_decoy("secret.txt", "outside/secret.txt"))
    (outside / "secret.json").write_bytes(_decoy("secret.json", "outside/secret.json"))
    with open(outside / "big.txt", "wb") as handle:
        handle.write(_decoy("big.txt", "outside/big.txt"))
        handle.write((b"# " + b"x" * 77 + b"\n") * (BIG // 80))
    home = world / "home"
    home.mkdir(exist_ok=True)
    (home / ".bashrc").write_text(f"# decoy: must never change {SENTINEL} HOME/.bashrc\n")
    files = gone + sorted(
        p.relative_to(repo).as_posix()
        for p in repo.rglob("*")
        if p.is_file() and not p.relative_to(repo).as_posix().startswith(".git/")
    )
    tails = {"/".join(f.split("/")[i:]) for f in files for i in range(f.count("/") + 1)}
    # names shaped like objects that no pointer uses: what gc deletes when it lists them
    tails |= {"0" * 30, "f" * 30 + ".dir"}
    for base in (outside, world):
        for tail in sorted(tails):
            if tail.split("/")[0] in ("repo", "remote", "home", "outside"):
                continue
            path = base / tail
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if not path.exists():
                    path.write_bytes(_decoy(path.name, path.relative_to(world).as_posix()))
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                continue  # a tail that is a file in one path and a folder in another


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """HEAD~1: data, model.bin, legacy/, two stages, run and pushed (with the run-cache). HEAD:
    new data, params, commands, metrics, a new tracked folder `more/images` and no `legacy/`;
    only `data` is pushed, and its new file is then dropped from the cache (fetch and pull
    have work, push too)."""
    root = tmp_path_factory.mktemp("symlink-fuzz") / "S"
    repo = root / "repo"
    repo.mkdir(parents=True)
    with template_cli(repo, _env(root)) as cli:
        git(repo, "init", "-q", "-b", "main")
        cli("init")
        make_tree(
            repo,
            {
                "data/a.csv": A1,
                "data/sub/b.csv": "b\n",
                "model.bin": b"model\x00",
                "params.yaml": "lr: 1\n",
                "conf/train.yaml": "epochs: 10\n",
                "legacy/notes.txt": "old notes\n",
                "repro.yaml": stage_yaml(1),
            },
        )
        cli("add", "data", "model.bin", "legacy")
        cli("run")
        cli("remote", "add", "-d", "origin", "../remote")
        cli("push", "--run-cache")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "v1")
        make_tree(
            repo,
            {
                "data/a.csv": A2,
                "more/images/x.png": b"\x89PNG image\n",
                "params.yaml": "lr: 2\n",
                "conf/train.yaml": "epochs: 20\n",
                "repro.yaml": stage_yaml(2),
            },
        )
        cli("add", "data", "more/images")
        git(repo, "rm", "-q", "legacy.repro")
        shutil.rmtree(repo / "legacy")
        cli("run")
        cli("push", "data")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "v2")
    (repo / object_path(A2)).unlink()
    (repo / "fresh.bin").write_bytes(b"new data: its .gitignore line is written by add\n")
    runs = sorted(p.name for p in (repo / ".repro/cache/runs").iterdir())
    names = {
        "OBJ_A1": object_path(A1),
        "OBJ_A2": object_path(A2),
        "FAN_A1": object_path(A1).rsplit("/", 1)[0],
        "FAN_A2": object_path(A2).rsplit("/", 1)[0],
        "RUNS_FAN": f".repro/cache/runs/{runs[0]}",
    }
    _plant_decoys(root, repo, ["legacy/notes.txt"])
    return World(root, _pool(repo, [names["OBJ_A2"], "legacy", "legacy/notes.txt"]), names)


_NEW_INSIDE = (
    "",
    "data",
    "data/sub",
    "eval",
    "more",
    "conf",
    "prep",
    "out",
    "legacy",
    ".repro",
    ".repro/cache",
    ".repro/cache/objects",
    ".repro/cache/runs",
    ".repro/state",
    ".repro/tmp",
)


def _pool(repo: Path, extra: list[str]) -> tuple[str, ...]:
    """Every file and folder of the project (but .git), the objects the cache lacks, and a new
    name inside the folders an attack aims at. The same on every machine: SQLite's side files
    come and go, so they are named here whether they exist or not."""
    found = {
        p.relative_to(repo).as_posix()
        for p in repo.rglob("*")
        if not p.relative_to(repo).as_posix().startswith(".git/")
        and p.name not in (".git", "fresh.bin")
        and not p.name.startswith(".repro-tmp")
        and not p.name.endswith(("-journal", "-wal", "-shm"))
    }
    found |= set(extra)
    found |= {f"{folder}/new".lstrip("/") for folder in _NEW_INSIDE}
    found |= {".repro/config.local.yaml", ".repro/cache/tmp/new", ".repro/lock"}
    found |= {f".repro/state/stat.db-{side}" for side in ("wal", "shm", "journal")}
    return tuple(sorted(found))


def _env(root: Path) -> dict[str, str]:
    return template_env(root / "home")


# --- layouts -------------------------------------------------------------------------------------

# Placeholders: {S} the sandbox (absolute), {up} the way from the link's folder up to S
# (`../../`), {repo} the way up to the repository root (empty at the root), {sname} the
# sandbox's own name.
TARGETS: dict[str, str] = {
    "rel-secret": "{up}outside/secret.txt",
    "rel-json": "{up}outside/secret.json",
    "rel-outside": "{up}outside",
    "rel-outside-data": "{up}outside/data",
    "rel-outside-slash": "{up}outside/",
    "abs-double-slash": "{S}//outside/secret.json",
    "abs-secret": "{S}/outside/secret.txt",
    "abs-json": "{S}/outside/secret.json",
    "abs-outside": "{S}/outside",
    "home": "{S}/home",
    "bashrc": "{S}/home/.bashrc",
    "dotdot": "..",
    "dotdot-to-S": "{up}",
    "out-and-back": "{up}../{sname}/outside/secret.json",
    "git": "{repo}.git",
    "git-config": "{repo}.git/config",
    "git-hooks": "{repo}.git/hooks",
    "git-hook": "{repo}.git/hooks/post-checkout",
    "git-hooks-abs": "{S}/repo/.git/hooks",
    "git-objects": "{repo}.git/objects",
    "git-refs": "{repo}.git/refs/heads",
    "dangling": "{up}outside/missing/new.txt",
    "dangling-inside": "{repo}nowhere",
    "big": "{up}outside/big.txt",
    "cache-dotdot": "{repo}.repro/cache/objects/../../../../outside/secret.txt",
    "cache-dotdot-abs": "{S}/repo/.repro/cache/objects/../../../../outside/secret.json",
    "cache-dot-abs": "{S}/repo/.repro/cache/objects/./5c/../../../../../outside/secret.txt",
}
OUTSIDE_KINDS = [k for k in TARGETS if not k.startswith(("git", "dangling-inside"))]


@dataclass(frozen=True)
class SymlinkLayout:
    """Links a hostile repository commits (path -> target, with placeholders), in which commit
    (`head`, `old` i.e. HEAD~1, or `both`), and the link type the victim chose locally."""

    links: tuple[tuple[str, str], ...]
    commit: str = "head"
    link_type: str = "default"
    name: str = ""

    def __str__(self) -> str:
        links = ", ".join(f"{p} -> {t}" for p, t in self.links)
        extra = "" if self.link_type == "default" else f", cache.type {self.link_type}"
        label = f"{self.name}: " if self.name else ""
        return f"{label}[{links}] in {self.commit}{extra}"


def _nested(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


@st.composite
def layouts(draw: st.DrawFn, pool: tuple[str, ...]) -> SymlinkLayout:
    """1–4 links at project paths, each to an outside decoy, `..`, .git, a path inside, a
    dangling path, the 3 MiB file, or another link (itself to something outside)."""
    links: dict[str, str] = {}
    for index in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(pool))
        if any(_nested(path, other) for other in links):
            continue
        kind = draw(st.sampled_from([*TARGETS, "inside", "chain"]))
        if kind == "inside":
            target = "{repo}" + draw(st.sampled_from(pool))
        elif kind == "chain":
            chain = f"chain{index}"
            links[chain] = TARGETS[draw(st.sampled_from(OUTSIDE_KINDS))]
            target = "{repo}" + chain
        else:
            target = TARGETS[kind]
        links[path] = target
    return SymlinkLayout(
        tuple(links.items()),
        draw(st.sampled_from(["head", "old", "both"])),
        draw(st.sampled_from(["default", "default", "hardlink", "symlink"])),
    )


def render(target: str, link: str, root: Path) -> str:
    depth = link.count("/")
    return target.format(S=root, up="../" * (depth + 1), repo="../" * depth, sname=root.name)


def test_each_link_target_leads_where_its_name_says(tmp_path: Path) -> None:
    root = tmp_path / "S"
    expected = {
        "rel-secret": "outside/secret.txt",
        "rel-outside": "outside",
        "rel-outside-slash": "outside",
        "abs-double-slash": "outside/secret.json",
        "dotdot-to-S": "",
        "out-and-back": "outside/secret.json",
        "git-config": "repo/.git/config",
        "git-hooks-abs": "repo/.git/hooks",
        "dangling-inside": "repo/nowhere",
        "cache-dotdot": "outside/secret.txt",
        "cache-dotdot-abs": "outside/secret.json",
        "cache-dot-abs": "outside/secret.txt",
    }
    for link in ("x", "data/sub/x", ".repro/cache/objects/ab"):
        folder = root / "repo" / os.path.dirname(link)
        for kind, where in expected.items():
            landed = os.path.normpath(folder / render(TARGETS[kind], link, root))
            assert landed == os.path.normpath(root / where), (link, kind)


def _git(repo: Path, *args: str, index: Path | None = None, stdin: str | None = None) -> str:
    env = dict(os.environ, GIT_INDEX_FILE=str(index)) if index else None
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, input=stdin, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _with_links(repo: Path, index: Path, commit: str, links: dict[str, str]) -> str:
    """The tree of `commit` with each link in place of what was at (or under) its path."""
    _git(repo, "read-tree", commit, index=index)
    for path, target in links.items():
        under = _git(repo, "ls-files", "--", path, index=index).splitlines()
        if under:
            _git(repo, "update-index", "--force-remove", "--", *under, index=index)
        blob = _git(repo, "hash-object", "-w", "--stdin", stdin=target)
        _git(repo, "update-index", "--add", "--cacheinfo", f"120000,{blob},{path}", index=index)
    tree = _git(repo, "write-tree", index=index)
    index.unlink()
    return tree


def apply_layout(root: Path, layout: SymlinkLayout) -> list[str]:
    """Commit the links as a hostile repository would: in a rewritten HEAD (the workspace gets
    them too, replacing what was there), in a rewritten HEAD~1 (HEAD's tree unchanged), or in
    both. Returns the commits HEAD may point at after a `checkout`."""
    repo = root / "repo"
    if layout.link_type != "default":  # the victim's own choice, before the clone's links
        text = f"version: 1\ncache:\n  type: {layout.link_type}\n"
        (repo / ".repro" / "config.local.yaml").write_text(text)
    links = {path: render(target, path, root) for path, target in layout.links}
    old, head = _git(repo, "rev-parse", "HEAD~1"), _git(repo, "rev-parse", "HEAD")
    if layout.commit in ("old", "both"):
        tree = _with_links(repo, root / "layout.index", old, links)
        old = _git(repo, "commit-tree", tree, "-m", f"v1 with links {layout}")
    if layout.commit == "old":
        head = _git(repo, "commit-tree", f"{head}^{{tree}}", "-p", old, "-m", "v2")
    else:
        tree = _with_links(repo, root / "layout.index", head, links)
        head = _git(repo, "commit-tree", tree, "-p", old, "-m", f"v2 with links {layout}")
        for path, target in links.items():
            full = repo / path
            if full.is_dir() and not full.is_symlink():
                shutil.rmtree(full)
            elif os.path.lexists(full):
                full.unlink()
            full.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, full)
    _git(repo, "update-ref", "refs/heads/main", head)
    _git(repo, "read-tree", "HEAD")
    subprocess.run(["git", "update-index", "-q", "--refresh"], cwd=repo, check=False)
    return [old, head]


# --- the commands and the witnesses --------------------------------------------------------------

READ_ONLY: tuple[tuple[str, ...], ...] = (
    ("status",),
    ("status", "--json"),
    ("diff",),
    ("diff", "HEAD~1"),
    ("log", "data"),
    ("log", "out/result.txt"),
    ("metrics", "show"),
    ("metrics", "show", "--md"),
    ("metrics", "show", "HEAD~1"),
    ("metrics", "diff", "HEAD~1", "--md"),
    ("params", "diff", "HEAD~1"),
    ("params", "diff", "HEAD~1", "--all", "--json"),
    ("metrics", "show", "--all-commits", "--json"),
    ("diff", "HEAD~1", "HEAD", "--json"),
    ("status", "--remote"),
    ("dag",),
    ("run", "--dry"),
    ("gc", "--dry"),
    ("fsck",),
    ("doctor",),
)
WRITING: tuple[tuple[str, ...], ...] = (
    # first on the layout as committed, before a checkout replaces a link
    ("commit",),
    ("push",),
    ("fetch",),
    ("fetch", "--run-cache"),
    ("pull",),
    ("checkout",),
    ("checkout", "--force"),
    # a clean switch to HEAD~1 and back, with a look around while there
    ("checkout", "HEAD~1"),
    ("status",),
    ("metrics", "show"),
    ("params", "diff", "main"),
    ("checkout", "--force"),
    ("checkout", "main"),
    ("checkout", "HEAD~1", "--", "eval/metrics.json"),
    ("checkout", "--force", "HEAD~1", "--", "metrics.json"),
    ("checkout", "--force", "HEAD~1", "--", "data", "legacy"),
    ("commit",),
    ("add", "{linked}"),
    ("add", "fresh.bin"),
    ("run",),
    ("run", "--force"),
    ("push",),
    ("push", "--run-cache"),
    ("gc", "-f", "--grace", "0"),
    ("checkout", "--force", "HEAD~1"),
)
COMMANDS = READ_ONLY + WRITING


def _fingerprint_fast(
    root: Path, skip: Callable[[str], bool], memo: dict[tuple[object, ...], str]
) -> dict[str, str]:
    """`_fingerprint` of test_confinement, hashing a file again only when its lstat changed
    (the ctime cannot be set back: a write is never missed)."""
    found: dict[str, str] = {}
    for rel, st_ in _walk(root, skip):
        if stat.S_ISLNK(st_.st_mode):
            found[rel] = "link " + os.readlink(root / rel)
        elif stat.S_ISDIR(st_.st_mode):
            found[rel] = f"dir {stat.S_IMODE(st_.st_mode):o}"
        else:
            key = (rel, st_.st_ino, st_.st_size, st_.st_mtime_ns, st_.st_ctime_ns, st_.st_mode)
            if key not in memo:
                digest = hashlib.sha256((root / rel).read_bytes()).hexdigest()
                memo[key] = f"file {stat.S_IMODE(st_.st_mode):o} {digest}"
            found[rel] = memo[key]
    return found


Snapshot = tuple[dict[str, str], dict[str, str]]


class FuzzSandbox(Sandbox):
    """`Sandbox` where the folder remote may gain files (push) and HEAD may move (checkout
    REV): Git's own move, and the remote is where push writes."""

    def __init__(self, root: Path, heads: list[str]) -> None:
        super().__init__(root, root / "repo")
        self.heads = {f"{h}\n".encode() for h in heads} | {b"ref: refs/heads/main\n"}
        self.memo: dict[tuple[object, ...], str] = {}

    def outside(self) -> dict[str, str]:
        found = _fingerprint_fast(self.root, lambda rel: rel == "repo", self.memo)
        hooks = _fingerprint_fast(self.repo / ".git" / "hooks", lambda rel: False, self.memo)
        return found | {f"repo/.git/hooks/{k}": v for k, v in hooks.items()}

    def git_dir(self) -> dict[str, str]:
        found = _fingerprint_fast(
            self.repo / ".git",
            lambda rel: rel in _GIT_OWN or rel.startswith(_GIT_OWN[2:4]),
            self.memo,
        )
        head = self.repo / ".git" / "HEAD"
        if not head.is_symlink() and head.is_file() and head.read_bytes() in self.heads:
            found["HEAD"] = "HEAD: a commit of this history (git checkout moved it)"
        return found

    def witness(self) -> Witness:
        repo = os.path.realpath(self.repo)
        remote = os.path.realpath(self.root / "remote")
        return Witness(allowed=[repo, remote], forbidden=[os.path.join(repo, ".git")])

    def compare(self, before: Snapshot, after: Snapshot) -> list[str]:
        """What changed outside the repository or in .git/ from `before` to `after` (as
        `Sandbox.changes` says it), but files the remote gained."""
        problems = []
        for label, old, new in (
            ("outside the repository", before[0], after[0]),
            ("under .git/", before[1], after[1]),
        ):
            for rel in sorted(old.keys() | new.keys()):
                if old.get(rel) != new.get(rel):
                    if rel not in old and rel.startswith("remote/"):
                        continue  # push
                    what = (
                        "created" if rel not in old else "removed" if rel not in new else "changed"
                    )
                    problems.append(f"{label}: {rel} {what}")
        return problems


def _sentinel_lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", "replace")
    return [line.strip()[:160] for line in text.splitlines() if SENTINEL in line]


def _walk(
    root: Path, skip: Callable[[str], bool] = lambda rel: rel == ".git"
) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of everything under root, links not followed, `skip` pruned."""
    stack = [("", str(root))]
    while stack:
        prefix, folder = stack.pop()
        try:
            entries = os.scandir(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with entries:
            for entry in entries:
                rel = prefix + entry.name
                if skip(rel):
                    continue
                st_ = entry.stat(follow_symlinks=False)
                yield rel, st_
                if stat.S_ISDIR(st_.st_mode):
                    stack.append((rel + "/", entry.path))


def _holds_sentinel(path: Path, st_: os.stat_result, memo: dict[tuple[object, ...], str]) -> str:
    key = ("sentinel", str(path), st_.st_ino, st_.st_size, st_.st_mtime_ns, st_.st_ctime_ns)
    if key not in memo:
        lines = _sentinel_lines(path.read_bytes()) if st_.st_size < (1 << 20) else []
        memo[key] = lines[0] if lines else ""
    return memo[key]


def leaks(sandbox: FuzzSandbox, committed: dict[str, str]) -> set[str]:
    """Outside bytes or files that reached the workspace, the cache, the index or the remote
    (a tracked file's workspace bytes are covered by the workspace, hence no `git diff`)."""
    repo, found, memo = sandbox.repo, set(), sandbox.memo
    inodes: list[set[tuple[int, int]]] = []

    def guarded() -> set[tuple[int, int]]:  # now: Git's rewrites free inodes for reuse
        if not inodes:
            inodes.append(_outside_inodes(sandbox.root))
        return inodes[0]

    real_repo = os.path.realpath(repo)
    for rel, st_ in _walk(repo):
        path = repo / rel
        if stat.S_ISLNK(st_.st_mode):
            real = os.path.realpath(path)
            ours = committed.get(rel) == os.readlink(path)  # as the layout committed it
            if not ours and not (real == real_repo or real.startswith(real_repo + "/")):
                found.add(f"workspace: {rel} is a link to {os.readlink(path)} (outside)")
        elif stat.S_ISREG(st_.st_mode):
            if st_.st_nlink > 1 and (st_.st_dev, st_.st_ino) in guarded():
                found.add(f"workspace: {rel} is a hard link to a file outside or under .git/")
            elif line := _holds_sentinel(path, st_, memo):
                found.add(f"workspace: {rel} holds outside bytes ({line})")
    remote = sandbox.root / "remote"
    for rel, st_ in _walk(remote):
        if stat.S_ISREG(st_.st_mode) and (line := _holds_sentinel(remote / rel, st_, memo)):
            found.add(f"remote: {rel} holds outside bytes ({line})")
    done = subprocess.run(["git", "diff", "--cached"], cwd=repo, capture_output=True, check=False)
    for line in _sentinel_lines(done.stdout)[:1]:
        found.add(f"git diff --cached shows outside bytes ({line})")
    return found


def _outside_inodes(root: Path) -> set[tuple[int, int]]:
    """The files a workspace file must never be a hard link of: outside, and under .git/."""
    outside = _walk(root, lambda rel: rel in ("repo", "remote"))
    git_dir = _walk(root / "repo" / ".git", lambda rel: False)
    return {
        (st_.st_dev, st_.st_ino) for _, st_ in (*outside, *git_dir) if stat.S_ISREG(st_.st_mode)
    }


@dataclass
class Report:
    """Every problem found, per layout and command, and the totals of the figure."""

    layouts: int = 0
    calls: int = 0
    writes: int = 0  # commands that wrote, created or deleted outside, or under .git/
    reads: int = 0  # commands whose output, or whose results, held outside bytes
    crashes: int = 0
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # layout, command, what

    def add(self, layout: SymlinkLayout, args: tuple[str, ...], kind: str, what: list[str]) -> None:
        if not what:
            return
        setattr(self, kind, getattr(self, kind) + 1)
        for line in what:
            self.problems.append((str(layout), "repro " + " ".join(args), line))

    def summary(self, limit: int = 60) -> str:
        """One line per distinct (command, problem), with the first layout that showed it."""
        first: dict[tuple[str, str], str] = {}
        count: Counter[tuple[str, str]] = Counter()
        for layout, command, what in self.problems:
            key = (command, _shape(what))
            count[key] += 1
            first.setdefault(key, f"{what}  <- {layout}")
        lines = [f"{key[0]}: {example[:400]} (×{count[key]})" for key, example in first.items()]
        lines.sort()
        more = f"\n… and {len(lines) - limit} more" if len(lines) > limit else ""
        return (
            f"{len(self.problems)} problems, {len(lines)} distinct:\n"
            + "\n".join(lines[:limit])
            + more
        )


def _shape(what: str) -> str:
    """A problem without its details (oids, decoy names), to group alike ones."""
    words = what.split(" (")[0].split()
    return " ".join(w if len(w) < 24 else "…" for w in words[:6])


def run_layout(
    root: Path, layout: SymlinkLayout, invoke: Invoke, mp: pytest.MonkeyPatch, report: Report
) -> None:
    """Apply `layout` in the sandbox copy at `root`, run every command, record what broke."""
    for name, value in _env(root).items():
        mp.setenv(name, value)
    mp.chdir(root / "repo")
    heads = apply_layout(root, layout)
    sandbox = FuzzSandbox(root, heads)
    committed = {path: render(target, path, root) for path, target in layout.links}
    linked = layout.links[-1][0]  # a chain's link comes before the link that uses it
    report.layouts += 1
    if TRACE:
        print(f"\n{layout}")
    seen = leaks(sandbox, committed)
    before = sandbox.snapshot()
    for template in COMMANDS:
        args = tuple(a.format(linked=linked) for a in template)
        started = time.perf_counter()
        with watching(sandbox.witness()) as witness:
            outcome: Outcome = invoke(*args)
        if TRACE:
            said = (outcome.stderr.strip() or outcome.stdout.strip()).splitlines()[:1]
            print(f"  {time.perf_counter() - started:5.2f}s {outcome.exit_code} {args} {said}")
        report.calls += 1
        after = sandbox.snapshot()
        report.add(layout, args, "writes", sandbox.compare(before, after) + witness.violations)
        before = after
        if not outcome.clean or outcome.exit_code not in (0, 1, 2):
            said = (outcome.stderr.strip() or outcome.stdout.strip()).splitlines()[:1]
            report.add(layout, args, "crashes", [f"unclean exit {outcome.exit_code}: {said}"])
        printed = _sentinel_lines((outcome.stdout + outcome.stderr).encode())
        now = leaks(sandbox, committed)
        report.add(layout, args, "reads", [f"printed: {line}" for line in printed[:2]])
        report.add(layout, args, "reads", sorted(now - seen))
        seen |= now


def copy_world(world: World, dest: Path) -> Path:
    shutil.copytree(world.root, dest, symlinks=True)
    return dest


def fuzz(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, examples: int, shard: int
) -> Report:
    """Run `examples` drawn layouts (seeded by `shard`: the same on every machine)."""
    invoke = make_invoke(monkeypatch)
    report = Report()
    counter = iter(range(1_000_000))

    @seed(shard)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(layout=layouts(world.pool))
    def one(layout: SymlinkLayout) -> None:
        root = copy_world(world, tmp_path / f"s{next(counter)}")
        with monkeypatch.context() as mp:
            run_layout(root, layout, invoke, mp, report)
        shutil.rmtree(root, ignore_errors=True)  # links are removed, never followed

    one()
    return report


# --- explicit layouts: one per known hole, so the fast tier always reaches it ---------------------

HOLES: list[SymlinkLayout] = [
    # checkout REV -- PATH restores an uncached metrics file through a linked parent folder
    SymlinkLayout((("eval", "{repo}.git"),), "head", name="metrics-parent-to-.git"),
    SymlinkLayout((("eval", "{S}/home"),), "head", name="metrics-parent-to-HOME"),
    # checkout REV removes data REV does not track, after git made its parent a link
    SymlinkLayout((("more", ".."),), "old", name="removed-data-parent-to-.."),
    SymlinkLayout((("more", "{S}/outside"),), "old", name="removed-data-parent-to-abs"),
    SymlinkLayout((("legacy", ".."),), "head", name="removed-data-parent-on-return"),
    # repro's own folders and files
    SymlinkLayout((("FAN_A2", "{up}outside"),), "head", name="objects-fanout-to-outside"),
    SymlinkLayout((("FAN_A1", "{repo}.git/hooks"),), "head", name="objects-fanout-to-hooks"),
    SymlinkLayout((("RUNS_FAN", "{up}outside"),), "head", name="runs-fanout-to-outside"),
    SymlinkLayout(((".repro/state/stat.db", "{repo}.git/config"),), "head", name="statdb-to-git"),
    SymlinkLayout(((".repro/state/stat.db", "{S}/home/.bashrc"),), "head", name="statdb-to-home"),
    # ... brought in by the Git switch of `checkout REV`, after the command checked them
    SymlinkLayout(((".repro/tmp", "{S}/home"),), "old", name="switch-brings-tmp-to-HOME"),
    SymlinkLayout(
        ((".repro/tmp", "{up}outside/missing"),), "old", name="switch-brings-tmp-dangling"
    ),
    SymlinkLayout(((".repro/cache/tmp", "{S}/home"),), "old", name="switch-brings-cache-tmp"),
    SymlinkLayout(((".repro/cache/objects", "{up}outside"),), "old", name="switch-brings-objects"),
    SymlinkLayout(((".repro/cache", "{up}outside"),), "old", name="switch-brings-cache"),
    SymlinkLayout(((".repro/state", "{S}/home"),), "old", name="switch-brings-state"),
    SymlinkLayout((("FAN_A1", "{S}/outside"),), "old", name="switch-brings-fanout"),
    SymlinkLayout((("RUNS_FAN", "{S}/outside"),), "old", name="switch-brings-runs-fanout"),
    SymlinkLayout(((".repro/lock", "{S}/home/.bashrc"),), "old", name="switch-brings-lock"),
    # params and metrics (or a folder on their path) read through a link
    SymlinkLayout((("params.yaml", "{up}outside/secret.json"),), "old", name="params-to-secret"),
    SymlinkLayout((("metrics.json", "{S}/outside/secret.json"),), "head", name="metrics-to-secret"),
    SymlinkLayout((("conf", "{up}outside"),), "head", name="params-parent-to-outside"),
    SymlinkLayout((("eval", "{up}outside"),), "old", name="metrics-parent-to-outside"),
    # a cache link (cache.type symlink) whose target climbs out of the cache with `..`
    SymlinkLayout(
        (("data/a.csv", TARGETS["cache-dotdot-abs"]),), "head", "symlink", name="cache-link-dotdot"
    ),
    SymlinkLayout(
        (("model.bin", TARGETS["cache-dotdot"]),), "head", "symlink", name="cache-link-dotdot-rel"
    ),
    # a committed object that is itself a link, placed in the workspace
    SymlinkLayout((("OBJ_A2", "{up}outside/secret.txt"),), "head", "hardlink", name="object-h"),
    SymlinkLayout((("OBJ_A1", "{S}/outside/secret.txt"),), "old", "symlink", name="object-s"),
    # huge files behind repro's own inputs
    SymlinkLayout((("repro.yaml", "{up}outside/big.txt"),), "head", name="repro.yaml-to-big"),
    SymlinkLayout((("repro.lock", "{up}outside/big.txt"),), "head", name="repro.lock-to-big"),
    SymlinkLayout(((".repro/config.yaml", "{up}outside/big.txt"),), "head", name="config-to-big"),
    SymlinkLayout((("params.yaml", "{S}/outside/big.txt"),), "old", name="params-to-big"),
]


def _resolve_names(layout: SymlinkLayout, names: dict[str, str]) -> SymlinkLayout:
    links = tuple((names.get(path, path), target) for path, target in layout.links)
    return SymlinkLayout(links, layout.commit, layout.link_type, layout.name)


@pytest.mark.parametrize("layout", HOLES, ids=[h.name for h in HOLES])
def test_a_known_symlink_hole_stays_closed(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: SymlinkLayout
) -> None:
    report = Report()
    with monkeypatch.context() as mp:
        root = copy_world(world, tmp_path / "S")
        run_layout(root, _resolve_names(layout, world.names), make_invoke(mp), mp, report)
    assert not report.problems, report.summary()


def figure(report: Report, label: str) -> str:
    return (
        f"\nFIGURE G3-fuzz ({label}): {report.layouts} drawn symlink layouts × {len(COMMANDS)} "
        f"commands ({report.calls} calls): {report.writes} wrote outside or under .git, "
        f"{report.reads} read outside bytes into output, {report.crashes} unclean exits"
    )


FAST_SHARDS = 2
FAST_EXAMPLES = 14  # per shard


@pytest.mark.parametrize("shard", range(FAST_SHARDS))
def test_drawn_symlink_layouts_never_lead_repro_outside(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shard: int
) -> None:
    report = fuzz(world, tmp_path, monkeypatch, FAST_EXAMPLES, shard)
    print(figure(report, f"seed {shard}"))
    assert report.layouts >= FAST_EXAMPLES // 2, "the strategy drew too few layouts"
    assert not report.problems, report.summary()


@pytest.mark.slow
def test_many_drawn_symlink_layouts_never_lead_repro_outside(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = int(os.environ.get("REPRO_SYMLINK_FUZZ_EXAMPLES", "500"))
    chosen = os.environ.get("REPRO_SYMLINK_FUZZ_SEED")
    shard = int(chosen) if chosen else int.from_bytes(os.urandom(4), "big")
    report = fuzz(world, tmp_path, monkeypatch, examples, shard)
    print(figure(report, f"seed {shard}"))
    assert not report.problems, report.summary()
