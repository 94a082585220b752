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

    step("track the raw data and a model")
    models = project / "models"
    models.mkdir()
    (models / "model.pkl").write_bytes(b"weights v1\n" * 1000)
    repro("add", "data/raw", "models/model.pkl", cwd=project)
    sh("cat", "data/raw.repro", cwd=project)
    git("add", "-A", cwd=project)
    git("commit", "-q", "-m", "data v1", cwd=project)
    repro("status", cwd=project)

    step("edit the data: status says what changed, --check fails")
    with open(project / "data/raw/2024-h2.csv", "a") as handle:
        handle.write("2024-12-31,1.0,90.0,10.0,1\n")
    (project / "data/raw/notes.txt").write_text("collected by hand\n")
    repro("status", cwd=project)
    repro("status", "--check", cwd=project, expect=1)

    step("record the new version and commit it")
    repro("commit", cwd=project)
    git("commit", "-q", "-m", "data v2", cwd=project)
    repro("status", "--check", cwd=project)

    step("lose the data, get it back from the cache (exec bits too)")
    shutil.rmtree(project / "data/raw")
    (project / "models/model.pkl").unlink()
    repro("status", cwd=project, expect=0)
    repro("checkout", cwd=project)
    sh("ls", "-l", "data/raw", cwd=project)
    repro("status", "--check", cwd=project)

    step("an uncommitted edit is never overwritten without --force")
    (project / "models/model.pkl").write_bytes(b"half-trained weights\n")
    repro("checkout", cwd=project, expect=2)
    repro("checkout", "--force", cwd=project)

    step("share the data: push to a directory remote (no cloud account needed)")
    storage = workdir / "storage"
    repro("remote", "add", "-d", "storage", str(storage), cwd=project)
    git("commit", "-q", "-m", "add a remote", cwd=project)
    repro("status", "--remote", "--check", cwd=project, expect=1)
    repro("push", cwd=project)
    repro("push", cwd=project)
    repro("status", "--remote", "--check", cwd=project)

    step("a teammate clones the repository and pulls the same bytes")
    clone = workdir / "teammate"
    git("clone", "-q", str(project), str(clone), cwd=workdir)
    repro("status", cwd=clone)
    repro("pull", cwd=clone)
    repro("status", "--check", cwd=clone)
    same = (clone / "data/raw/2024-h2.csv").read_bytes() == (
        project / "data/raw/2024-h2.csv"
    ).read_bytes()
    print(f"  identical bytes in the clone: {same}")
    if not same:
        sys.exit("demo failed: the clone's data differs")

    print(f"\ndemo finished: every step behaved as expected ({project})")


if __name__ == "__main__":
    main()
