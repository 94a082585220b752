"""Remote benchmarks: push, no-op push and pull (into a fresh clone) of many small files and of
big files, to a directory remote and to a loopback S3 server (moto), next to DVC on the same
data and the same servers, and `cp -r` of the same bytes.

    python benchmarks/bench_remote.py [--files N] [--s3-files N] [--big-mib M] [--dvc PATH]

moto answers about 100 requests/s on a 2-core machine whatever the client does, so the S3
rows use fewer files (--s3-files): they compare request patterns, not bandwidth.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPRO = [sys.executable, "-m", "reprocli"]


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Run a command, fail loudly on error, return its wall time in seconds."""
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{result.stdout}{result.stderr}")
    return elapsed


def small_files(root: Path, count: int) -> None:
    """`count` files of 1 KiB in 100 folders, each different."""
    payload = os.urandom(1024)
    for i in range(count):
        folder = root / f"d{i % 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:06d}.bin").write_bytes(payload[:1016] + i.to_bytes(8, "little"))


def big_files(root: Path, mib: int) -> None:
    """Two files of `mib` MiB of incompressible bytes."""
    root.mkdir(parents=True)
    block = os.urandom(1 << 20)
    for name in ("a.bin", "b.bin"):
        with open(root / name, "wb") as handle:
            for i in range(mib):
                handle.write(i.to_bytes(8, "little") + block[8:])


def repo(
    root: Path, tool: list[str], make: Callable[[Path], None], remote: tuple[str, list[str]]
) -> Path:
    """A Git repo with tracked `data/` and a default remote; data added and committed."""
    root.mkdir(parents=True)
    for cmd in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "b@example.com"],
        ["git", "config", "user.name", "b"],
    ):
        run(cmd, root)
    make(root / "data")
    run([*tool, "init", "-q"], root)
    run([*tool, "add", "-q", "data"], root)
    url, options = remote
    run([*tool, "remote", "add", "-d", "storage", url], root)
    for key, value in (o.split("=", 1) for o in options):
        run([*tool, "remote", "modify", "storage", key, value], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-q", "-m", "data"], root)
    return root


def measure(
    name: str,
    tool: list[str],
    make: Callable[[Path], None],
    remote: tuple[str, list[str]],
    work: Path,
    env: dict[str, str],
) -> dict[str, float]:
    root = repo(work / name, tool, make, remote)
    times = {
        "push": run([*tool, "push", "-q"], root, env),
        "no-op push": run([*tool, "push", "-q"], root, env),
    }
    clone = work / f"{name}-clone"
    run(["git", "clone", "-q", str(root), str(clone)], work)
    times["pull"] = run([*tool, "pull", "-q"], clone, env)
    shutil.rmtree(root)
    shutil.rmtree(clone)
    return times


def start_s3() -> tuple[str, Callable[[], None]]:
    """A moto S3 server on a free loopback port."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}", server.stop


def new_bucket(endpoint: str, name: str) -> str:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return f"s3://{name}/store"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--s3-files", type=int, default=2_000)
    parser.add_argument("--big-mib", type=int, default=512)
    parser.add_argument("--dvc", help="a dvc executable (in its own virtualenv)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update(env)
    work = Path(tempfile.mkdtemp(prefix="repro-remote-", dir=args.workdir))
    endpoint, stop = start_s3()
    tools = {"repro": REPRO, **({"dvc": [args.dvc]} if args.dvc else {})}
    rows: list[tuple[str, str, dict[str, float]]] = []
    try:
        workloads = {
            f"{args.files:,} x 1 KiB, folder": (lambda p: small_files(p, args.files), "dir"),
            f"2 x {args.big_mib} MiB, folder": (lambda p: big_files(p, args.big_mib), "dir"),
            f"{args.s3_files:,} x 1 KiB, S3": (lambda p: small_files(p, args.s3_files), "s3"),
        }
        for label, (make, kind) in workloads.items():
            for tool_name, tool in tools.items():
                slug = f"{tool_name}-{len(rows)}"
                if kind == "dir":
                    remote = (str(work / f"{slug}-remote"), [])
                else:
                    key = "endpointurl" if tool_name == "dvc" else "endpoint_url"
                    remote = (new_bucket(endpoint, slug), [f"{key}={endpoint}"])
                rows.append((label, tool_name, measure(slug, tool, make, remote, work, env)))
                shutil.rmtree(work / f"{slug}-remote", ignore_errors=True)
            if kind == "dir":
                source = work / "cp-source"
                make(source)
                start = time.perf_counter()
                subprocess.run(["cp", "-r", str(source), str(work / "cp-copy")], check=True)
                rows.append((label, "cp -r", {"push": time.perf_counter() - start}))
                shutil.rmtree(source)
                shutil.rmtree(work / "cp-copy")
    finally:
        stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'workload':26} {'tool':6} {'push':>9} {'no-op push':>11} {'pull':>9}")
    for label, tool_name, t in rows:
        cells = [f"{t[k]:8.2f}s" if k in t else "        -" for k in ("push", "no-op push", "pull")]
        print(f"{label:26} {tool_name:6} {cells[0]} {cells[1]:>11} {cells[2]}")


if __name__ == "__main__":
    main()
