"""Pipeline commands: run and dag. Parse, call one operation, render."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from reprocli.cli import render
from reprocli.cli.app import Json, Quiet, Verbose, app, options

_ACTION_TEXT = {
    "ran": "ran",
    "restored": "restored from the run-cache",
    "up_to_date": "up to date",
    "failed": "failed",
    "not_started": "not started",
    "would_run": "would run",
}


@app.command(rich_help_panel="Pipeline")
def run(
    ctx: typer.Context,
    stages: Annotated[
        list[str] | None, typer.Argument(help="Stages to bring up to date (default: all).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Run even stages that are up to date.")
    ] = False,
    dry: Annotated[
        bool, typer.Option("--dry", help="Say what would run and why; run nothing.")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="With --dry: exit 1 if anything would run.")
    ] = False,
    downstream: Annotated[
        bool,
        typer.Option(
            "--downstream",
            help="Also the stages that depend on the given ones (not the ones they need).",
        ),
    ] = False,
    no_run_cache: Annotated[
        bool,
        typer.Option(
            "--no-run-cache", help="Run stages even when an identical earlier run is cached."
        ),
    ] = False,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, max=64, help="Stages to run side by side.")
    ] = 1,
    quiet: Quiet = False,
    verbose: Verbose = 0,
    json: Json = False,
) -> None:
    """Rebuild the pipeline: run each stage whose command, deps, params or outs changed."""
    from reprocli.errors import StageFailedError, UsageError
    from reprocli.operations.run import RunFailedError
    from reprocli.operations.run import run as run_pipeline
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet, verbose=verbose, json=json)
    if check and not dry:
        raise UsageError("--check needs --dry", hint="repro run --dry --check")
    failure: StageFailedError | None = None
    try:
        results = run_pipeline(
            Project.discover(),
            stages or [],
            force=force,
            dry=dry,
            downstream=downstream,
            run_cache=not no_run_cache,
            jobs=jobs,
            output_to_stderr=opts.json,
        )
    except RunFailedError as exc:  # still say what the finished stages did
        failure, results = exc, exc.results
    if opts.json and failure is None:
        render.emit_json(
            {
                "stages": [
                    {"name": r.name, "action": r.action, "reasons": list(r.reasons)}
                    for r in results
                ]
            }
        )
    elif not opts.quiet:
        for r in results:
            if r.action in ("up_to_date", "failed") and not (
                opts.verbose or (dry and r.action == "up_to_date")
            ):
                continue
            why = f" ({'; '.join(map(render.one_line, r.reasons))})" if r.reasons else ""
            render.note(opts, f"{r.name}: {_ACTION_TEXT[r.action]}{why}")
        if results and all(r.action == "up_to_date" for r in results):
            render.note(opts, "everything is up to date")
    if failure is not None:
        raise failure
    if dry and check and any(r.action == "would_run" for r in results):
        raise typer.Exit(1)


@app.command(rich_help_panel="Pipeline")
def dag(
    ctx: typer.Context,
    fmt: Annotated[
        Literal["text", "mermaid", "dot", "json"], typer.Option("--format", help="Output format.")
    ] = "text",
    json: Json = False,
) -> None:
    """Show the stage graph (text, mermaid, dot or json)."""
    from reprocli.operations.run import load
    from reprocli.project import Project

    opts = options(ctx, json=json)
    _, graph = load(Project.discover())
    for line in graph.render("json" if opts.json else fmt).splitlines():
        render.out(line)
