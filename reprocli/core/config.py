"""Configuration: defaults < system < global < repository < local (docs/formats.md#config).

`.repro/config.yaml` is tracked by Git; `.repro/config.local.yaml` is not (per-machine
options, credentials). Every file is validated; an unknown key is an error naming the file.
`cache.dir` is honoured only from untracked levels: a cloned repository must not be able to
point repro's deletions (gc) at an arbitrary folder (RELIABILITY G5). A remote in the tracked
file may use only the protocols and options of `TRACKED_REMOTES` (docs/remotes.md#the-tracked-config);
a remote defined with a `url` at a higher level replaces the lower definition as a whole.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from reprocli.core import atomic, yamlio
from reprocli.errors import InvalidFileError, UnsafePathError

LinkType = Literal["reflink", "copy", "hardlink", "symlink"]
LINK_TYPES: tuple[LinkType, ...] = ("reflink", "copy", "hardlink", "symlink")
DEFAULT_LINK_TYPES: tuple[LinkType, ...] = ("reflink", "copy")
Level = Literal["system", "global", "repo", "local"]
VERSION = 1

# section -> key -> (type, levels where it may be set)
_ANY: tuple[Level, ...] = ("system", "global", "repo", "local")
_UNTRACKED: tuple[Level, ...] = ("system", "global", "local")
SCHEMA: dict[str, dict[str, tuple[type, tuple[Level, ...]]]] = {
    "core": {"autostage": (bool, _ANY), "no_scm": (bool, _ANY), "remote": (str, _ANY)},
    "cache": {"type": (str, _ANY), "dir": (str, _UNTRACKED)},
}


# The tracked config is written by whoever wrote the repository: its remotes may use only these
# protocols, and only these options (with these types) besides `url` and `jobs`. Nothing here
# runs a command, names a local file or folder, chains or wraps a file system, or picks which
# of the user's credentials are used (`profile`: a tracked endpoint_url would receive that
# profile's session token). Everything else belongs in the local, global or system config.
_S3: dict[str, type] = {"endpoint_url": str, "region": str, "requester_pays": bool}
_GCS: dict[str, type] = {"requester_pays": bool}
_AZURE: dict[str, type] = {"account_name": str}
_SSH: dict[str, type] = {"port": int, "username": str}
TRACKED_REMOTES: dict[str, dict[str, type]] = {
    "file": {},  # a folder: a plain path or file://
    "memory": {},  # fsspec's in-process store (tests)
    "s3": _S3,
    "s3a": _S3,
    "gs": _GCS,
    "gcs": _GCS,
    "az": _AZURE,
    "abfs": _AZURE,
    "http": {},
    "https": {},
    "ssh": _SSH,
    "sftp": _SSH,
}
TRACKED_COMMON: dict[str, type] = {"url": str, "jobs": int}
MAX_JOBS = 256
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9_+.-]{0,31}")


@dataclass(frozen=True, slots=True)
class Source:
    """Where one option of a remote was set: the config level and its file."""

    level: Level
    path: Path

    def shown(self, root: Path) -> Source:
        """This source with its file as users see it: relative to `root` when inside it."""
        try:
            return Source(self.level, self.path.relative_to(root))
        except ValueError:
            return self


@dataclass(frozen=True, slots=True)
class Config:
    """The merged, validated configuration of one project."""

    autostage: bool = True
    no_scm: bool = False
    link_types: tuple[LinkType, ...] = DEFAULT_LINK_TYPES
    cache_dir: str | None = None
    default_remote: str | None = None
    remotes: dict[str, dict[str, Any]] = field(default_factory=dict)
    remote_sources: dict[str, dict[str, Source]] = field(default_factory=dict)
    """remote name -> option (`url` included) -> where its value was set."""

    def sources_of(self, remote: str, root: Path) -> dict[str, Source]:
        """Where each option of `remote` was set, `url` first; files under `root` relative."""
        sources = self.remote_sources.get(remote, {})
        return {k: sources[k].shown(root) for k in sorted(sources, key=lambda k: (k != "url", k))}


LOCAL_FILE = "config.local.yaml"
"""The untracked per-machine level, beside the tracked `config.yaml` in `.repro/`."""


def global_dir() -> Path:
    """The per-user config folder (REPRO_GLOBAL_CONFIG_DIR overrides it)."""
    override = os.environ.get("REPRO_GLOBAL_CONFIG_DIR")
    if override:
        return Path(override)
    import platformdirs  # noqa: PLC0415 - only commands that read config pay for it

    return Path(platformdirs.user_config_dir("repro"))


def system_dir() -> Path:
    """The machine-wide config folder (REPRO_SYSTEM_CONFIG_DIR overrides it)."""
    override = os.environ.get("REPRO_SYSTEM_CONFIG_DIR")
    if override:
        return Path(override)
    import platformdirs  # noqa: PLC0415

    return Path(platformdirs.site_config_dir("repro"))


def paths_for(repro_dir: Path) -> dict[Level, Path]:
    """Where each level's file lives, lowest precedence first."""
    return {
        "system": system_dir() / "config.yaml",
        "global": global_dir() / "config.yaml",
        "repo": repro_dir / "config.yaml",
        "local": repro_dir / LOCAL_FILE,
    }


def parse_link_types(text: str, where: str) -> tuple[LinkType, ...]:
    """Parse `cache.type` ("reflink,copy") into an ordered tuple of link types."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        if name not in LINK_TYPES:
            raise InvalidFileError(
                f"{where}: cache.type: unknown link type {name!r} (one of {', '.join(LINK_TYPES)})"
            )
    if not names:
        raise InvalidFileError(f"{where}: cache.type is empty")
    return tuple(cast(LinkType, n) for n in names)


def _read(path: Path, *, follow: bool) -> bytes:
    """A config file's bytes, refused before reading when larger than YAML's cap or not a
    regular file (a committed link to /dev/zero); the repository's own files (`follow`
    false) are never read through a symlink at the file itself."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePathError(
                f"{path}: is a symlink; repro does not read through links"
            ) from None
        raise InvalidFileError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidFileError(f"{path}: is not a regular file")
        if st.st_size > yamlio.MAX_BYTES:
            raise InvalidFileError(f"{path}: file is larger than {yamlio.MAX_BYTES} bytes")
        return os.read(fd, yamlio.MAX_BYTES + 1)
    except OSError as exc:
        raise InvalidFileError(f"{path}: cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)


def read_level(path: Path, level: Level) -> dict[str, Any]:
    """Read and validate one config file; a missing file is an empty mapping."""
    try:
        data = _read(path, follow=level in ("system", "global"))
    except FileNotFoundError:
        return {}
    return check(yamlio.load(data, where=str(path)), path, level)


def check(raw: object, path: Path, level: Level) -> dict[str, Any]:
    """Validate one config file's parsed content for `level` (None is an empty mapping);
    `repro remote` checks what it is about to write with it."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidFileError(f"{path}: a config file is a mapping of sections")
    version = raw.get("version", VERSION)
    if type(version) is not int or version != VERSION:
        raise InvalidFileError(f"{path}: unsupported config version {version!r}")
    for section, values in raw.items():
        if section == "version":
            continue
        if section == "remotes":
            _check_remotes(values, path, level)
            continue
        if section not in SCHEMA:
            raise InvalidFileError(f"{path}: unknown section {section!r}")
        if not isinstance(values, dict):
            raise InvalidFileError(f"{path}: {section} must be a mapping")
        for key, value in values.items():
            spec = SCHEMA[section].get(key)
            if spec is None:
                raise InvalidFileError(f"{path}: unknown option {section}.{key}")
            kind, levels = spec
            if type(value) is not kind:
                raise InvalidFileError(f"{path}: {section}.{key} must be a {kind.__name__}")
            if level not in levels:
                raise InvalidFileError(
                    f"{path}: {section}.{key} may not be set in the tracked config",
                    hint="set it in .repro/config.local.yaml or the global config",
                )
            if (section, key, level) == ("cache", "type", "repo"):
                _check_tracked_link_types(str(value), path)
    return raw


def _check_tracked_link_types(value: str, path: Path) -> None:
    """The tracked config may only choose link types that never expose the cache's own files
    to the workspace: `hardlink` and `symlink` share them, which a user opts into locally."""
    shared = [t for t in parse_link_types(value, str(path)) if t in ("hardlink", "symlink")]
    if shared:
        raise InvalidFileError(
            f"{path}: cache.type {shared[0]} may not be set in the tracked config",
            hint="choose it in .repro/config.local.yaml or the global config",
        )


REMOTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""What a remote may be called."""


def _check_remotes(values: object, path: Path, level: Level) -> None:
    if not isinstance(values, dict):
        raise InvalidFileError(f"{path}: remotes must be a mapping of names")
    for name, options in values.items():
        if not isinstance(name, str) or not REMOTE_NAME.fullmatch(name):
            # names are printed (remote list, doctor, errors): no escape sequence in them
            raise InvalidFileError(
                f"{path}: remote name {name!r} is not letters, digits and `_.-` (after the first)"
            )
        if not isinstance(options, dict) or not isinstance(options.get("url", ""), str):
            raise InvalidFileError(f"{path}: remote {name!r} must be a mapping with a url")
        if level != "repo":
            continue
        for problem in tracked_problems(options):
            raise InvalidFileError(
                f"{path}: remote {name!r}: {problem}",
                hint="remove it from the tracked .repro/config.yaml; set it in "
                ".repro/config.local.yaml (`repro remote add|modify --local`) or the global config",
            )


def tracked_protocol(url: str) -> str:
    """The protocol of a remote URL as the tracked-config check sees it (`file` for a path).

    Never looser than fsspec: `PROTO://` gives PROTO as written (case kept), and a URL with a
    scheme but no `//` (`dir:/x`, `data:…`) gives that scheme, which no allowlist holds.
    """
    head, sep, _ = url.partition("://")
    if sep and len(head) > 1:
        return head
    scheme = urlsplit(url).scheme
    return scheme if len(scheme) > 1 else "file"  # one letter: a Windows drive


def tracked_problems(spec: Mapping[str, object]) -> Iterator[str]:
    """Why a remote definition may not be in the tracked config (nothing when it may)."""
    url = spec.get("url")
    if not isinstance(url, str):
        yield "a remote in the tracked config needs a url (it is defined there as a whole)"
        return
    if "::" in url:
        # a chain (simplecache::, filecache::…) writes caches wherever its options say
        yield "a chained URL (with '::') may not be set in the tracked config"
        return
    protocol = tracked_protocol(url)
    allowed = TRACKED_REMOTES.get(protocol)
    if allowed is None:
        # the text before '://' is shown only when it looks like a protocol (never userinfo)
        shown = repr(protocol) if _SCHEME.fullmatch(protocol) else "of its url"
        yield (
            f"protocol {shown} may not be set in the tracked config "
            f"(allowed there: {', '.join(TRACKED_REMOTES)})"
        )
        return
    if protocol != "file" and not url.startswith(f"{protocol}://"):
        yield f"its url is neither a folder nor {protocol}://…"
        return
    options = TRACKED_COMMON | allowed
    for key, value in spec.items():
        kind = options.get(key) if isinstance(key, str) else None  # YAML keys may be numbers
        if kind is None:
            yield (
                f"option {key!r} may not be set in the tracked config for {protocol!r} "
                f"(allowed there: {', '.join(options)})"
            )
        elif type(value) is not kind:
            yield f"option {key!r} must be a {kind.__name__}"
        elif key == "jobs" and not 1 <= cast(int, value) <= MAX_JOBS:
            yield f"option 'jobs' must be from 1 to {MAX_JOBS}"


def load(repro_dir: Path) -> Config:
    """Merge every level for the project whose `.repro/` is `repro_dir`.

    Sections merge key by key. A remote merges as a whole: an entry with a `url` replaces
    the definition of the levels below it (a local `origin` keeps none of the tracked
    options); an entry without one adds its options (`--local` credentials) to it.
    """
    merged: dict[str, dict[str, Any]] = {}
    origin: dict[str, Path] = {}
    sources: dict[str, dict[str, Source]] = {}
    for level, path in paths_for(repro_dir).items():
        for section, values in read_level(path, level).items():
            if section == "version":
                continue
            target = merged.setdefault(section, {})
            for key, value in values.items():
                if section == "remotes":
                    if "url" in value:
                        target[key], sources[key] = {}, {}
                    target.setdefault(key, {}).update(value)
                    sources.setdefault(key, {}).update(dict.fromkeys(value, Source(level, path)))
                else:
                    target[key] = value
                origin[f"{section}.{key}"] = path
    core = merged.get("core", {})
    cache = merged.get("cache", {})
    link_types = DEFAULT_LINK_TYPES
    if "type" in cache:
        link_types = parse_link_types(cache["type"], str(origin["cache.type"]))
    return Config(
        autostage=core.get("autostage", True),
        no_scm=core.get("no_scm", False),
        link_types=link_types,
        cache_dir=cache.get("dir"),
        default_remote=core.get("remote"),
        remotes=merged.get("remotes", {}),
        remote_sources=sources,
    )


def initial_bytes(*, no_scm: bool) -> bytes:
    """The tracked config `repro init` writes."""
    lines = [f"version: {VERSION}", "core:", "  autostage: true"]
    if no_scm:
        lines.append("  no_scm: true")
    return ("\n".join(lines) + "\n").encode()


def read_file(path: Path) -> dict[str, Any]:
    """A config file's raw mapping (empty when missing), for editing by `repro remote`."""
    try:
        raw = yamlio.load(_read(path, follow=False), where=str(path))
    except FileNotFoundError:
        return {}
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidFileError(f"{path}: a config file is a mapping of sections")
    return raw


def write_file(
    path: Path, data: dict[str, Any], *, private: bool, tmp_dir: Path | None = None
) -> None:
    """Write a config file atomically, `version` first; private files are mode 0600."""
    body = {"version": VERSION, **{k: v for k, v in data.items() if k != "version" and v != {}}}
    atomic.write_bytes(path, yamlio.dump(body), tmp_dir=tmp_dir, mode=0o600 if private else 0o644)
    if private:
        os.chmod(path, 0o600)
