"""Attacks from a cloned repository: what a stranger's commits and remote can make repro do.

Each test plays the security issue's attacker, who controls only committed files (pointers,
`repro.yaml`, `repro.lock`, the tracked config, symlinks committed in Git) and a folder
remote. The attacker's project is built once (`attacker_template`); every test copies it, adds
the hostile commit, `git clone`s it as the victim and runs repro there through the CLI, with
decoys outside the repository: `S/outside/secret.txt` (a sentinel line that must never be
printed or uploaded), `S/outside/victim.txt`, `HOME/.bashrc`, and folders planted wherever an
attack would delete. The witnesses are those of test_confinement.py: a fingerprint of
everything outside the clone and of `.git/`, and an audit hook on the in-process CLI.

The variants (link targets, depths, commands) are generated from small tables, so every
combination of where a link sits, where it leads and which command meets it is run.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.builders import git, make_tree
from tests.reliability.test_confinement import (
    Invoke,
    Outcome,
    Sandbox,
    _fingerprint,
    confined,
    make_invoke,
    template_cli,
    template_env,
)

SENTINEL = "SENTINEL-5b0e-read-from-outside"
STAGE_YAML = """\
stages:
  train:
    cmd: mkdir -p out m n/o && cp params.yaml out/model.txt && cp conf/eval.yaml m/config && cp conf/eval.yaml n/o/config
    deps: [params.yaml, conf/eval.yaml]
    params: [lr, {conf/eval.yaml: [threshold]}]
    outs: [out/model.txt]
    metrics: [m/config, n/o/config]
"""


class Victim(Sandbox):
    """The sandbox `S` around the victim's clone `S/repo`; the attacker's repository and
    remote live in S too, and the remote may change (it is the attacker's)."""

    def outside(self) -> dict[str, str]:
        found = _fingerprint(
            self.root, lambda rel: rel.split("/", 1)[0] in ("repo", "remote", "attacker", "devices")
        )
        hooks = _fingerprint(self.repo / ".git" / "hooks")
        return found | {f"repo/.git/hooks/{k}": v for k, v in hooks.items()}

    def git_dir(self) -> dict[str, str]:
        """As Sandbox's, less HEAD, which `repro checkout REV` moves through Git itself."""
        return {k: v for k, v in super().git_dir().items() if k != "HEAD"}


@pytest.fixture(scope="module")
def attacker_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The attacker's project at `attacker/`, pushed to the folder remote `remote/`: tracked
    data (`data/`, `d/e/data/`, `model.bin`), a stage with a cached output and two metrics
    files (`m/config`, `n/o/config`), tagged v1 (lr 1), then v2 (lr 2) on main."""
    base = tmp_path_factory.mktemp("attacker-template")
    repo = base / "attacker"
    repo.mkdir()
    with template_cli(repo, template_env(base / "home")) as cli:
        git(repo, "init", "-q", "-b", "main")
        cli("init")
        make_tree(
            repo,
            {
                "data/a.csv": "a\n",
                "data/sub/b.csv": "b\n",
                "d/e/data/x.csv": "x\n",
                "model.bin": b"model\x00",
                "params.yaml": "lr: 1\n",
                "conf/eval.yaml": "threshold: 0.5\n",
                "repro.yaml": STAGE_YAML,
            },
        )
        cli("add", "data", "d/e/data", "model.bin")
        cli("run")
        cli("remote", "add", "-d", "origin", "../remote")
        cli("push", "--run-cache")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "v1")
        git(repo, "tag", "v1")
        (repo / "params.yaml").write_text("lr: 2\n")
        cli("run")
        cli("push", "--run-cache")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "v2")
    return base


@dataclass
class Attack:
    """One attacker project and its victim clone in the sandbox `S`."""

    box: Victim
    invoke: Invoke
    monkeypatch: pytest.MonkeyPatch

    @property
    def attacker(self) -> Path:
        return self.box.root / "attacker"

    @property
    def repo(self) -> Path:
        return self.box.repo

    @property
    def remote(self) -> Path:
        return self.box.root / "remote"

    def commit_links(self, links: dict[str, str], *, message: str = "hostile") -> None:
        """Commit `links` (path -> target, `{S}` the sandbox) in the attacker's repository,
        replacing what is at each path."""
        for where, target in links.items():
            place_link(self.attacker / where, target.format(S=self.box.root))
            git(self.attacker, "add", "-f", "-A", "--", where)
        git(self.attacker, "commit", "-q", "-m", message)

    def clone(self) -> None:
        """`git clone` the attacker's repository as the victim's `S/repo`, and enter it."""
        git(self.box.root, "clone", "-q", str(self.attacker), "repo")
        self.monkeypatch.chdir(self.repo)

    def run(self, *commands: tuple[str, ...]) -> list[Outcome]:
        """Run each command in the clone, inside the confinement witnesses; no secret may be
        printed, and the attacker's remote may not receive one."""
        with confined(self.box):
            outcomes = [self.invoke(*args) for args in commands]
        for outcome in outcomes:
            assert outcome.clean, outcome
            assert SENTINEL not in outcome.stdout + outcome.stderr, outcome
        assert not holding(self.remote, SENTINEL), "the secret reached the remote"
        return outcomes


def place_link(path: Path, target: str) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


def holding(root: Path, text: str) -> list[str]:
    """Files under `root` (links not followed) whose bytes contain `text`."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                with open(path, "rb") as handle:
                    if text.encode() in handle.read():
                        found.append(path)
    return found


@pytest.fixture
def attack(
    attacker_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Attack]:
    for name in ("attacker", "remote"):
        shutil.copytree(attacker_template / name, tmp_path / name, symlinks=True)
    home = Path(os.environ["HOME"])
    (home / ".bashrc").write_text("# decoy: must never change\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("outside bytes, do not touch\n")
    # a secret in the shape of parameters and metrics, so that a read of it would be printed
    (outside / "secret.txt").write_text(f"lr: {SENTINEL}\nthreshold: {SENTINEL}\n")
    yield Attack(Victim(tmp_path, tmp_path / "repo"), make_invoke(monkeypatch), monkeypatch)


def refused(outcome: Outcome, *words: str) -> None:
    """`outcome` is a clean refusal: exit 2, one error line naming one of `words` (`doctor`
    reports it among its findings, exit 1)."""
    if outcome.args[0] == "doctor":
        assert outcome.exit_code == 1, outcome
        unwrapped = "".join((outcome.stdout + outcome.stderr).split())  # rich wraps lines
        assert any("".join(word.split()) in unwrapped for word in words), outcome
        return
    assert outcome.exit_code == 2, outcome
    assert any(word in outcome.stderr for word in words), outcome


# Where a committed link may lead: `{up}` climbs from the link's folder to S.
TARGETS = {
    "git": "{repo}.git",
    "git-hooks": "{repo}.git/hooks",
    "outside-rel": "{up}outside",
    "outside-abs": "{S}/outside",
    "home-abs": "{S}/home",
    "parent": "{up}",
}


def link_target(link: str, kind: str) -> str:
    """The text of a link at repository path `link` leading to TARGETS[kind]."""
    depth = link.count("/")
    return (
        TARGETS[kind]
        .format(repo="../" * depth or "./", up="../" * (depth + 1), S="{S}")
        .rstrip("/")
        or "."
    )


# --- hole 2: checkout REV -- PATH writes a stage's metrics through a symlinked folder -------

ROLLBACK = [
    pytest.param(link, kind, arg, id=f"{link}->{kind}-{arg}")
    for link, arg in [("m", "out/model.txt"), ("n", "out/model.txt"), ("n/o", "out/model.txt")]
    for kind in TARGETS
]


@pytest.mark.parametrize(("link", "kind", "arg"), ROLLBACK)
def test_rollback_never_writes_metrics_through_a_folder_head_made_a_link(
    attack: Attack, link: str, kind: str, arg: str
) -> None:
    # HEAD turns a folder holding an uncached output (metrics) into a link; `checkout v1 --
    # out/model.txt` brings the whole stage back, metrics included, by path.
    attack.commit_links({link: link_target(link, kind)})
    attack.clone()
    # decoys where the metrics file would land: `.git/config`, `~/.bashrc`-like files
    for outcome in attack.run(("pull",), ("checkout", "v1", "--", arg)):
        assert outcome.exit_code in (0, 2), outcome
    assert attack.invoke("status").clean


# --- hole 3: checkout REV deletes data through a folder REV made a link ----------------------

SWITCH = [
    pytest.param(link, kind, force, id=f"{link}->{kind}{'-force' if force else ''}")
    for link in ("d", "d/e")
    for kind in ("outside-rel", "outside-abs", "parent", "home-abs")
    for force in (False, True)
]


@pytest.mark.parametrize(("link", "kind", "force"), SWITCH)
def test_switching_to_a_revision_never_deletes_through_a_folder_it_made_a_link(
    attack: Attack, link: str, kind: str, force: bool
) -> None:
    target = link_target(link, kind)
    attack.commit_links({link: target}, message="evil")
    git(attack.attacker, "tag", "evil")
    git(attack.attacker, "reset", "-q", "--hard", "HEAD~1")  # main stays innocent
    attack.clone()
    assert attack.invoke("pull").exit_code == 0
    # a folder outside, exactly where d/e/data resolves once `link` is a link: the bait
    resolved = os.path.normpath(
        os.path.join(attack.repo, os.path.dirname(link), target.format(S=attack.box.root))
    )
    bait = Path(resolved) / Path("d/e/data").relative_to(link)
    make_tree(bait, {"x.csv": "outside data, do not delete\n"})
    args = ("checkout", "evil", *(["--force"] if force else []))
    (outcome,) = attack.run(args)
    assert outcome.exit_code in (0, 2), outcome
    assert (bait / "x.csv").read_text() == "outside data, do not delete\n"


# --- holes 5, 7, 11: links committed inside repro's own folders --------------------------------

INTERNAL_COMMANDS = [
    ("pull",),
    ("fetch",),
    ("checkout", "--force"),
    ("status",),
    ("doctor",),
    ("run",),
    ("gc", "--dry"),
    ("gc", "-f", "--grace", "0"),
    ("push", "--run-cache"),
    ("fsck",),
]


def _first_object(remote: Path) -> tuple[str, str]:
    prefix = sorted(os.listdir(remote / "objects"))[0]
    return prefix, sorted(os.listdir(remote / "objects" / prefix))[0]


def _run_prefix(remote: Path) -> str:
    return sorted(os.listdir(remote / "runs"))[0]


def internal_links(remote: Path) -> dict[str, tuple[str, str]]:
    """id -> (path under .repro/, target under S) for every own place a link may hide."""
    prefix, rest = _first_object(remote)
    run = _run_prefix(remote)
    places = {
        "objects-fanout": f".repro/cache/objects/{prefix}",
        "runs-fanout": f".repro/cache/runs/{run}",
        "object-file": f".repro/cache/objects/{prefix}/{rest}",
        "stat-db": ".repro/state/stat.db",
        "stat-db-wal": ".repro/state/stat.db-wal",
    }
    targets = {
        "outside": "{S}/outside",
        "git-hooks": "{S}/repo/.git/hooks",
        "secret": "{S}/outside/secret.txt",
    }
    folders_lead_to = ("outside", "git-hooks")  # a fan-out folder links to a folder
    return {
        f"{place}->{kind}": (path, target)
        for (place, path), (kind, target) in itertools.product(places.items(), targets.items())
        if (kind in folders_lead_to) == place.endswith("fanout")
    }


INTERNAL_IDS = [
    "objects-fanout->outside",
    "objects-fanout->git-hooks",
    "runs-fanout->outside",
    "runs-fanout->git-hooks",
    "object-file->secret",
    "stat-db->secret",
    "stat-db-wal->secret",
]


def test_the_internal_link_table_covers_every_place(attacker_template: Path) -> None:
    assert sorted(internal_links(attacker_template / "remote")) == sorted(INTERNAL_IDS)


@pytest.mark.parametrize("case", INTERNAL_IDS)
@pytest.mark.parametrize("committed", [True, False], ids=["committed", "untracked"])
def test_a_link_inside_repros_own_folders_is_refused_by_every_command(
    attack: Attack, case: str, committed: bool
) -> None:
    path, target = internal_links(attack.remote)[case]
    # Decoys the links lead to: a run record and an object-like file, which gc or pull would
    # delete or overwrite, and the secret file the object link would check out or upload.
    rest = _first_object(attack.remote)[1]
    make_tree(attack.box.root / "outside", {rest: "outside object-like file\n"})
    if committed:
        attack.commit_links({path: target})
        attack.clone()
    else:  # the same layout arriving without Git (an archive), placed after the clone
        attack.clone()
        place_link(attack.repo / path, target.format(S=attack.box.root))
    outcomes = attack.run(*INTERNAL_COMMANDS)
    if committed or not path.endswith(rest):
        for outcome in outcomes:
            refused(outcome, path.rsplit("/", 1)[0], "symlink", "tracked by Git")
    else:
        # An object file that is a link is not scanned for (that would cost a stat per object
        # on every command): it is never linked, copied, read as an object, nor uploaded.
        assert not holding(attack.repo, SENTINEL)


def test_gc_never_lists_or_deletes_run_records_behind_a_link(attack: Attack) -> None:
    run = _run_prefix(attack.remote)
    bait = attack.box.root / "other-project-runs"
    make_tree(bait, {"0" * 30: '{"version": 1, "outs": []}\n'})
    attack.clone()
    place_link(attack.repo / ".repro/cache/runs" / run, str(bait))
    outcomes = attack.run(("gc", "--dry"), ("gc", "-f", "--grace", "0"))
    for outcome in outcomes:
        refused(outcome, "symlink")
        assert "0" * 30 not in outcome.stdout
    assert (bait / ("0" * 30)).exists()


# --- hole 8: secrets read through links and printed -------------------------------------------

SECRET_LINKS = {
    "params-file": ("params.yaml", "{S}/outside/secret.txt"),
    "params-folder": ("conf", "{S}/outside"),
    "metrics-file": ("m/config", "{S}/outside/secret.txt"),
    "metrics-folder": ("n/o", "{S}/outside"),
    "metrics-folder-rel": ("n", "../outside"),
}
READERS = [
    ("metrics", "show"),
    ("metrics", "show", "--md"),
    ("metrics", "show", "--json"),
    ("metrics", "diff", "v1"),
    ("metrics", "diff", "v1", "--md"),
    ("params", "diff", "v1"),
    ("params", "diff", "v1", "--json"),
    ("status",),
    ("status", "--json"),
    ("run", "--dry"),
    ("dag",),
]


@pytest.mark.parametrize("case", sorted(SECRET_LINKS))
def test_params_and_metrics_behind_a_link_are_never_read_into_output(
    attack: Attack, case: str
) -> None:
    where, target = SECRET_LINKS[case]
    if where == "conf":
        shutil.copy(attack.box.root / "outside/secret.txt", attack.box.root / "outside/eval.yaml")
    if where.startswith("n"):
        make_tree(attack.box.root / "outside", {"o/config": f"acc: 1\nsecret: {SENTINEL}\n"})
        make_tree(attack.box.root / "outside", {"config": f"acc: 1\nsecret: {SENTINEL}\n"})
    attack.commit_links({where: target})
    attack.clone()
    outcomes = attack.run(*READERS)
    assert any(o.exit_code == 2 and "link" in o.stderr for o in outcomes), outcomes


# --- hole 9: a cache-link target with `..` ----------------------------------------------------


@pytest.mark.parametrize("command", [("commit",), ("add", "data"), ("status",)])
@pytest.mark.parametrize("climb", [4, 5], ids=["to-S", "above-S"])
def test_a_cache_link_that_climbs_out_of_the_cache_is_not_data(
    attack: Attack, command: tuple[str, ...], climb: int
) -> None:
    # The attacker knows where CI clones (a fixed path): the link starts with the clone's
    # cache folder, then climbs out to the secret.
    victim_objects = attack.box.root / "repo" / ".repro" / "cache" / "objects"
    up = "/".join([".."] * climb)
    rel_secret = os.path.relpath(attack.box.root / "outside" / "secret.txt", attack.box.root)
    if climb == 5:
        rel_secret = f"{attack.box.root.name}/{rel_secret}"
    attack.commit_links({"data/stolen.csv": f"{victim_objects}/{up}/{rel_secret}"})
    attack.clone()
    (outcome,) = attack.run(command)
    refused(outcome, "symlink", "tracked by Git")
    outcome = attack.invoke("push")
    assert not holding(attack.remote, SENTINEL)


# --- hole 10: a nested no_scm project with a committed config.local.yaml -----------------------


@pytest.mark.parametrize("command", [("status",), ("add", "x.csv"), ("gc", "-f", "--grace", "0")])
def test_a_nested_project_honours_no_committed_local_config(
    attack: Attack, command: tuple[str, ...]
) -> None:
    nested = attack.attacker / "sub"
    make_tree(
        nested,
        {
            ".repro/config.yaml": "version: 1\ncore:\n  no_scm: true\n",
            ".repro/config.local.yaml": f"version: 1\ncache:\n  dir: {attack.box.root}/outside\n",
            "x.csv": "x\n",
        },
    )
    make_tree(attack.box.root / "outside", {"objects/ab/" + "c" * 30: "someone's object\n"})
    git(attack.attacker, "add", "-f", "sub")
    git(attack.attacker, "commit", "-q", "-m", "nested")
    attack.clone()
    attack.monkeypatch.chdir(attack.repo / "sub")
    (outcome,) = attack.run(command)
    refused(outcome, "config.local.yaml")


# --- hole 11: link types that bypass verification --------------------------------------------


@pytest.mark.parametrize("types", ["hardlink", "symlink", "reflink,hardlink", "copy,symlink"])
@pytest.mark.parametrize("command", [("pull",), ("checkout",), ("status",)])
def test_the_tracked_config_cannot_choose_a_link_type_that_shares_cache_files(
    attack: Attack, types: str, command: tuple[str, ...]
) -> None:
    config = attack.attacker / ".repro/config.yaml"
    config.write_text(config.read_text() + f"cache:\n  type: {types}\n")
    git(attack.attacker, "commit", "-q", "-am", "link type")
    attack.clone()
    (outcome,) = attack.run(command)
    refused(outcome, "cache.type")


@pytest.mark.parametrize("kind", ["hardlink", "symlink", "reflink,copy", "copy"])
def test_a_planted_object_that_is_a_link_is_never_checked_out(attack: Attack, kind: str) -> None:
    # The user chose the link type locally; an archive planted an object that is a link.
    attack.clone()
    (attack.repo / ".repro/config.local.yaml").write_text(f"version: 1\ncache:\n  type: {kind}\n")
    data = b"model\x00"
    import xxhash

    oid = xxhash.xxh3_128_hexdigest(data)
    place_link(
        attack.repo / ".repro/cache/objects" / oid[:2] / oid[2:],
        str(attack.box.root / "outside" / "secret.txt"),
    )
    (outcome,) = attack.run(("checkout", "model.bin"))
    refused(outcome, "not a regular file")
    assert not os.path.lexists(attack.repo / "model.bin")


# --- hole 12: caps before reading, symlinked config files, case --------------------------------

HUGE = {
    "repro.yaml": ("status",),
    "repro.lock": ("status",),
    ".repro/config.yaml": ("status",),
    "params.yaml": ("status",),
    "m/config": ("metrics", "show"),
    "model.bin.repro": ("checkout",),
}


@pytest.mark.parametrize("where", sorted(HUGE))
@pytest.mark.parametrize("to", ["zero", "big-file", "fifo"])
def test_a_file_linked_to_something_endless_is_refused_before_it_is_read(
    attack: Attack, where: str, to: str
) -> None:
    target = {"zero": "/dev/zero", "big-file": "{S}/devices/big", "fifo": "{S}/devices/fifo"}[to]
    devices = attack.box.root / "devices"
    devices.mkdir()
    with open(devices / "big", "wb") as handle:
        handle.truncate(80 << 20)  # larger than every cap, sparse
    os.mkfifo(devices / "fifo")
    attack.commit_links({where: target})
    attack.clone()

    def hung(signum: int, frame: object) -> None:
        raise TimeoutError(f"repro {' '.join(HUGE[where])} still reading {where} after 20 s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)  # a read of /dev/zero or a FIFO never ends by itself
    try:
        (outcome,) = attack.run(HUGE[where])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    refused(outcome, where.rsplit("/", 1)[-1])


@pytest.mark.parametrize(
    ("name", "size"),
    [("big.json", 20 << 20), ("big.toml", 20 << 20), ("big.yaml", 2 << 20)],
)
def test_a_params_file_over_the_cap_is_refused_whatever_its_format(
    attack: Attack, name: str, size: int
) -> None:
    spec = attack.attacker / "repro.yaml"
    spec.write_text(spec.read_text().replace("[lr, ", f"[lr, {{{name}: [k]}}, "))
    body = {"big.json": b'{"k": "%s"}', "big.toml": b'k = "%s"', "big.yaml": b"k: %s"}[name]
    (attack.attacker / name).write_bytes(body % (b"x" * size))
    git(attack.attacker, "add", "-A")
    git(attack.attacker, "commit", "-q", "-m", "big params")
    attack.clone()
    (outcome,) = attack.run(("status",))
    refused(outcome, f"{name}: file is larger than")


def test_hooks_install_never_copies_a_linked_pre_commit_config(attack: Attack) -> None:
    attack.commit_links({".pre-commit-config.yaml": "{S}/outside/secret.txt"})
    attack.clone()
    (outcome,) = attack.run(("hooks", "install", "--pre-commit-tool"))
    refused(outcome, ".pre-commit-config.yaml")
    assert SENTINEL not in git(attack.repo, "diff", "--cached") + git(attack.repo, "diff")


@pytest.mark.parametrize("spelling", [".Repro", ".REPRO", ".rEpRo"])
@pytest.mark.parametrize("where", ["pointer", "stage"])
def test_repros_own_folder_is_recognised_in_any_letter_case(
    attack: Attack, spelling: str, where: str
) -> None:
    if where == "pointer":  # data named `.Repro` at the root: `.repro` itself, where case folds
        pointer = (attack.attacker / "model.bin.repro").read_text()
        (attack.attacker / f"{spelling}.repro").write_text(
            pointer.replace("path: model.bin", f"path: {spelling}")
        )
    else:
        spec = attack.attacker / "repro.yaml"
        spec.write_text(spec.read_text().replace("outs: [out/model.txt]", f"outs: [{spelling}/x]"))
    git(attack.attacker, "add", "-A", "-f")
    git(attack.attacker, "commit", "-q", "-m", "case")
    attack.clone()
    for outcome in attack.run(("checkout", "--force"), ("status",)):
        refused(outcome, ".repro", spelling)


# --- the same links, brought in by the Git switch of `checkout REV` ----------------------------

SWITCHED_IN = {
    ".repro": "{S}/outside",
    ".repro/tmp": "{S}/outside",
    ".repro/cache": "{S}/outside",
    ".repro/cache/tmp": "{S}/outside",
    ".repro/state": "{S}/outside",
    ".repro/state/stat.db": "{S}/outside/victim.txt",
    ".repro/lock": "{S}/home/.bashrc",
    ".repro/config.local.yaml": "{S}/outside/victim.txt",
    ".Repro/tmp": "{S}/outside",
}


@pytest.mark.parametrize("where", sorted(SWITCHED_IN))
@pytest.mark.parametrize("force", [False, True], ids=["", "force"])
def test_checkout_rev_refuses_a_revision_that_commits_repros_own_files_before_git_moves(
    attack: Attack, where: str, force: bool
) -> None:
    attack.commit_links({where: SWITCHED_IN[where]}, message="evil")
    git(attack.attacker, "tag", "evil")
    git(attack.attacker, "reset", "-q", "--hard", "HEAD~1")
    attack.clone()
    assert attack.invoke("pull").exit_code == 0
    head = git(attack.repo, "rev-parse", "HEAD")
    (outcome,) = attack.run(("checkout", "evil", *(["--force"] if force else [])))
    refused(outcome, "committed at evil")
    assert git(attack.repo, "rev-parse", "HEAD") == head  # Git never moved
