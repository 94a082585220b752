"""The repro lifecycle on the example project, step by step, in a fresh temporary folder.

Run it with the README's first command. It needs only Python, Git and this package: the
"remote" is a local directory, so no cloud account is involved.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEP = 0


def step(title: str) -> None:
    global STEP
    STEP += 1
    print(f"\n== {STEP}. {title}", flush=True)


def sh(*args: str, cwd: Path, expect: int = 0) -> str:
    """Run a command, echo it and its output, and check its exit code."""
    words = list(args)
    if words[:3] == [sys.executable, "-m", "reprocli"]:
        words = ["repro", *words[3:]]
    shown = " ".join(words)
    print(f"$ {shown}", flush=True)
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    output = (result.stdout + result.stderr).rstrip()
    if output:
        print("  " + output.replace("\n", "\n  "), flush=True)
    if result.returncode != expect:
        sys.exit(f"demo failed: exit code {result.returncode}, expected {expect}")
    return result.stdout


def repro(*args: str, cwd: Path, expect: int = 0) -> str:
    return sh(sys.executable, "-m", "reprocli", *args, cwd=cwd, expect=expect)


def git(*args: str, cwd: Path) -> str:
    return sh("git", *args, cwd=cwd)


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="repro-demo-"))
    project = workdir / "weather"
    shutil.copytree(HERE / "project", project)
    os.environ.setdefault("GIT_AUTHOR_NAME", "repro demo")
    os.environ.setdefault("GIT_AUTHOR_EMAIL", "demo@example.com")
    os.environ.setdefault("GIT_COMMITTER_NAME", "repro demo")
    os.environ.setdefault("GIT_COMMITTER_EMAIL", "demo@example.com")
    print(f"demo project: {project}")

    step("a Git repository with repro in it")
    git("init", "-q", "-b", "main", cwd=project)
    repro("init", cwd=project)

    step("track the raw data")
    repro("add", "data/raw", cwd=project)
    sh("cat", "data/raw.repro", cwd=project)
    git("add", "-A", cwd=project)
    git("commit", "-q", "-m", "raw data", cwd=project)
    repro("status", cwd=project)

    step("the pipeline: prepare → featurize → train → evaluate")
    repro("dag", cwd=project)
    repro("run", cwd=project)
    sh("cat", "metrics.json", cwd=project)
    git("commit", "-q", "-m", "pipeline v1", cwd=project)
    git("tag", "v1", cwd=project)
    repro("run", cwd=project)

    step("change a parameter: only the stages it affects run")
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("lr: 0.1", "lr: 0.3"))
    repro("status", cwd=project)
    repro("run", "--dry", cwd=project)
    repro("run", cwd=project)
    sh("cat", "metrics.json", cwd=project)
    git("commit", "-q", "-a", "-m", "train.lr = 0.3", cwd=project)
    git("tag", "v2", cwd=project)

    step("compare the experiments: parameters, metrics, data, and a model's history")
    repro("params", "diff", "v1", "v2", cwd=project)
    repro("metrics", "diff", "v1", "v2", cwd=project)
    repro("metrics", "show", "--all-tags", cwd=project)
    repro("diff", "v1", "v2", cwd=project)
    repro("log", "models/model.json", cwd=project)

    step("revert it: the outputs come back from the run-cache, nothing executes")
    params.write_text(params.read_text().replace("lr: 0.3", "lr: 0.1"))
    repro("run", cwd=project)
    git("commit", "-q", "-a", "-m", "back to train.lr = 0.1", cwd=project)

    step("edit the raw data: status says what changed, --check fails")
    with open(project / "data/raw/2024-h2.csv", "a") as handle:
        handle.write("2024-12-31,1.0,90.0,10.0,1\n")
    (project / "data/raw/notes.txt").write_text("collected by hand\n")
    repro("status", cwd=project)
    repro("status", "--check", cwd=project, expect=1)
    repro("commit", "data/raw", cwd=project)
    repro("run", cwd=project)
    git("commit", "-q", "-a", "-m", "data v2", cwd=project)
    repro("status", "--check", cwd=project)

    step("lose the data and the model, get them back from the cache (exec bits too)")
    shutil.rmtree(project / "data/raw")
    (project / "models/model.json").unlink()
    repro("status", cwd=project, expect=0)
    repro("checkout", cwd=project)
    sh("ls", "-l", "data/raw", cwd=project)
    repro("status", "--check", cwd=project)

    step("an uncommitted edit is never overwritten without --force")
    (project / "models/model.json").write_text("{}\n")
    repro("checkout", cwd=project, expect=2)
    repro("checkout", "--force", cwd=project)

    step("share the data: push to a directory remote (no cloud account needed)")
    storage = workdir / "storage"
    repro("remote", "add", "-d", "storage", str(storage), cwd=project)
    git("commit", "-q", "-m", "add a remote", cwd=project)
    repro("status", "--remote", "--check", cwd=project, expect=1)
    repro("push", "--all-tags", cwd=project)
    repro("push", cwd=project)
    repro("status", "--remote", "--check", cwd=project)

    step("a teammate clones the repository and pulls the same bytes")
    clone = workdir / "teammate"
    git("clone", "-q", str(project), str(clone), cwd=workdir)
    repro("status", cwd=clone)
    repro("pull", cwd=clone)
    repro("status", "--check", cwd=clone)
    for rel in ("data/raw/2024-h2.csv", "models/model.json", "metrics.json"):
        same = (clone / rel).read_bytes() == (project / rel).read_bytes()
        print(f"  {rel} identical in the clone: {same}")
        if not same:
            sys.exit(f"demo failed: {rel} differs in the clone")
    repro("run", cwd=clone)

    step("v2 was worse: roll the model back to v1 (HEAD stays; the rollback is staged)")
    repro("checkout", "v1", "--", "models/model.json", cwd=project)
    git("status", "--short", cwd=project)
    repro("status", cwd=project)
    git("commit", "-q", "-m", "roll the model back to v1", cwd=project)
    repro("log", "models/model.json", cwd=project)

    step("hooks: `git checkout` brings the data along, `git commit` checks it first")
    repro("hooks", "install", cwd=project)
    git("checkout", "-q", "v2", cwd=project)
    repro("status", "--check", cwd=project)
    sh("cat", "metrics.json", cwd=project)
    git("checkout", "-q", "main", cwd=project)
    repro("status", cwd=project)  # main holds the rolled-back model: train is stale, truthfully
    repro("hooks", "uninstall", cwd=project)

    step("the whole project at v1, data and all, compared with today's, then back")
    repro("checkout", "v1", cwd=project)
    repro("status", "--check", cwd=project)
    repro("metrics", "diff", "main", "v1", "--md", cwd=project)
    repro("checkout", "main", cwd=project)
    repro("status", cwd=project)

    print(f"\ndemo finished: every step behaved as expected ({project})")


if __name__ == "__main__":
    main()
