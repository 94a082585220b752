"""Data commands: init, add, status, commit, checkout, version. Parse, call one operation, render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer import _click as click
from typer.core import TyperCommand

from reprocli.cli import render
from reprocli.cli.app import Json, Quiet, Verbose, app, options

Paths = Annotated[
    list[Path] | None, typer.Argument(help="Tracked paths (default: all).", show_default=False)
]


@app.command(rich_help_panel="Data")
def init(
    ctx: typer.Context,
    no_scm: Annotated[bool, typer.Option("--no-scm", help="Use repro without Git.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Create .repro/ at the root of the Git repository."""
    from reprocli.operations.init import init as run_init

    opts = options(ctx, quiet=quiet, verbose=verbose)
    result = run_init(Path.cwd(), no_scm=no_scm)
    if result.created:
        render.note(opts, f"initialised repro in {result.root / '.repro'}")
        render.note(opts, "next: repro add DATA, then git commit")
    else:
        render.note(opts, f"repro is already initialised in {result.root / '.repro'}")


@app.command(rich_help_panel="Data")
def add(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files or directories to track.")],
    quiet: Quiet = False,
    verbose: Verbose = 0,
    json: Json = False,
) -> None:
    """Track files or directories: cache their content and write PATH.repro pointers."""
    from reprocli.operations.add import add as run_add
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet, verbose=verbose, json=json)
    project = Project.discover()
    with render.progress(opts) as progress:
        added = run_add(project, paths, progress=progress)
    _print_recorded(opts, added, verb="added")
    if not opts.json and added and project.git is not None:
        staged = " (already staged)" if project.config.autostage else ""
        render.note(opts, f"next: git add and commit the .repro pointers and .gitignore{staged}")


@app.command(rich_help_panel="Data")
def commit(
    ctx: typer.Context,
    paths: Paths = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
    json: Json = False,
) -> None:
    """Record the current content of tracked data in the cache and its pointers."""
    from reprocli.operations.commit import commit as run_commit
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet, verbose=verbose, json=json)
    with render.progress(opts) as progress:
        recorded = run_commit(Project.discover(), paths or [], progress=progress)
    _print_recorded(opts, [r for r in recorded if r.changed or opts.json], verb="recorded")
    if not opts.json and not any(r.changed for r in recorded):
        render.note(opts, "nothing to record: tracked data matches its pointers")


def _print_recorded(opts: render.Options, items: list, *, verb: str) -> None:  # type: ignore[type-arg]
    if opts.json:
        render.emit_json(
            {
                "data": [
                    {
                        "path": r.path,
                        "oid": r.oid,
                        "size": r.size,
                        "nfiles": r.nfiles,
                        "changed": r.changed,
                    }
                    for r in items
                ]
            }
        )
        return
    if opts.quiet:
        return
    for r in items:
        files = f"{r.nfiles} files, " if r.nfiles is not None else ""
        render.out(f"{verb} {r.path} ({files}{render.size(r.size)})")


@app.command(rich_help_panel="Data")
def status(
    ctx: typer.Context,
    paths: Paths = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when anything is out of date.")
    ] = False,
    remote: Annotated[
        bool,
        typer.Option("--remote", help="Compare with a remote instead: what is not pushed yet."),
    ] = False,
    remote_name: Annotated[
        str | None,
        typer.Option("-r", help="The remote for --remote (default: the default remote)."),
    ] = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
    json: Json = False,
) -> None:
    """Show tracked data that differs from its pointers; --check exits 1 if any does.

    With --remote, compare with the remote instead (what is not pushed yet): the check a CI
    job runs before it pulls.
    """
    from reprocli.operations.status import remote_status
    from reprocli.operations.status import status as run_status
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet, verbose=verbose, json=json)
    project = Project.discover()
    if remote or remote_name:
        pushed = remote_status(project, paths or [], remote=remote_name)
        if opts.json:
            render.emit_json(
                {
                    "clean": pushed.clean,
                    "remote": {
                        "name": pushed.remote,
                        "missing": [
                            {"path": g.path, "missing": g.missing, "total": g.total}
                            for g in pushed.gaps
                        ],
                    },
                }
            )
        elif not opts.quiet:
            name = render.one_line(pushed.remote)  # the tracked config's: a stranger's name
            for gap in pushed.gaps:
                render.out(f"{gap.path}: {gap.missing} of {gap.total} objects not on remote {name}")
            if pushed.clean:
                render.out(f"remote {name} has everything")
        if check and not pushed.clean:
            raise typer.Exit(1)
        return
    with render.progress(opts) as progress:
        report = run_status(project, paths or [], progress=progress)
    if opts.json:
        render.emit_json(
            {
                "clean": report.clean,
                "stages": [
                    {"name": v.stage, "stale": v.stale, "reasons": list(v.reasons)}
                    for v in report.stages
                ],
                "data": [
                    {
                        "path": d.path,
                        "state": d.state,
                        "changes": [{"path": c.path, "kind": c.kind} for c in d.changes],
                    }
                    for d in report.data
                ],
            }
        )
    elif not opts.quiet:
        _print_status(opts, report)
    if check and not report.clean:
        raise typer.Exit(1)


_STATE_TEXT = {
    "modified": "modified",
    "missing": "missing from the workspace (run `repro checkout`, or `repro pull`)",
    "not_in_cache": "not in the cache (run `repro commit`, or `repro pull`)",
}


def _print_status(opts: render.Options, report) -> None:  # type: ignore[no-untyped-def]
    if not report.data and not report.stages:
        render.out("no tracked data (track some with `repro add PATH`)")
        return
    for item in report.data:
        if item.state == "clean":
            if opts.verbose:
                render.out(f"{item.path}: up to date")
            continue
        render.out(f"{item.path}: {_STATE_TEXT[item.state]}")
        for change in item.changes:
            render.out(f"    {change.kind + ':':<10}{item.path}/{change.path}")
    for verdict in report.stages:
        if verdict.stale:
            render.out(f"{verdict.stage}: {'; '.join(map(render.one_line, verdict.reasons))}")
        elif opts.verbose:
            render.out(f"{verdict.stage}: up to date")
    if report.clean:
        parts = [f"{len(report.data)} tracked path{'s' if len(report.data) != 1 else ''}"]
        if report.stages:
            parts.append(f"{len(report.stages)} stage{'s' if len(report.stages) != 1 else ''}")
        render.out(f"up to date ({', '.join(parts)})")


class _DashDash(TyperCommand):
    """Remembers how many arguments followed `--` (click drops the marker itself)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["after_dashdash"] = len(args) - args.index("--") - 1 if "--" in args else None
        return super().parse_args(ctx, args)


@app.command(rich_help_panel="Data", cls=_DashDash)
def checkout(
    ctx: typer.Context,
    args: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[REV] [-- PATH...]",
            help="A revision to move to, and/or tracked paths to restore (default: all).",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", "-f", help="Overwrite uncommitted changes and untracked files."),
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = 0,
    json: Json = False,
) -> None:
    """Make tracked data match its pointers; or move to REV with its data; or restore PATHs from REV.

    \b
    repro checkout                 data follows the pointers in the workspace
    repro checkout v1.2            Git work tree to v1.2 (as git checkout), then its data
    repro checkout v1.2 -- models  only models/ from v1.2 (pointer or lock, and bytes), staged
    """
    from reprocli.operations import checkout as ops
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet, verbose=verbose, json=json)
    project = Project.discover()
    given = args or []
    after = ctx.meta.get("after_dashdash")
    before, paths = (
        (given, []) if after is None else (given[: len(given) - after], given[len(given) - after :])
    )
    rev, paths = ops.interpret(project, before, paths, dashdash=after is not None)
    with render.progress(opts) as progress:
        if rev is None:
            result = ops.checkout(project, paths, force=force, progress=progress)
        elif paths:
            result = ops.rollback(project, rev, paths, force=force, progress=progress)
        else:
            result = ops.switch(project, rev, force=force, progress=progress)
    if opts.json:
        render.emit_json(
            {
                "revision": None if rev is None else rev.name,
                "commit": None if rev is None else rev.sha,
                "written": result.written,
                "deleted": result.deleted,
                "unchanged": result.unchanged,
                "changed": list(result.changed),
                "removed": list(result.removed),
                "stages": list(result.stages),
                "kept": list(result.kept),
                "link_types": list(result.link_types),
            }
        )
        return
    if rev is not None and not paths:
        render.note(opts, f"HEAD is now at {rev.name} ({rev.sha[:12] if rev.sha else ''})")
    for path in result.kept:
        render.note(opts, f"kept untracked file {path} (use --force to remove it)")
    for path in result.removed:
        render.note(
            opts,
            f"removed {path}: not tracked at {rev.name if rev else 'HEAD'}",
        )
    if result.changed:
        how = ", ".join(result.link_types) or "no files written"
        render.note(
            opts,
            f"checked out {', '.join(result.changed)}: {result.written} written, "
            f"{result.deleted} deleted ({how})",
        )
    elif not result.removed:
        render.note(opts, "workspace already matches the pointers")
    if rev is not None and paths:
        for stage in result.stages:
            render.note(opts, f"stage {stage!r}: repro.lock record and outputs from {rev.name}")
        staged = "staged; " if project.config.autostage else ""
        render.note(opts, f"restored from {rev.name} ({staged}commit to keep the rollback)")


@app.command(rich_help_panel="Help")
def version(ctx: typer.Context, json: Json = False) -> None:
    """Print the versions of repro, Python and the libraries it uses."""
    import platform
    from importlib import metadata

    opts = options(ctx, json=json)
    libraries: dict[str, str | None] = {}
    for name in ("typer", "rich", "gitpython", "fsspec", "s3fs", "networkx", "pyyaml", "xxhash"):
        try:
            libraries[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libraries[name] = None
    from reprocli import __version__

    if opts.json:
        render.emit_json(
            {"repro": __version__, "python": platform.python_version(), "libraries": libraries}
        )
        return
    render.out(f"repro {__version__}")
    render.out(f"python {platform.python_version()}")
    for name, ver in libraries.items():
        render.out(f"{name} {ver or 'not installed'}")
