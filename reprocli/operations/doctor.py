"""`repro doctor`: what repro runs on here, and whether each part works.

Versions, Git, the cache (where, free space, the link type checkout actually gets on this
filesystem), and each remote: reachable or not, with its URL redacted and the config files
that set it. Reading only, apart from one tiny probe object in the cache and a probe file
under `.repro/tmp/`.
"""

from __future__ import annotations

import contextlib
import platform
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from reprocli import __version__
from reprocli.core import gitrepo
from reprocli.core.config import Source
from reprocli.core.links import Linker
from reprocli.errors import NotAProjectError, ReproError
from reprocli.project import Project

LIBRARIES = ("typer", "rich", "gitpython", "fsspec", "s3fs", "networkx", "pyyaml", "xxhash")
PROBE = b"repro doctor: link type probe\n"
REMOTE_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class RemoteCheck:
    """One configured remote: its redacted URL, whether a request to it worked, and where
    each of its options was set."""

    name: str
    url: str
    default: bool
    reachable: bool
    detail: str
    incomplete_uploads: int = 0
    sources: dict[str, Source] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Report:
    """Everything doctor found; `problems` lists what does not work."""

    repro: str
    python: str
    system: str
    libraries: dict[str, str | None]
    git: str | None
    project: str | None
    cache: str | None
    free_bytes: int | None
    link_type: str | None
    remotes: tuple[RemoteCheck, ...]
    problems: tuple[str, ...]


def versions() -> dict[str, str | None]:
    """The installed version of each library repro uses (None when missing)."""
    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def doctor(start: Path | None = None) -> Report:
    """Check this machine and, when run inside one, the project."""
    problems: list[str] = []
    libraries = versions()
    problems += [f"library {name} is not installed" for name, v in libraries.items() if v is None]
    git = _git_version(problems)
    try:
        project: Project | None = Project.discover(start)
    except NotAProjectError as exc:
        project = None
        problems.append(f"not in a repro project ({exc})")
    except ReproError as exc:  # a project repro refuses to open (a config it may not use…)
        project = None
        problems.append(str(exc))
    cache = free = link = None
    remotes: tuple[RemoteCheck, ...] = ()
    if project is not None:
        cache = str(project.cache_root)
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(_existing(project.cache_root)).free
        link = _link_type(project, problems)
        remotes = tuple(_remote(project, name) for name in sorted(project.config.remotes))
        problems += [f"remote {r.name}: {r.detail}" for r in remotes if not r.reachable]
    return Report(
        repro=__version__,
        python=platform.python_version(),
        system=f"{platform.system()} {platform.release()} {platform.machine()}",
        libraries=libraries,
        git=git,
        project=None if project is None else str(project.root),
        cache=cache,
        free_bytes=free,
        link_type=link,
        remotes=remotes,
        problems=tuple(problems),
    )


def _git_version(problems: list[str]) -> str | None:
    try:
        exe = gitrepo.git_executable()
    except ReproError as exc:
        problems.append(str(exc))
        return None
    result = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    return f"{result.stdout.strip()} ({exe})"


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _link_type(project: Project, problems: list[str]) -> str | None:
    """The link type checkout gets here: place one probe object and see which type worked."""
    try:
        oid = project.store.put_bytes(PROBE)
        project.tmp_dir.mkdir(parents=True, exist_ok=True)
        linker = Linker(project.store, project.config.link_types, project.tmp_dir)
        probe = project.tmp_dir / "doctor-probe"
        try:
            linker.place(oid, probe, executable=False)
        finally:
            with contextlib.suppress(FileNotFoundError):
                probe.unlink()
        return ", ".join(sorted(linker.used)) or None
    except (ReproError, OSError) as exc:
        problems.append(f"cache: cannot check out from it ({exc})")
        return None


def _remote(project: Project, name: str) -> RemoteCheck:
    from reprocli.core.remotes import describe, redact  # noqa: PLC0415 - remotes cost imports

    spec = project.config.remotes.get(name) or {}
    url = redact(str(spec.get("url", "")))
    default = project.config.default_remote == name
    sources = project.config.sources_of(name, project.root)

    def probe() -> int:
        remote = project.open_remote(name, jobs=1)
        remote.exists("0" * 32)  # type: ignore[arg-type]
        return len(remote.incomplete_uploads())

    pool = ThreadPoolExecutor(max_workers=1)
    try:
        incomplete = pool.submit(probe).result(timeout=REMOTE_TIMEOUT)
    except FutureTimeout:
        detail = f"no answer in {REMOTE_TIMEOUT:.0f} s"
        return RemoteCheck(name, url, default, False, detail, sources=sources)
    except ReproError as exc:
        return RemoteCheck(name, url, default, False, str(exc), sources=sources)
    except Exception as exc:
        return RemoteCheck(name, url, default, False, describe(exc), sources=sources)
    finally:
        pool.shutdown(wait=False)
    if incomplete:
        detail = (
            f"reachable; {incomplete} incomplete multipart upload(s) still billed "
            "(abort them with a lifecycle rule: docs/remotes.md#incomplete-uploads)"
        )
        return RemoteCheck(name, url, default, True, detail, incomplete, sources)
    return RemoteCheck(name, url, default, True, "reachable", sources=sources)
