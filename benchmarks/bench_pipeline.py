"""Pipeline benchmarks: no-op `repro run` / `repro status` on a 50-stage chain and a 100-stage
fan-out, next to `dvc repro` / `dvc status` on the same pipelines, and `run -j 2` on two
independent 2-second stages.

    python benchmarks/bench_pipeline.py [--dvc PATH] [--repeat N] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPRO = [sys.executable, "-m", "reprocli"]


def sh(cmd: list[str], cwd: Path) -> float:
    """Run a command, fail loudly on error, return its wall time in seconds."""
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{result.stdout}{result.stderr}")
    return elapsed


def chain(n: int) -> tuple[str, dict[str, str]]:
    """A linear pipeline s1 → s2 → … → sn, each stage copying its input."""
    lines = ["stages:"]
    for i in range(1, n + 1):
        lines += [
            f"  s{i}:",
            f"    cmd: cp s{i - 1}.txt s{i}.txt",
            f"    deps: [s{i - 1}.txt]",
            f"    outs: [s{i}.txt]",
        ]
    return "\n".join(lines) + "\n", {"s0.txt": "0\n"}


def fan_out(n: int) -> tuple[str, dict[str, str]]:
    """One input read by n independent stages."""
    lines = ["stages:"]
    for i in range(1, n + 1):
        lines += [
            f"  f{i}:",
            f"    cmd: cp input.txt out{i}.txt",
            "    deps: [input.txt]",
            f"    outs: [out{i}.txt]",
        ]
    return "\n".join(lines) + "\n", {"input.txt": "x\n"}


def project(
    root: Path, tool: list[str], yaml_text: str, files: dict[str, str], *, dvc: bool
) -> Path:
    """A fresh Git repository with the pipeline, run once."""
    root.mkdir(parents=True)
    sh(["git", "init", "-q"], root)
    sh(["git", "config", "user.email", "bench@example.com"], root)
    sh(["git", "config", "user.name", "bench"], root)
    for name, text in files.items():
        (root / name).write_text(text)
    (root / ("dvc.yaml" if dvc else "repro.yaml")).write_text(yaml_text)
    sh([*tool, "init", "-q"], root)
    sh([*tool, "repro" if dvc else "run"], root)
    return root


def median(cmd: list[str], cwd: Path, repeat: int) -> float:
    return statistics.median(sh(cmd, cwd) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dvc", help="a dvc executable (in its own virtualenv)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="repro-pipe-", dir=args.workdir))
    rows: list[tuple[str, str, float | None, float | None]] = []
    try:
        for label, (text, files) in {
            "50-stage chain": chain(50),
            "100-stage fan-out": fan_out(100),
        }.items():
            tag = label.split()[0]
            repro_root = project(work / f"repro-{tag}", REPRO, text, files, dvc=False)
            dvc_root = (
                project(work / f"dvc-{tag}", [args.dvc], text, files, dvc=True)
                if args.dvc
                else None
            )
            for what, repro_cmd, dvc_cmd in (
                ("no-op run", [*REPRO, "run", "-q"], [args.dvc or "", "repro", "-q"]),
                ("no-op status", [*REPRO, "status", "-q"], [args.dvc or "", "status", "-q"]),
            ):
                r = median(repro_cmd, repro_root, args.repeat)
                d = median(dvc_cmd, dvc_root, args.repeat) if dvc_root else None
                rows.append((label, what, r, d))
        sleepy = (
            "stages:\n"
            "  a:\n    cmd: sleep 2 && echo a > a.txt\n    outs: [a.txt]\n"
            "  b:\n    cmd: sleep 2 && echo b > b.txt\n    outs: [b.txt]\n"
        )
        root = work / "parallel"
        root.mkdir()
        sh(["git", "init", "-q"], root)
        (root / "repro.yaml").write_text(sleepy)
        sh([*REPRO, "init", "-q"], root)
        serial = sh([*REPRO, "run", "-q", "--no-run-cache", "-f"], root)
        parallel = sh([*REPRO, "run", "-q", "--no-run-cache", "-f", "-j", "2"], root)
        rows.append(("two 2-second stages", "run -j 1", serial, None))
        rows.append(("two 2-second stages", "run -j 2", parallel, None))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'pipeline':22} {'command':14} {'repro':>9} {'dvc':>9} {'dvc/repro':>10}")
    for label, what, r, d in rows:
        ratio = f"{d / r:9.1f}x" if d and r else ""
        dvc_text = f"{d:8.3f}s" if d else "        -"
        print(f"{label:22} {what:14} {r:8.3f}s {dvc_text} {ratio:>10}")


if __name__ == "__main__":
    os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")
    main()
