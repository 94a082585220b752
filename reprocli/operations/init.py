"""`repro init`: create `.repro/` at the root of the Git repository."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reprocli.core import atomic, config, gitignore, gitrepo
from reprocli.core.gitrepo import GitRepo
from reprocli.errors import NotAProjectError
from reprocli.project import REPRO_DIR

# What stays out of Git inside .repro/: the cache, per-machine state, temps, the lock
# and the local config (credentials).
REPRO_GITIGNORE = b"/cache/\n/state/\n/tmp/\n/lock\n/config.local.yaml\n"
TEMP_PATTERN = atomic.TEMP_PREFIX + "*"


@dataclass(frozen=True, slots=True)
class Initialised:
    """The project root, and whether this call created `.repro/`."""

    root: Path
    created: bool


def init(directory: Path, *, no_scm: bool = False) -> Initialised:
    """Create `.repro/` (config and .gitignore) at the Git root above `directory`.

    Idempotent: an existing project is left as it is. Outside a Git repository this
    raises NotAProjectError unless `no_scm`.
    """
    here = directory.absolute()
    root = here if no_scm else gitrepo.toplevel(here)
    if root is None:
        raise NotAProjectError(
            f"{here}: not a Git repository",
            hint="run `git init` first, or `repro init --no-scm` to use repro without Git",
        )
    repro_dir = root / REPRO_DIR
    config_file = repro_dir / "config.yaml"
    if config_file.is_file():
        return Initialised(root, created=False)
    repro_dir.mkdir(exist_ok=True)
    atomic.write_bytes(repro_dir / ".gitignore", REPRO_GITIGNORE)
    atomic.write_bytes(config_file, config.initial_bytes(no_scm=no_scm))
    if not no_scm:
        # A temp file written beside data (when .repro/tmp is on another filesystem) and
        # left by a killed process must never show up as something to commit.
        gitignore.ensure_line(root, "", TEMP_PATTERN, tmp_dir=None)
        GitRepo(root).add([".gitignore", f"{REPRO_DIR}/.gitignore", f"{REPRO_DIR}/config.yaml"])
    return Initialised(root, created=True)
