"""`repro run`, `status`, `commit` and `dag` on real (tiny) pipelines.

What executed is read from the chain's log file, outside the repository: a stage restored from
the run-cache, or judged up to date, leaves no line there.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reprocli.core.hashing import oid_of_bytes
from reprocli.pipeline import lockfile
from reprocli.project import Project
from tests.builders import commit, git, make_tree
from tests.conftest import Cli
from tests.pipeline.conftest import (
    PY,
    STAGES,
    Chain,
    ignored,
    read_lock,
    stage_script,
    staged,
    workspace_files,
)


def _status(cli: Cli, expect: int = 0) -> dict[str, list[str]]:
    """`repro status --json`: the reasons of each stale stage, by name."""
    result = cli("status", "--json", expect=expect)
    report = json.loads(result.stdout)
    return {s["name"]: s["reasons"] for s in report["stages"] if s["stale"]}


# --- the walkthrough --------------------------------------------------------------------------


def test_the_walkthrough_runs_what_changed_and_restores_what_was_seen_before(
    chain: Chain, cli: Cli
) -> None:
    root = chain.root
    result = cli("run")
    assert chain.runs() == list(STAGES)
    for name in STAGES:
        assert f"{name}: ran" in result.stderr
    first_lock = (root / "repro.lock").read_bytes()
    first_model = (root / "models/model.json").read_bytes()
    first_metrics = (root / "metrics.json").read_bytes()
    assert set(chain.lock()) == set(STAGES)
    cli("status", "--check")

    # Nothing changed: nothing runs, and deciding so is quick.
    started = time.monotonic()
    again = cli("run")
    elapsed = time.monotonic() - started
    assert chain.runs() == list(STAGES)
    assert "everything is up to date" in again.stderr
    assert elapsed < 1.5, f"an up-to-date run took {elapsed:.2f} s"
    assert (root / "repro.lock").read_bytes() == first_lock

    # A parameter changes: status says which stage, which param and what follows from it.
    chain.set_param("lr: 0.1", "lr: 0.3")
    status = cli("status", expect=0).stdout
    assert "train: param train.lr: 0.1 → 0.3" in status
    assert "evaluate: upstream train changed" in status
    assert "prepare" not in status and "featurize" not in status
    cli("status", "--check", expect=1)

    # --dry runs nothing and writes nothing; with --check it fails.
    files = workspace_files(root)
    cached = sorted(p.relative_to(root) for p in (root / ".repro/cache").rglob("*"))
    dry = cli("run", "--dry")
    assert "train: would run (param train.lr: 0.1 → 0.3)" in dry.stderr
    assert "evaluate: would run (upstream train changed)" in dry.stderr
    assert "prepare: up to date" in dry.stderr
    cli("run", "--dry", "--check", expect=1)
    assert chain.runs() == list(STAGES)
    assert workspace_files(root) == files
    assert sorted(p.relative_to(root) for p in (root / ".repro/cache").rglob("*")) == cached
    assert (root / "repro.lock").read_bytes() == first_lock

    # Running rebuilds train and evaluate only.
    cli("run")
    assert chain.runs() == [*STAGES, "train", "evaluate"]
    assert (root / "models/model.json").read_bytes() != first_model
    assert chain.lock()["train"].params == {"params.yaml": {"train.lr": 0.3, "train.epochs": 3}}
    cli("status", "--check")

    # Back to the old value: the run-cache restores the outputs, nothing executes.
    chain.set_param("lr: 0.3", "lr: 0.1")
    restored = cli("run")
    assert chain.runs() == [*STAGES, "train", "evaluate"]
    assert "train: restored from the run-cache" in restored.stderr
    assert "evaluate: restored from the run-cache" in restored.stderr
    assert (root / "models/model.json").read_bytes() == first_model
    assert (root / "metrics.json").read_bytes() == first_metrics
    assert (root / "repro.lock").read_bytes() == first_lock
    cli("status", "--check")

    # --no-run-cache executes even though this run was seen before.
    chain.set_param("lr: 0.1", "lr: 0.3")
    cli("run", "--no-run-cache")
    assert chain.runs() == [*STAGES, "train", "evaluate", "train", "evaluate"]
    cli("status", "--check")


def test_an_upstream_stage_reproducing_identical_outputs_does_not_rerun_its_downstream(
    chain: Chain, cli: Cli
) -> None:
    cli("run")
    features = (chain.root / "data/prepared/train.csv").read_bytes()
    with (chain.root / "src/prepare.py").open("a") as script:
        script.write("# a comment changes the script, not what it writes\n")
    assert {name: sorted(reasons) for name, reasons in _status(cli).items()} == {
        "prepare": ["src/prepare.py changed"],
        "featurize": ["upstream prepare changed"],
        "train": ["upstream featurize changed"],
        "evaluate": ["upstream featurize changed", "upstream train changed"],
    }
    cli("run")
    assert chain.runs() == [*STAGES, "prepare"]
    assert (chain.root / "data/prepared/train.csv").read_bytes() == features
    cli("status", "--check")


def test_a_changed_data_file_reruns_its_stage_and_everything_its_new_outputs_reach(
    chain: Chain, cli: Cli
) -> None:
    cli("run")
    (chain.root / "data/raw.csv").write_text("1\n2\n3\n5\n")  # only the test row changes
    cli("run")
    # train reads data/features/train.csv, which did not change: it is not re-run.
    assert chain.runs() == [*STAGES, "prepare", "featurize", "evaluate"]
    cli("status", "--check")


def test_a_deleted_output_is_restored_from_the_run_cache_without_running(
    chain: Chain, cli: Cli
) -> None:
    cli("run")
    model = (chain.root / "models/model.json").read_bytes()
    (chain.root / "models/model.json").unlink()
    assert _status(cli)["train"] == ["models/model.json is missing"]
    cli("run")
    assert chain.runs() == list(STAGES)
    assert (chain.root / "models/model.json").read_bytes() == model
    cli("status", "--check")


def test_a_changed_command_or_a_new_dependency_reruns_the_stage(chain: Chain, cli: Cli) -> None:
    cli("run")
    spec = chain.root / "repro.yaml"
    text = spec.read_text()
    spec.write_text(text.replace(f"cmd: {PY} src/evaluate.py", f"cmd: {PY} src/evaluate.py --v2"))
    assert _status(cli) == {"evaluate": ["command changed"]}
    cli("run")
    assert chain.runs() == [*STAGES, "evaluate"]
    assert chain.lock()["evaluate"].cmd == f"{PY} src/evaluate.py --v2"

    spec.write_text(
        spec.read_text().replace("    - src/train.py\n", "    - src/train.py\n    - data/raw.csv\n")
    )
    stale = _status(cli)
    assert stale["train"] == ["new dependency data/raw.csv"]
    cli("run")
    assert chain.runs() == [*STAGES, "evaluate", "train"]
    assert [d.path for d in chain.lock()["train"].deps] == [
        "data/features/train.csv",
        "data/raw.csv",
        "src/train.py",
    ]


def test_a_dependency_on_a_file_inside_a_directory_output_is_an_edge(
    chain: Chain, cli: Cli
) -> None:
    graph = json.loads(cli("dag", "--format", "json").stdout)
    edges = {(e["from"], e["to"]) for e in graph["edges"]}
    assert edges == {
        ("prepare", "featurize"),
        ("featurize", "train"),
        ("featurize", "evaluate"),
        ("train", "evaluate"),
    }
    cli("run", "train")
    assert chain.runs() == ["prepare", "featurize", "train"]


def test_targets_run_only_the_stages_they_need(chain: Chain, cli: Cli) -> None:
    cli("run", "featurize")
    assert chain.runs() == ["prepare", "featurize"]
    assert set(chain.lock()) == {"prepare", "featurize"}
    assert not (chain.root / "models/model.json").exists()
    assert set(_status(cli, expect=0)) == {"train", "evaluate"}


def test_downstream_runs_the_targets_and_their_dependants_but_not_their_upstream(
    chain: Chain, cli: Cli
) -> None:
    cli("run")
    with (chain.root / "src/prepare.py").open("a") as script:
        script.write("# edited\n")
    chain.set_param("lr: 0.1", "lr: 0.2")
    cli("run", "--downstream", "train")
    assert chain.runs() == [*STAGES, "train", "evaluate"]
    assert set(_status(cli)) == {"prepare", "featurize", "train", "evaluate"}
    assert _status(cli)["prepare"] == ["src/prepare.py changed"]


def test_force_runs_every_stage_again_without_the_run_cache(chain: Chain, cli: Cli) -> None:
    cli("run")
    result = cli("run", "--force")
    assert chain.runs() == [*STAGES, *STAGES]
    assert "restored" not in result.stderr
    assert all(f"{name}: ran (forced)" in result.stderr for name in STAGES), result.stderr
    cli("status", "--check")


def test_force_on_a_target_runs_it_although_it_is_up_to_date(chain: Chain, cli: Cli) -> None:
    cli("run")
    cli("run", "--force", "evaluate")
    assert chain.runs()[len(STAGES) :].count("evaluate") == 1


# --- parallel runs --------------------------------------------------------------------------

SLEEPERS = f"""\
stages:
  left:
    cmd: {PY} -c "import time; time.sleep(1.5); print('left done'); open('left.txt', 'w').write('L')"
    outs: [left.txt]
  right:
    cmd: {PY} -c "import time; time.sleep(1.5); print('right done'); open('right.txt', 'w').write('R')"
    outs: [right.txt]
"""


def test_two_independent_stages_run_side_by_side_with_prefixed_output(repo: Path, cli: Cli) -> None:
    (repo / "repro.yaml").write_text(SLEEPERS)
    started = time.monotonic()
    result = cli("run", "-j", "2")
    elapsed = time.monotonic() - started
    assert elapsed < 2.7, f"-j 2 took {elapsed:.2f} s for two 1.5 s stages"
    lines = result.stdout.splitlines()
    assert "[left] left done" in lines
    assert "[right] right done" in lines
    assert set(read_lock(repo)) == {"left", "right"}


DIAMOND = """\
stages:
  source:
    cmd: {py} -c "open('a.txt', 'w').write('a' * 10)"
    outs: [a.txt]
  upper:
    cmd: {py} -c "import os, time; time.sleep(0.3); os.mkdir('up'); open('up/u.txt', 'w').write(open('a.txt').read().upper())"
    deps: [a.txt]
    outs: [up]
  count:
    cmd:
    - {py} -c "open('n.txt', 'w').write(str(len(open('a.txt').read())))"
    - {py} -c "open('m.json', 'w').write('{{}}')"
    deps: [a.txt]
    params: [n]
    outs: [n.txt]
    metrics: [m.json]
  join:
    cmd: {py} -c "open('j.txt', 'w').write(open('up/u.txt').read() + open('n.txt').read())"
    deps: [up/u.txt, n.txt]
    outs: [j.txt]
"""


def test_repro_lock_is_byte_identical_whatever_the_number_of_jobs(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """-j only changes when stages run, never what is recorded."""
    locks = []
    for jobs, name in (("1", "serial"), ("2", "parallel")):
        root = tmp_path / name
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        monkeypatch.chdir(root)
        cli("init")
        make_tree(root, {"params.yaml": "n: 3\n", "repro.yaml": DIAMOND.format(py=PY)})
        cli("run", "-j", jobs)
        locks.append((root / "repro.lock").read_bytes())
    assert locks[0] == locks[1]
    assert set(lockfile.decode(locks[0])) == {"source", "upper", "count", "join"}


# --- failures and interruption ----------------------------------------------------------------


def test_a_failing_stage_stops_its_downstream_and_keeps_finished_stages(
    repo: Path, cli: Cli, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    make_tree(
        repo,
        {
            "first.py": stage_script("first", log, "open('a.txt', 'w').write('a')\n"),
            "broken.py": stage_script("broken", log, "import sys\nsys.exit(3)\n"),
            "after.py": stage_script("after", log, "open('c.txt', 'w').write('c')\n"),
            "repro.yaml": (
                "stages:\n"
                f"  first:\n    cmd: {PY} first.py\n    outs: [a.txt]\n"
                f"  broken:\n    cmd: {PY} broken.py\n    deps: [a.txt]\n    outs: [b.txt]\n"
                f"  after:\n    cmd: {PY} after.py\n    deps: [b.txt]\n    outs: [c.txt]\n"
            ),
        },
    )
    result = cli("run", expect=1)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "broken" in errors[0] and re.search(r"\b3\b", errors[0]), errors[0]
    assert log.read_text().split() == ["first", "broken"]
    lock = read_lock(repo)
    assert set(lock) == {"first"}
    assert not (repo / "c.txt").exists()
    status = _status(cli)
    assert "first" not in status and "broken" in status


def test_a_failing_stage_lets_a_running_independent_stage_finish_and_be_recorded(
    repo: Path, cli: Cli, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    make_tree(
        repo,
        {
            "slow.py": stage_script(
                "slow", log, "import time\ntime.sleep(0.6)\nopen('s.txt', 'w').write('s')\n"
            ),
            "broken.py": stage_script("broken", log, "import sys\nsys.exit(5)\n"),
            "after.py": stage_script("after", log, "open('c.txt', 'w').write('c')\n"),
            "repro.yaml": (
                "stages:\n"
                f"  slow:\n    cmd: {PY} slow.py\n    outs: [s.txt]\n"
                f"  broken:\n    cmd: {PY} broken.py\n    outs: [b.txt]\n"
                f"  after:\n    cmd: {PY} after.py\n    deps: [b.txt]\n    outs: [c.txt]\n"
            ),
        },
    )
    result = cli("run", "-j", "2", expect=1)
    assert "broken" in result.stderr and re.search(r"\b5\b", result.stderr), result.stderr
    assert sorted(log.read_text().split()) == ["broken", "slow"]
    assert set(read_lock(repo)) == {"slow"}
    assert (repo / "s.txt").read_text() == "s"


def test_a_stage_that_does_not_create_its_output_fails_without_a_lock_entry(
    repo: Path, cli: Cli
) -> None:
    (repo / "repro.yaml").write_text(
        f"stages:\n  lazy:\n    cmd: {PY} -c pass\n    outs: [x.txt]\n"
    )
    result = cli("run", expect=1)
    assert "lazy" in result.stderr and "x.txt" in result.stderr
    assert "lazy" not in (read_lock(repo) if (repo / "repro.lock").exists() else {})


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie awaiting its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_ctrl_c_stops_the_running_stage_and_leaves_a_consistent_lock(
    repo: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "stage.pid"
    make_tree(
        repo,
        {
            "quick.py": "open('q.txt', 'w').write('q')\n",
            "sleeper.py": (
                "import os, time\n"
                f"open({str(pid_file)!r} + '.tmp', 'w').write(str(os.getpid()))\n"
                f"os.replace({str(pid_file)!r} + '.tmp', {str(pid_file)!r})\n"
                "time.sleep(60)\n"
                "open('s.txt', 'w').write('s')\n"
            ),
            "repro.yaml": (
                "stages:\n"
                f"  quick:\n    cmd: {PY} quick.py\n    outs: [q.txt]\n"
                f"  sleeper:\n    cmd: {PY} sleeper.py\n    deps: [q.txt]\n    outs: [s.txt]\n"
            ),
        },
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "reprocli", "run"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not pid_file.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the sleeping stage never started"
            time.sleep(0.05)
        stage_pid = int(pid_file.read_text())
        assert _alive(stage_pid)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    assert "interrupted" in stderr
    deadline = time.monotonic() + 2
    while _alive(stage_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(stage_pid):
        os.kill(stage_pid, signal.SIGKILL)
        pytest.fail("the interrupted stage's process outlived repro")
    lock = read_lock(repo)
    assert set(lock) == {"quick"}
    assert not (repo / "s.txt").exists()
    # The lock is consistent: the next run only has the interrupted stage left to do.
    verdicts = subprocess.run(
        [sys.executable, "-m", "reprocli", "status", "--json"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    stale = {s["name"] for s in json.loads(verdicts.stdout)["stages"] if s["stale"]}
    assert stale == {"sleeper"}, verdicts.stdout + verdicts.stderr


# --- outputs ----------------------------------------------------------------------------------


def test_outputs_are_removed_before_their_stage_runs(repo: Path, cli: Cli) -> None:
    make_tree(
        repo,
        {
            "grow.py": (
                "import os\n"
                "os.makedirs('d', exist_ok=True)\n"
                "open('log.txt', 'a').write('line\\n')\n"
                "open(f'd/{len(os.listdir(\"d\"))}', 'w').write('x')\n"
            ),
            "repro.yaml": f"stages:\n  grow:\n    cmd: {PY} grow.py\n    outs: [log.txt, d]\n",
        },
    )
    cli("run")
    assert (repo / "log.txt").read_text() == "line\n"
    assert sorted(os.listdir(repo / "d")) == ["0"]
    cli("run", "--force")
    assert (repo / "log.txt").read_text() == "line\n"
    assert sorted(os.listdir(repo / "d")) == ["0"]


def test_cached_outputs_are_git_ignored_and_cached_while_metrics_stay_in_git(
    chain: Chain, cli: Cli
) -> None:
    root = chain.root
    cli("run")
    project = Project.discover(root)
    lock = chain.lock()
    for path in ("data/prepared", "data/features", "models/model.json"):
        assert ignored(root, path), path
    assert not ignored(root, "metrics.json")
    staged_now = staged(root)
    assert {"metrics.json", "repro.lock"} <= staged_now
    assert not any(
        p.startswith(("data/prepared/", "data/features/", "models/model")) for p in staged_now
    )
    for name in ("prepare", "featurize", "train"):
        for out in lock[name].outs:
            assert out.cache and project.store.has(out.oid), (name, out)
    (metrics,) = lock["evaluate"].outs
    assert (metrics.path, metrics.cache) == ("metrics.json", False)
    assert metrics.oid == oid_of_bytes((root / "metrics.json").read_bytes())
    model = lock["train"].out("models/model.json")
    assert model is not None
    assert model.oid == oid_of_bytes((root / "models/model.json").read_bytes())


def test_an_output_with_cache_false_is_left_to_git(repo: Path, cli: Cli) -> None:
    (repo / "repro.yaml").write_text(
        "stages:\n"
        "  report:\n"
        f"    cmd: {PY} -c \"open('report.txt', 'w').write('r'); open('blob.bin', 'w').write('b')\"\n"
        "    outs:\n"
        "    - report.txt: {cache: false}\n"
        "    - blob.bin\n"
    )
    cli("run")
    assert not ignored(repo, "report.txt")
    assert ignored(repo, "blob.bin")
    assert "report.txt" in staged(repo)
    entry = read_lock(repo)["report"]
    report = entry.out("report.txt")
    assert report is not None and report.cache is False


def test_commit_records_outputs_changed_by_hand(chain: Chain, cli: Cli) -> None:
    root = chain.root
    cli("run")
    before = chain.lock()
    (root / "metrics.json").write_text('{"score": 1.0}\n')
    assert _status(cli) == {"evaluate": ["metrics.json was modified"]}
    cli("commit", "evaluate")
    cli("status", "--check")
    after = chain.lock()
    metrics = after["evaluate"].out("metrics.json")
    assert metrics is not None and metrics.oid == oid_of_bytes(b'{"score": 1.0}\n')
    assert {n: e for n, e in after.items() if n != "evaluate"} == {
        n: e for n, e in before.items() if n != "evaluate"
    }

    (root / "models/model.json").write_text('{"weight": 42}\n')
    stale = _status(cli)
    assert stale["train"] == ["models/model.json was modified"]
    cli("commit", "train")
    stale = _status(cli)
    assert "train" not in stale
    model = chain.lock()["train"].out("models/model.json")
    assert model is not None and model.oid == oid_of_bytes(b'{"weight": 42}\n')
    assert Project.discover(root).store.has(model.oid)
    assert chain.runs() == list(STAGES)


# --- the graph --------------------------------------------------------------------------------


def test_dag_shows_the_chain_as_text_mermaid_dot_and_json(chain: Chain, cli: Cli) -> None:
    text = cli("dag").stdout.splitlines()
    assert text == [
        "prepare",
        "featurize  ← prepare",
        "train  ← featurize",
        "evaluate  ← featurize, train",
    ]
    mermaid = cli("dag", "--format", "mermaid").stdout
    assert mermaid.startswith("flowchart")
    for a, b in (("prepare", "featurize"), ("featurize", "train"), ("train", "evaluate")):
        assert f"s_{a} --> s_{b}" in mermaid
    dot = cli("dag", "--format", "dot").stdout
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert '"featurize" -> "train";' in dot and '"train" -> "evaluate";' in dot
    graph = json.loads(cli("dag", "--format", "json").stdout)
    assert [s["name"] for s in graph["stages"]] == list(STAGES)
    assert {"from": "prepare", "to": "featurize"} in graph["edges"]
    assert json.loads(cli("dag", "--json").stdout) == graph
    assert chain.runs() == []
    assert not (chain.root / "repro.lock").exists()


# --- sharing through Git and a remote -----------------------------------------------------------


def test_a_clone_pulls_stage_outputs_tracked_by_repro_lock(
    chain: Chain, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = chain.root
    cli("remote", "add", "-d", "store", str(tmp_path / "store"))
    cli("run")
    git(root, "add", "-A")
    commit(root, "ran the pipeline")
    cli("push")
    expected = {
        p: b
        for p, b in workspace_files(root).items()
        if p.startswith(("data/prepared/", "data/features/", "models/model"))
    }
    assert len(expected) == 5

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root), str(clone))
    monkeypatch.chdir(clone)
    assert not (clone / "models/model.json").exists()
    cli("pull")
    pulled = {p: b for p, b in workspace_files(clone).items() if p in expected}
    assert pulled == expected
    cli("status", "--check")
    cli("run")
    assert chain.runs() == list(STAGES)
