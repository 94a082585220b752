"""`repro push`, `fetch`, `pull`: move objects between the cache and a remote."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from reprocli.cli import render
from reprocli.cli.app import Json, Quiet, Verbose, app, options

Paths = Annotated[
    list[Path] | None, typer.Argument(help="Tracked paths (default: all).", show_default=False)
]
RemoteName = Annotated[
    str | None, typer.Option("--remote", "-r", help="Remote name (default: the default remote).")
]
Jobs = Annotated[
    int | None,
    typer.Option(
        "--jobs", "-j", min=1, max=256, help="Concurrent transfers (default 4×CPUs, ≤ 64)."
    ),
]
AllBranches = Annotated[bool, typer.Option("--all-branches", help="Also data of every branch.")]
AllTags = Annotated[bool, typer.Option("--all-tags", help="Also data of every tag.")]
AllCommits = Annotated[bool, typer.Option("--all-commits", help="Also data of every commit.")]
RunCacheOpt = Annotated[
    bool,
    typer.Option(
        "--run-cache", help="Also the run-cache: records of earlier stage runs and their outputs."
    ),
]


def _summary(opts: render.Options, verb: str, result: Any, remote: str | None) -> None:
    if opts.json:
        render.emit_json(
            {
                "transferred": result.transferred,
                "already_there": result.present,
                "bytes": result.bytes,
            }
        )
        return
    render.note(
        opts,
        f"{result.transferred} {verb}, {result.present} already there ({render.size(result.bytes)})",
    )


@app.command(rich_help_panel="Remotes")
def push(
    ctx: typer.Context,
    paths: Paths = None,
    remote: RemoteName = None,
    jobs: Jobs = None,
    all_branches: AllBranches = False,
    all_tags: AllTags = False,
    all_commits: AllCommits = False,
    run_cache: RunCacheOpt = False,
    quiet: Quiet = False,
    verbose: Verbose = 0,
    json: Json = False,
) -> None:
    """Upload the objects tracked data needs that the remote lacks."""
    from reprocli.operations.push import push as run_push
    from reprocli.operations.scope import Revisions
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet, verbose=verbose, json=json)
    with render.progress(opts) as progress:
        result = run_push(
            Project.discover(),
            paths or [],
            remote=remote,
            jobs=jobs,
            revisions=Revisions(all_branches, all_tags, all_commits),
            run_cache=run_cache,
            progress=progress,
        )
    _summary(opts, "pushed", result, remote)


@app.command(rich_help_panel="Remotes")
def fetch(
    ctx: typer.Context,
    paths: Paths = None,
    remote: RemoteName = None,
    jobs: Jobs = None,
    all_branches: AllBranches = False,
    all_tags: AllTags = False,
    all_commits: AllCommits = False,
    run_cache: RunCacheOpt = False,
    quiet: Quiet = False,
    verbose: Verbose = 0,
    json: Json = False,
) -> None:
    """Download into the cache the objects tracked data needs (the workspace is untouched)."""
    from reprocli.operations.fetch import fetch as run_fetch
    from reprocli.operations.scope import Revisions
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet, verbose=verbose, json=json)
    with render.progress(opts) as progress:
        result = run_fetch(
            Project.discover(),
            paths or [],
            remote=remote,
            jobs=jobs,
            revisions=Revisions(all_branches, all_tags, all_commits),
            run_cache=run_cache,
            progress=progress,
        )
    _summary(opts, "fetched", result, remote)


@app.command(rich_help_panel="Remotes")
def pull(
    ctx: typer.Context,
    paths: Paths = None,
    remote: RemoteName = None,
    jobs: Jobs = None,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Overwrite uncommitted changes.")
    ] = False,
    all_branches: AllBranches = False,
    all_tags: AllTags = False,
    all_commits: AllCommits = False,
    run_cache: RunCacheOpt = False,
    quiet: Quiet = False,
    verbose: Verbose = 0,
    json: Json = False,
) -> None:
    """Fetch, verify, then check out: the workspace changes only when every object is in."""
    from reprocli.operations.pull import pull as run_pull
    from reprocli.operations.scope import Revisions
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet, verbose=verbose, json=json)
    with render.progress(opts) as progress:
        result = run_pull(
            Project.discover(),
            paths or [],
            remote=remote,
            jobs=jobs,
            force=force,
            revisions=Revisions(all_branches, all_tags, all_commits),
            run_cache=run_cache,
            progress=progress,
        )
    if opts.json:
        render.emit_json(
            {
                "transferred": result.fetched.transferred,
                "already_there": result.fetched.present,
                "bytes": result.fetched.bytes,
                "written": result.checkout.written,
                "deleted": result.checkout.deleted,
                "changed": list(result.checkout.changed),
            }
        )
        return
    _summary(opts, "fetched", result.fetched, remote)
    if result.checkout.changed:
        render.note(
            opts,
            f"checked out {', '.join(result.checkout.changed)}: {result.checkout.written} written",
        )
