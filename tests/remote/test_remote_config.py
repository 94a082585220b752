"""`repro remote add|list|remove|default|modify` (DESIGN §2–3, docs/remotes.md).

Remotes live in the tracked `.repro/config.yaml`, or with `--local` in the untracked,
mode-0600 `.repro/config.local.yaml`. A local entry with a url replaces the tracked remote as
a whole; one without adds its options. The tracked config takes only the protocols and options
of its allowlist. Every error is exit 2 with one `error:` line, and a refused command changes
no config file.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.builders import git
from tests.conftest import Cli, Result

SENTINEL = "SENTINEL-remote-config-5d1e"


def config(repo: Path, local: bool = False) -> dict[str, Any]:
    """The parsed tracked (or local) config file; {} when it does not exist."""
    path = repo / ".repro" / ("config.local.yaml" if local else "config.yaml")
    if not path.exists():
        return {}
    loaded: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    return loaded


def listing(cli: Cli) -> dict[str, dict[str, Any]]:
    """`remote list --json` as {name: entry}."""
    doc = json.loads(cli("remote", "list", "--json").stdout)
    assert doc["version"] == 1
    return {r["name"]: r for r in doc["remotes"]}


def invoke(*args: str) -> Result:
    """Run `repro ARGS` in-process whatever its exit code (the `cli` fixture insists on one)."""
    from reprocli.cli.app import app

    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert "Traceback" not in result.stderr, result.stderr
    return Result(result.exit_code, result.stdout, result.stderr)


def config_bytes(repo: Path) -> tuple[bytes | None, bytes | None]:
    """The raw bytes of both config files (None when absent)."""
    files = [repo / ".repro" / "config.yaml", repo / ".repro" / "config.local.yaml"]
    return tuple(p.read_bytes() if p.exists() else None for p in files)  # type: ignore[return-value]


def test_add_list_and_remove_round_trip(repo: Path, cli: Cli, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    assert cli("remote", "list").stdout == ""
    assert listing(cli) == {}

    cli("remote", "add", "storage", "s3://bucket/project", "-o", "region=eu-west-1",
        "-o", "requester_pays=true", "-o", "jobs=8")  # fmt: skip
    cli("remote", "add", "backup", store)
    remotes = listing(cli)
    assert list(remotes) == ["backup", "storage"]  # sorted by name
    tracked = {"level": "repo", "file": ".repro/config.yaml"}
    assert remotes["backup"] == {
        "name": "backup",
        "url": store,
        "default": False,
        "options": {},
        "sources": {"url": tracked},
    }
    assert remotes["storage"]["url"] == "s3://bucket/project"
    assert remotes["storage"]["options"] == {
        "jobs": 8,
        "region": "eu-west-1",
        "requester_pays": True,
    }
    assert remotes["storage"]["sources"] == dict.fromkeys(
        ["url", "jobs", "region", "requester_pays"], tracked
    )
    text = cli("remote", "list").stdout.splitlines()
    assert text[0] == f"backup\t{store}\tfrom .repro/config.yaml"
    assert text[1].startswith("storage\ts3://bucket/project\t") and "region=eu-west-1" in text[1]
    assert config(repo)["remotes"]["storage"] == {
        "url": "s3://bucket/project",
        "region": "eu-west-1",
        "requester_pays": True,
        "jobs": 8,
    }

    cli("remote", "remove", "storage")
    assert list(listing(cli)) == ["backup"]
    assert "storage" not in config(repo)["remotes"]
    cli("remote", "remove", "backup")
    assert listing(cli) == {}


def test_add_d_makes_the_default_which_default_shows_changes_and_unsets(
    repo: Path, cli: Cli, tmp_path: Path
) -> None:
    cli("remote", "add", "-d", "first", str(tmp_path / "a"))
    assert cli("remote", "default").stdout == "first\n"
    assert config(repo)["core"]["remote"] == "first"
    assert "(default)" in cli("remote", "list").stdout

    cli("remote", "add", "second", str(tmp_path / "b"))
    assert cli("remote", "default").stdout == "first\n"
    cli("remote", "default", "second")
    assert cli("remote", "default").stdout == "second\n"
    assert {n: r["default"] for n, r in listing(cli).items()} == {"first": False, "second": True}

    cli("remote", "default", "--unset")
    result = cli("remote", "default", expect=2)
    assert result.stderr.startswith("error: no default remote") and "hint: " in result.stderr
    assert "remote" not in config(repo)["core"]
    assert not any(r["default"] for r in listing(cli).values())


def test_removing_the_default_remote_leaves_no_default(
    repo: Path, cli: Cli, tmp_path: Path
) -> None:
    cli("remote", "add", "-d", "origin", str(tmp_path / "a"))
    cli("remote", "remove", "origin")
    assert "remote" not in config(repo).get("core", {})
    cli("remote", "default", expect=2)
    cli("remote", "add", "origin", str(tmp_path / "a"))  # the name is free again
    cli("remote", "default", expect=2)


def test_local_remotes_live_in_the_private_untracked_config(
    repo: Path, cli: Cli, tmp_path: Path
) -> None:
    tracked_before = (repo / ".repro/config.yaml").read_bytes()
    cli("remote", "add", "--local", "-d", "mine", str(tmp_path / "mine"), "-o", "profile=dev")

    assert (repo / ".repro/config.yaml").read_bytes() == tracked_before
    local = repo / ".repro/config.local.yaml"
    assert stat.S_IMODE(os.stat(local).st_mode) == 0o600
    assert config(repo, local=True)["remotes"]["mine"] == {
        "url": str(tmp_path / "mine"),
        "profile": "dev",
    }
    assert config(repo, local=True)["core"]["remote"] == "mine"
    git(repo, "check-ignore", "-q", ".repro/config.local.yaml")
    assert git(repo, "status", "--porcelain") == ""
    assert listing(cli)["mine"]["default"] is True
    assert cli("remote", "default").stdout == "mine\n"

    # A tracked remote can get per-machine options; the two files merge.
    cli("remote", "add", "-d", "team", str(tmp_path / "team"))
    cli("remote", "modify", "--local", "team", "region", "eu-central-1")
    assert config(repo)["remotes"]["team"] == {"url": str(tmp_path / "team")}
    assert listing(cli)["team"]["options"] == {"region": "eu-central-1"}
    assert cli("remote", "default").stdout == "mine\n"  # local wins over tracked
    cli("remote", "default", "--local", "team")
    assert cli("remote", "default").stdout == "team\n"

    cli("remote", "remove", "team")  # from both files
    assert "team" not in config(repo).get("remotes", {})
    assert "team" not in config(repo, local=True).get("remotes", {})
    assert list(listing(cli)) == ["mine"]


def test_modify_sets_changes_and_unsets_options(repo: Path, cli: Cli, tmp_path: Path) -> None:
    cli("remote", "add", "origin", "s3://bucket/a")
    cli("remote", "modify", "origin", "region", "eu-west-1")
    cli("remote", "modify", "origin", "jobs", "4")
    assert listing(cli)["origin"]["options"] == {"jobs": 4, "region": "eu-west-1"}

    cli("remote", "modify", "origin", "region", "us-east-2")
    cli("remote", "modify", "origin", "url", "s3a://bucket/elsewhere")
    remote = listing(cli)["origin"]
    assert remote["url"] == "s3a://bucket/elsewhere"
    assert remote["options"] == {"jobs": 4, "region": "us-east-2"}

    # a folder takes no region in the tracked config: refused before anything is written
    before = config_bytes(repo)
    result = cli("remote", "modify", "origin", "url", str(tmp_path / "a"), expect=2)
    assert "'region'" in result.stderr and "--local" in result.stderr
    assert config_bytes(repo) == before

    cli("remote", "modify", "origin", "region", "--unset")
    assert listing(cli)["origin"]["options"] == {"jobs": 4}
    assert config(repo)["remotes"]["origin"] == {"url": "s3a://bucket/elsewhere", "jobs": 4}
    cli("remote", "modify", "origin", "url", str(tmp_path / "a"))
    assert config(repo)["remotes"]["origin"] == {"url": str(tmp_path / "a"), "jobs": 4}


def test_modify_unset_of_an_option_kept_in_the_local_config_takes_effect_or_is_refused(
    repo: Path, cli: Cli, tmp_path: Path
) -> None:
    cli("remote", "add", "origin", str(tmp_path / "a"))
    cli("remote", "modify", "--local", "origin", "secret_access_key", SENTINEL)
    assert listing(cli)["origin"]["options"] == {"secret_access_key": "***"}

    result = invoke("remote", "modify", "origin", "secret_access_key", "--unset")
    if result.exit_code == 0:  # it said "unset": the credential must really be gone
        assert listing(cli)["origin"]["options"] == {}, result.stderr
        assert SENTINEL not in (repo / ".repro/config.local.yaml").read_text()
    else:  # or it refuses, pointing at --local
        assert result.exit_code == 2 and "--local" in result.stderr, result


def test_modify_without_local_never_writes_a_remote_without_url_to_the_tracked_config(
    repo: Path, cli: Cli, tmp_path: Path
) -> None:
    cli("remote", "add", "--local", "mine", str(tmp_path / "mine"))
    result = invoke("remote", "modify", "mine", "region", "eu-west-1")
    tracked = config(repo).get("remotes", {})
    for name, spec in tracked.items():
        assert "url" in spec, f"tracked config got remote {name!r} without a url: {spec} ({result})"
    assert result.exit_code in (0, 2)


def test_a_url_password_in_the_local_config_is_redacted_when_listed(repo: Path, cli: Cli) -> None:
    cli("remote", "add", "--local", "web", f"https://user:{SENTINEL}@example.com/store")
    assert SENTINEL in (repo / ".repro/config.local.yaml").read_text()
    text = cli("remote", "list").stdout
    assert "https://user:***@example.com/store" in text
    assert listing(cli)["web"]["url"] == "https://user:***@example.com/store"
    assert SENTINEL not in text + cli("remote", "list", "--json").stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("remote", "add", "origin", "/elsewhere"), "already exists"),
        (("remote", "add", "--local", "origin", "/elsewhere"), "already exists"),
        (("remote", "add", "bad name", "/x"), "bad name"),
        (("remote", "add", "a/b", "/x"), "a/b"),
        (("remote", "add", ".hidden", "/x"), ".hidden"),
        (("remote", "add", "other", "/x", "-o", "novalue"), "KEY=VALUE"),
        (("remote", "add", "other", "/x", "-o", "=value"), "KEY=VALUE"),
        (("remote", "add", "other", "nosuchproto://x/y"), "nosuchproto"),
        (("remote", "modify", "origin", "region"), "VALUE"),
        (("remote", "modify", "origin", "region", "x", "--unset"), "VALUE"),
        (("remote", "modify", "origin", "bad-key!", "x"), "bad-key!"),
        (("remote", "modify", "origin", "url", "nosuchproto://x/y"), "nosuchproto"),
        (("remote", "modify", "nope", "region", "x"), "'nope'"),
        (("remote", "remove", "nope"), "'nope'"),
        (("remote", "default", "nope"), "'nope'"),
    ],
    ids=[
        "duplicate",
        "duplicate-local",
        "space-in-name",
        "slash-in-name",
        "dot-first",
        "option-without-equals",
        "option-without-key",
        "unknown-protocol",
        "modify-missing-value",
        "modify-value-and-unset",
        "modify-bad-key",
        "modify-unknown-protocol",
        "modify-unknown-remote",
        "remove-unknown-remote",
        "default-unknown-remote",
    ],
)
def test_a_bad_remote_command_is_exit_2_and_changes_no_config(
    repo: Path, args: tuple[str, ...], needle: str, cli: Cli
) -> None:
    cli("remote", "add", "-d", "origin", "/somewhere")
    before = config_bytes(repo)

    result = cli(*args, expect=2)
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert all(line.startswith("hint: ") for line in lines[1:]), result.stderr
    assert config_bytes(repo) == before
    assert list(listing(cli)) == ["origin"]


def test_remote_list_and_doctor_say_which_file_set_each_option(
    repo: Path, cli: Cli, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    cli("remote", "add", "-d", "origin", str(store))
    cli("remote", "modify", "--local", "origin", "jobs", "3")
    global_file = Path(os.environ["REPRO_GLOBAL_CONFIG_DIR"]) / "config.yaml"
    global_file.parent.mkdir(parents=True)
    global_file.write_text(f"remotes:\n  shared:\n    url: {tmp_path / 'shared'}\n")

    remotes = listing(cli)
    assert remotes["origin"]["sources"] == {
        "url": {"level": "repo", "file": ".repro/config.yaml"},
        "jobs": {"level": "local", "file": ".repro/config.local.yaml"},
    }
    assert remotes["shared"]["sources"] == {"url": {"level": "global", "file": str(global_file)}}
    assert cli("remote", "list").stdout.splitlines() == [
        f"origin\t{store}\t(default)\tjobs=3\t"
        "url from .repro/config.yaml; jobs from .repro/config.local.yaml",
        f"shared\t{tmp_path / 'shared'}\tfrom {global_file}",
    ]
    doctor = cli("doctor").stdout
    assert (
        f"remote     origin (default) {store}: reachable "
        "(url from .repro/config.yaml; jobs from .repro/config.local.yaml)"
    ) in doctor
    assert f"remote     shared {tmp_path / 'shared'}: reachable (from {global_file})" in doctor


def test_a_local_url_replaces_the_tracked_remote_as_a_whole(repo: Path, cli: Cli) -> None:
    cli("remote", "add", "-d", "origin", "s3://team/store",
        "-o", "endpoint_url=http://team.example:9000", "-o", "region=eu-west-1")  # fmt: skip
    cli("remote", "modify", "--local", "origin", "access_key_id", SENTINEL)  # no url: it adds
    assert listing(cli)["origin"]["options"] == {
        "access_key_id": "***",
        "endpoint_url": "http://team.example:9000",
        "region": "eu-west-1",
    }

    cli("remote", "modify", "--local", "origin", "url", "s3://mine/store")
    remote = listing(cli)["origin"]
    assert remote["url"] == "s3://mine/store"
    assert remote["options"] == {"access_key_id": "***"}  # nothing of the tracked remote is left
    assert {k: s["level"] for k, s in remote["sources"].items()} == {
        "url": "local",
        "access_key_id": "local",
    }
    from reprocli.project import Project

    assert Project.discover(repo).config.remotes["origin"] == {
        "access_key_id": SENTINEL,
        "url": "s3://mine/store",
    }

    # dropping the local url brings the tracked definition back, local additions kept
    cli("remote", "modify", "--local", "--unset", "origin", "url")
    assert listing(cli)["origin"]["url"] == "s3://team/store"
    assert set(listing(cli)["origin"]["options"]) == {"access_key_id", "endpoint_url", "region"}
    assert config(repo)["remotes"]["origin"]["url"] == "s3://team/store"


def test_a_tracked_remote_replaces_a_global_one_and_gets_none_of_its_credentials(
    repo: Path, cli: Cli
) -> None:
    global_file = Path(os.environ["REPRO_GLOBAL_CONFIG_DIR"]) / "config.yaml"
    global_file.parent.mkdir(parents=True)
    global_file.write_text(
        "remotes:\n  origin:\n    url: s3://mine/store\n"
        f"    access_key_id: AKIAMINE\n    secret_access_key: {SENTINEL}\n"
    )
    assert listing(cli)["origin"]["options"] == {"access_key_id": "***", "secret_access_key": "***"}
    cli("remote", "add", "--local", "origin", "/x", expect=2)  # the hint says how instead
    cli("remote", "default", "origin")
    text = "remotes:\n  origin:\n    url: s3://theirs/store\n    endpoint_url: http://127.0.0.1:9\n"
    with (repo / ".repro" / "config.yaml").open("a") as handle:
        handle.write(text)
    from reprocli.project import Project

    assert Project.discover(repo).config.remotes["origin"] == {
        "url": "s3://theirs/store",
        "endpoint_url": "http://127.0.0.1:9",
    }


def test_the_url_of_a_tracked_remote_is_not_unset(repo: Path, cli: Cli, tmp_path: Path) -> None:
    cli("remote", "add", "origin", str(tmp_path / "a"))
    before = config_bytes(repo)
    result = cli("remote", "modify", "--unset", "origin", "url", expect=2)
    assert "repro remote remove origin" in result.stderr and "--local" in result.stderr
    assert config_bytes(repo) == before


@pytest.mark.parametrize(
    ("url", "options", "needle"),
    [
        ("simplecache://store", (), "'simplecache'"),
        ("dir://store", (), "'dir'"),
        ("zip://store", (), "'zip'"),
        ("reference://store", (), "'reference'"),
        ("local://store", (), "'local'"),
        ("s3://b/p", ("-o", "profile=prod"), "'profile'"),
        ("s3://b/p", ("-o", "client_kwargs=x"), "'client_kwargs'"),
        ("s3://b/p", ("-o", "target_protocol=zip"), "'target_protocol'"),
        ("s3://b/p", ("-o", "jobs=0"), "'jobs'"),
        ("s3://b/p", ("-o", "region=1"), "'region'"),
        ("ssh://host/p", ("-o", "proxy_command=sh"), "'proxy_command'"),
        ("ssh://host/p", ("-o", "key_filename=/k"), "'key_filename'"),
        ("ssh://host/p", ("-o", "known_hosts=/k"), "'known_hosts'"),
        ("gs://b/p", ("-o", "endpoint_url=http://x"), "'endpoint_url'"),
        ("https://h/p", ("-o", "headers=x"), "'headers'"),
        ("memory://p", ("-o", "cache_storage=/tmp"), "'cache_storage'"),
        ("/folder", ("-o", "region=eu"), "'region'"),
    ],
)
def test_what_the_tracked_config_may_not_hold_is_refused_without_local(
    repo: Path, cli: Cli, url: str, options: tuple[str, ...], needle: str
) -> None:
    key, _, value = options[1].partition("=") if options else ("url", "", url)
    cli("remote", "add", "-d", "origin", "s3://b/p" if key == "url" else url)
    before = config_bytes(repo)
    added = cli("remote", "add", "x", url, *options, expect=2)
    modified = cli("remote", "modify", "origin", key, value, expect=2)
    for result in (added, modified):
        lines = result.stderr.strip().splitlines()
        assert lines[0].startswith("error: ") and needle in lines[0], result.stderr
        assert lines[1:] == ["hint: add --local to keep it in .repro/config.local.yaml"]
    assert config_bytes(repo) == before

    cli("remote", "add", "--local", "x", url, *options)  # the local config may hold it
    assert listing(cli)["x"]["url"] == url
    assert {s["level"] for s in listing(cli)["x"]["sources"].values()} == {"local"}
