"""`repro remote …`: configure remotes. Parse, call one operation, render."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reprocli.cli import render
from reprocli.cli.app import Json, Quiet, Verbose, app, options

if TYPE_CHECKING:
    from reprocli.core.config import Source
    from reprocli.operations.remote import RemoteInfo

remote_app = typer.Typer(
    help="Manage remotes: where pushed data lives (a folder, S3, any fsspec store).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(remote_app, name="remote", rich_help_panel="Remotes")

Local = Annotated[
    bool,
    typer.Option("--local", help="Write to the untracked .repro/config.local.yaml (credentials)."),
]


@remote_app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the remote.")],
    url: Annotated[
        str, typer.Argument(help="A folder, file://, s3://bucket/prefix, or any fsspec URL.")
    ],
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="Storage option KEY=VALUE (repeatable)."),
    ] = None,
    default: Annotated[
        bool, typer.Option("--default", "-d", help="Make it the default remote.")
    ] = False,
    local: Local = False,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Add a remote."""
    from reprocli.operations import remote as ops
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet, verbose=verbose)
    ops.add(
        Project.discover(), name, url, ops.parse_options(option or []), default=default, local=local
    )
    render.note(opts, f"added remote {name}" + (" (default)" if default else ""))


def sources_text(sources: Mapping[str, Source]) -> str:
    """Where a remote's options were set: `from FILE`, or `KEYS from FILE; KEYS from FILE`."""
    by_file: dict[str, list[str]] = {}
    for key, source in sources.items():
        by_file.setdefault(str(source.path), []).append(key)
    if len(by_file) == 1:
        return f"from {next(iter(by_file))}"
    return "; ".join(f"{', '.join(keys)} from {file}" for file, keys in by_file.items())


def remote_payload(r: RemoteInfo) -> dict[str, Any]:
    """One remote of `remote list --json`."""
    return {
        "name": r.name,
        "url": r.url,
        "default": r.default,
        "options": r.options,
        "sources": {k: {"level": s.level, "file": str(s.path)} for k, s in r.sources.items()},
    }


@remote_app.command("list")
def list_(ctx: typer.Context, json: Json = False) -> None:
    """List remotes (credentials shown as ***) and the config files that set them."""
    from reprocli.operations import remote as ops
    from reprocli.project import Project

    opts = options(ctx, json=json)
    remotes = ops.listing(Project.discover())
    if opts.json:
        render.emit_json({"remotes": [remote_payload(r) for r in remotes]})
        return
    line = render.one_line  # a field may not hold the tab that separates them
    for r in remotes:
        extra = " ".join(line(f"{k}={v}") for k, v in r.options.items())
        render.out(
            f"{r.name}\t{line(r.url)}"
            + ("\t(default)" if r.default else "")
            + (f"\t{extra}" if extra else "")
            + (f"\t{line(sources_text(r.sources))}" if r.sources else "")
        )


@remote_app.command("remove")
def remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the remote.")],
    quiet: Quiet = False,
) -> None:
    """Remove a remote."""
    from reprocli.operations import remote as ops
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet)
    ops.remove(Project.discover(), name)
    render.note(opts, f"removed remote {name}")


@remote_app.command("default")
def default(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Name of the remote.")] = None,
    unset: Annotated[bool, typer.Option("--unset", help="Have no default remote.")] = False,
    local: Local = False,
    quiet: Quiet = False,
) -> None:
    """Show, set or unset the default remote."""
    from reprocli.errors import UsageError
    from reprocli.operations import remote as ops
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet)
    project = Project.discover()
    if name is None and not unset:
        current = project.config.default_remote
        if current is None:
            raise UsageError("no default remote", hint="set one with `repro remote default NAME`")
        render.out(current)
        return
    ops.set_default(project, None if unset else name, local=local)
    render.note(opts, "unset the default remote" if unset else f"default remote: {name}")


@remote_app.command("modify")
def modify(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the remote.")],
    key: Annotated[
        str, typer.Argument(help="Option to set (url, endpoint_url, region, profile, …).")
    ],
    value: Annotated[str | None, typer.Argument(help="New value.")] = None,
    unset: Annotated[bool, typer.Option("--unset", help="Remove the option.")] = False,
    local: Local = False,
    quiet: Quiet = False,
) -> None:
    """Set or unset one option of a remote."""
    from reprocli.errors import UsageError
    from reprocli.operations import remote as ops
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet)
    if (value is None) != unset:
        raise UsageError("give either VALUE or --unset")
    ops.modify(Project.discover(), name, key, None if unset else value, local=local)
    render.note(
        opts,
        f"{'unset' if unset else 'set'} {key} of remote {name}" + (" (local)" if local else ""),
    )
