"""`repro remote add|list|remove|default|modify`: remotes in the tracked or the local config.

Credentials never go into the tracked `.repro/config.yaml` (DESIGN §4 invariant 6): they are
refused there with a hint to use `--local` (the untracked, mode-0600 config) or the environment.
Nor does any protocol or option the tracked config may not hold (`config.tracked_problems`):
refused up front, so that repro never writes a tracked config it would then refuse to read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from reprocli.core import config as configmod
from reprocli.core.remotes import (
    REPRO_OPTIONS,
    SECRET_OPTIONS,
    has_userinfo_secret,
    is_chained,
    protocol_of,
    redact,
)
from reprocli.errors import RemoteError, UsageError
from reprocli.project import Project

NAME = configmod.REMOTE_NAME


@dataclass(frozen=True, slots=True)
class RemoteInfo:
    """A configured remote as shown to users: secrets reduced to `***`."""

    name: str
    url: str
    default: bool
    options: dict[str, Any]
    sources: dict[str, configmod.Source]
    """Where each option (`url` first) was set; files inside the repository are relative."""


def parse_value(text: str) -> Any:
    """An option value from the command line: true/false and whole numbers are typed."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    return text


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """`-o KEY=VALUE` arguments as a mapping."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"-o {pair}: expected KEY=VALUE")
        options[key.strip()] = parse_value(value)
    return options


def _refuse_secrets(key: str, value: Any, *, local: bool) -> None:
    """Credentials and chained URLs belong in the untracked config only."""
    if local:
        return
    if key == "url" and isinstance(value, str) and is_chained(value):
        raise UsageError(
            f"{redact(value)}: a chained URL (with '::') may not be written to the tracked "
            ".repro/config.yaml: its caches go wherever its options say",
            hint="add --local to keep it in .repro/config.local.yaml",
        )
    if key in SECRET_OPTIONS or (
        key == "url" and isinstance(value, str) and has_userinfo_secret(value)
    ):
        raise UsageError(
            f"{key} is a credential: it may not be written to the tracked .repro/config.yaml",
            hint="add --local to keep it in .repro/config.local.yaml, or use the environment "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE…)",
        )


def _refuse_tracked(name: str, spec: dict[str, Any], *, local: bool) -> None:
    """A remote written to the tracked config must be one the tracked config may hold."""
    if local:
        return
    for problem in configmod.tracked_problems(spec):
        raise UsageError(
            f"remote {name!r}: {problem}",
            hint="add --local to keep it in .repro/config.local.yaml",
        )


def _level(project: Project, local: bool) -> tuple[configmod.Level, Any]:
    paths = configmod.paths_for(project.repro_dir)
    return ("local", paths["local"]) if local else ("repo", paths["repo"])


def _edit(project: Project, local: bool, change: Any) -> None:
    level, path = _level(project, local)
    data = configmod.read_file(path)
    change(data)
    configmod.check(data, path, level)  # never write a file that would not read back valid
    project.tmp_dir.mkdir(parents=True, exist_ok=True)
    configmod.write_file(path, data, private=local, tmp_dir=project.tmp_dir)
    if not local and project.git is not None and project.config.autostage:
        project.git.add([str(path.relative_to(project.root))])


def add(
    project: Project,
    name: str,
    url: str,
    options: dict[str, Any],
    *,
    default: bool = False,
    local: bool = False,
) -> None:
    """Configure a new remote (and make it the default with `default`)."""
    if not NAME.fullmatch(name):
        raise UsageError(f"{name!r}: a remote name is letters, digits, '.', '_' and '-'")
    if name in project.config.remotes:
        raise UsageError(
            f"remote {name!r} already exists",
            hint=f"change it with `repro remote modify {name} KEY VALUE`"
            if not local
            else f"define your own with `repro remote modify --local {name} url URL`: "
            "it replaces the other definition as a whole",
        )
    for key, value in {"url": url, **options}.items():
        _refuse_secrets(key, value, local=local)
    _check_protocol(url)
    _refuse_tracked(name, {"url": url, **options}, local=local)

    def change(data: dict[str, Any]) -> None:
        data.setdefault("remotes", {})[name] = {"url": url, **options}
        if default:
            data.setdefault("core", {})["remote"] = name

    with project.locked():
        _edit(project, local, change)


def _check_protocol(url: str) -> None:
    protocol = protocol_of(url)
    if protocol == "file":
        return
    from fsspec.registry import known_implementations, registry  # noqa: PLC0415

    if protocol not in known_implementations and protocol not in registry:
        raise UsageError(f"{redact(url)}: unknown storage protocol {protocol!r}")


def listing(project: Project) -> list[RemoteInfo]:
    """Every configured remote, secrets redacted, with where each option was set."""
    return [
        RemoteInfo(
            name,
            redact(str(spec.get("url", ""))),
            name == project.config.default_remote,
            {
                k: ("***" if k in SECRET_OPTIONS else v)
                for k, v in sorted(spec.items())
                if k != "url"
            },
            project.config.sources_of(name, project.root),
        )
        for name, spec in sorted(project.config.remotes.items())
    ]


def remove(project: Project, name: str) -> None:
    """Delete a remote from every config file that defines it."""
    _require(project, name)

    def change(data: dict[str, Any]) -> None:
        data.get("remotes", {}).pop(name, None)
        if data.get("core", {}).get("remote") == name:
            del data["core"]["remote"]

    with project.locked():
        for local in (False, True):
            _edit(project, local, change)


def set_default(project: Project, name: str | None, *, local: bool = False) -> None:
    """Make `name` the default remote (None unsets it)."""
    if name is not None:
        _require(project, name)

    def change(data: dict[str, Any]) -> None:
        core = data.setdefault("core", {})
        if name is None:
            core.pop("remote", None)
        else:
            core["remote"] = name

    with project.locked():
        _edit(project, local, change)


def modify(
    project: Project, name: str, key: str, value: str | None, *, local: bool = False
) -> None:
    """Set (or, with value None, unset) one option of a remote."""
    _require(project, name)
    if key in REPRO_OPTIONS - {"url", "jobs"} or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise UsageError(f"{key!r}: not a valid option name")
    parsed = None if value is None else parse_value(value)
    tracked = configmod.read_file(configmod.paths_for(project.repro_dir)["repo"])
    tracked_spec = tracked.get("remotes", {}).get(name)
    if parsed is not None:
        _refuse_secrets(key, parsed, local=local)
        if key == "url":
            _check_protocol(str(parsed))
        if not local:
            if not isinstance(tracked_spec, dict):
                raise UsageError(
                    f"remote {name!r} is not defined in the tracked .repro/config.yaml",
                    hint="add --local to change it in .repro/config.local.yaml",
                )
            _refuse_tracked(name, {**tracked_spec, key: parsed}, local=False)
    elif key == "url" and not local and isinstance(tracked_spec, dict) and "url" in tracked_spec:
        raise UsageError(
            f"remote {name!r}: the url of a remote in the tracked config cannot be unset",
            hint=f"`repro remote remove {name}` removes the remote; add --local to unset only "
            "a local redefinition",
        )

    def change(data: dict[str, Any]) -> None:
        remotes = data.get("remotes", {})
        if parsed is None:
            spec = remotes.get(name, {})
            spec.pop(key, None)
            if name in remotes and not spec:
                remotes.pop(name)
        else:
            data.setdefault("remotes", {}).setdefault(name, {})[key] = parsed

    with project.locked():
        if parsed is None and not local:  # unset wherever it is set
            for level_local in (False, True):
                _edit(project, level_local, change)
        else:
            _edit(project, local, change)


def _require(project: Project, name: str) -> None:
    if name not in project.config.remotes:
        known = ", ".join(sorted(project.config.remotes)) or "none configured"
        raise RemoteError(f"no remote named {name!r} (known: {known})")
