"""History commands: diff, log, params diff, metrics show/diff, gc, fsck."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reprocli.cli import render
from reprocli.cli.app import Json, Quiet, Verbose, app, options
from reprocli.errors import UsageError

if TYPE_CHECKING:
    from reprocli.operations.gc import GcReport, Sweep
    from reprocli.operations.metrics import DiffReport as ValuesDiff

OldRev = Annotated[
    str | None,
    typer.Argument(
        help="Old side (default HEAD; with B omitted, compared to the workspace).",
        show_default=False,
    ),
]
NewRev = Annotated[
    str | None,
    typer.Argument(help="New side (default: workspace, the working tree).", show_default=False),
]
Markdown = Annotated[
    bool, typer.Option("--md", help="Print a Markdown table (for a pull request).")
]
Everything = Annotated[bool, typer.Option("--all", help="Also list unchanged keys.")]
AllBranches = Annotated[bool, typer.Option("--all-branches", help="Also every branch.")]
AllTags = Annotated[bool, typer.Option("--all-tags", help="Also every tag.")]
AllCommits = Annotated[bool, typer.Option("--all-commits", help="Also every commit.")]
RemoteName = Annotated[
    str | None,
    typer.Option(
        "--remote", "-r", help="gc: also clean this remote. fsck: check it instead of the cache."
    ),
]


@app.command(rich_help_panel="History")
def diff(
    ctx: typer.Context,
    old: OldRev = None,
    new: NewRev = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
    json: Json = False,
) -> None:
    """Data files added, modified and deleted between two revisions (default: HEAD → workspace)."""
    from reprocli.operations.diff import diff as run_diff
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet, verbose=verbose, json=json)
    with render.progress(opts) as progress:
        report = run_diff(Project.discover(), old, new, progress=progress)
    if opts.json:

        def side(version: Any) -> dict[str, Any] | None:
            return None if version is None else {"oid": version.oid, "size": version.size}

        render.emit_json(
            {
                "old": report.old.name,
                "new": report.new.name,
                "changes": [
                    {"path": c.path, "kind": c.kind, "old": side(c.old), "new": side(c.new)}
                    for c in report.changes
                ],
                "opaque": list(report.opaque),
            }
        )
        return
    for change in report.changes:
        if change.kind == "modified" and change.old and change.new:
            sizes = f"{render.size(change.old.size)} → {render.size(change.new.size)}"
        else:
            version = change.new or change.old
            sizes = render.size(version.size) if version else ""
        render.out(f"{change.kind:<9} {render.one_line(change.path)}  ({sizes})")
    counts = {k: sum(c.kind == k for c in report.changes) for k in ("added", "modified", "deleted")}
    for folder in report.opaque:
        render.warn(opts, f"{folder}: compared as a whole (its manifest is not in the cache)")
    if report.changes:
        summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        render.note(opts, f"{report.old.name} → {report.new.name}: {summary}")
    else:
        render.note(opts, f"no data changes between {report.old.name} and {report.new.name}")


@app.command(rich_help_panel="History")
def log(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="A tracked file or directory, or a path inside one.")
    ],
    rev: Annotated[str, typer.Option("--rev", help="Walk the history of this revision.")] = "HEAD",
    quiet: Quiet = False,
    verbose: Verbose = 0,
    json: Json = False,
) -> None:
    """Every version of a tracked artifact: commit, date, message, oid, size, and lineage."""
    from reprocli.operations.log import log as run_log
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet, verbose=verbose, json=json)
    report = run_log(Project.discover(), path, rev=rev)
    if opts.json:
        render.emit_json(
            {
                "path": report.path,
                "versions": [
                    {
                        "commit": v.commit.sha,
                        "date": _iso(v.commit.date),
                        "author": v.commit.author,
                        "message": v.commit.summary,
                        "refs": list(report.refs.get(v.commit.sha, ())),
                        "oid": v.oid,
                        "size": v.size,
                        "nfiles": v.nfiles,
                        "note": v.note,
                        "lineage": None
                        if v.lineage is None
                        else {
                            "stage": v.lineage.stage,
                            "cmd": v.lineage.cmd,
                            "deps": [
                                {"path": d.path, "oid": d.oid, "size": d.size}
                                for d in v.lineage.deps
                            ],
                            "params": v.lineage.params,
                        },
                    }
                    for v in report.versions
                ],
            }
        )
        return
    for i, v in enumerate(report.versions):
        if i:
            render.out()
        names = report.refs.get(v.commit.sha, ())
        decoration = f" ({', '.join(map(render.one_line, names))})" if names else ""
        render.out(f"commit {v.commit.sha[:12]}{decoration}")
        render.out(f"Date:   {_iso(v.commit.date)}   {render.one_line(v.commit.summary)}")
        if v.oid is None:
            render.out(f"    {report.path}: {render.one_line(v.note or 'no longer tracked')}")
            continue
        files = f", {v.nfiles} files" if v.nfiles is not None else ""
        render.out(f"    {report.path}: {v.oid}  {render.size(v.size or 0)}{files}")
        if v.lineage is not None:
            render.out(f"    made by stage {v.lineage.stage!r}: {render.one_line(v.lineage.cmd)}")
            for dep in v.lineage.deps:
                render.out(f"      dep   {dep.path}  {dep.oid}")
            for file, values in sorted(v.lineage.params.items()):
                for key, value in sorted(values.items()):
                    render.out(f"      param {file}:{render.one_line(key)} = {render.cell(value)}")


def _iso(timestamp: int) -> str:
    return datetime.datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


params_app = typer.Typer(help="Compare parameters across revisions.", no_args_is_help=True)
metrics_app = typer.Typer(help="Show and compare metrics across revisions.", no_args_is_help=True)
app.add_typer(params_app, name="params", rich_help_panel="History")
app.add_typer(metrics_app, name="metrics", rich_help_panel="History")


@params_app.command("diff")
def params_diff(
    ctx: typer.Context,
    old: OldRev = None,
    new: NewRev = None,
    everything: Everything = False,
    markdown: Markdown = False,
    quiet: Quiet = False,
    verbose: Verbose = 0,
    json: Json = False,
) -> None:
    """Parameters the stages read, compared between two revisions (default: HEAD → workspace)."""
    from reprocli.operations.metrics import params_diff as run
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet, verbose=verbose, json=json)
    _print_diff(opts, run(Project.discover(), old, new, everything=everything), markdown, "param")


@metrics_app.command("diff")
def metrics_diff(
    ctx: typer.Context,
    old: OldRev = None,
    new: NewRev = None,
    everything: Everything = False,
    markdown: Markdown = False,
    quiet: Quiet = False,
    verbose: Verbose = 0,
    json: Json = False,
) -> None:
    """Metrics compared between two revisions, with the change (default: HEAD → workspace)."""
    from reprocli.operations.metrics import metrics_diff as run
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet, verbose=verbose, json=json)
    _print_diff(opts, run(Project.discover(), old, new, everything=everything), markdown, "metric")


def _print_diff(opts: render.Options, report: ValuesDiff, markdown: bool, noun: str) -> None:
    for warning in report.warnings:
        render.warn(opts, warning)
    if opts.json:
        render.emit_json(
            {
                "old": report.old.name,
                "new": report.new.name,
                "changes": [
                    {"file": d.file, "key": d.key, "old": d.old, "new": d.new, "change": d.change}
                    for d in report.deltas
                ],
            }
        )
        return
    if not report.deltas:
        if markdown:  # a pull-request comment says so rather than staying empty
            old, new = render.markdown_text(report.old.name), render.markdown_text(report.new.name)
            render.out(f"_No {noun} changes between {old} and {new}._")
        else:
            render.note(opts, f"no {noun} changes between {report.old.name} and {report.new.name}")
        return
    headers = ["Path", noun.capitalize(), report.old.name, report.new.name, "Change"]
    rows = [
        [d.file, d.key, render.cell(d.old), render.cell(d.new), _signed(d.change)]
        for d in report.deltas
    ]
    render.table(headers, rows, markdown=markdown)


def _signed(change: float | int | None) -> str:
    if change is None:
        return "-"
    text = f"{change:+.6g}" if isinstance(change, float) else f"{change:+d}"
    return text.replace("-", "−") if text.startswith("-") else text


@metrics_app.command("show")
def metrics_show(
    ctx: typer.Context,
    revisions: Annotated[
        list[str] | None,
        typer.Argument(help="Revisions to show (default: the workspace).", show_default=False),
    ] = None,
    all_branches: AllBranches = False,
    all_tags: AllTags = False,
    all_commits: AllCommits = False,
    markdown: Markdown = False,
    quiet: Quiet = False,
    verbose: Verbose = 0,
    json: Json = False,
) -> None:
    """The metrics of the workspace, or of revisions: one row per revision and file."""
    from reprocli.operations.metrics import metrics_show as run
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet, verbose=verbose, json=json)
    report = run(
        Project.discover(),
        revisions or [],
        all_branches=all_branches,
        all_tags=all_tags,
        all_commits=all_commits,
    )
    for warning in report.warnings:
        render.warn(opts, warning)
    if opts.json:
        render.emit_json(
            {
                "revisions": [
                    {"revision": row.rev.name, "commit": row.rev.sha, "metrics": row.values}
                    for row in report.rows
                ]
            }
        )
        return
    keys = sorted({k for row in report.rows for values in row.values.values() for k in values})
    if not keys:
        render.note(opts, "no metrics (declare them under `metrics:` of a stage in repro.yaml)")
        return
    rows = [
        [row.rev.name, file, *(render.cell(values.get(k)) for k in keys)]
        for row in report.rows
        for file, values in sorted(row.values.items())
    ] + [[row.rev.name, "-", *("-" for _ in keys)] for row in report.rows if not row.values]
    render.table(["Revision", "Path", *keys], rows, markdown=markdown)


@app.command(rich_help_panel="History")
def gc(
    ctx: typer.Context,
    all_branches: AllBranches = False,
    all_tags: AllTags = False,
    all_commits: AllCommits = False,
    remote: RemoteName = None,
    dry: Annotated[
        bool, typer.Option("--dry", help="List what would be deleted; delete nothing.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Do not ask before deleting.")
    ] = False,
    grace: Annotated[
        float,
        typer.Option("--grace", min=0, help="Never delete objects younger than this many seconds."),
    ] = 3600.0,
    project_paths: Annotated[
        list[Path] | None,
        typer.Option(
            "--project",
            "-p",
            help="Another project sharing this cache (cache.dir): keep what it uses too. "
            "Repeatable; required for a shared cache (`--project .` if this is the only one).",
        ),
    ] = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
    json: Json = False,
) -> None:
    """Delete cached objects that the workspace, index, HEAD and chosen revisions do not use."""
    from reprocli.operations.gc import gc as run_gc
    from reprocli.operations.scope import Revisions
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet, verbose=verbose, json=json)
    if not (dry or force) and not sys.stdin.isatty():
        raise UsageError(
            "gc deletes objects and there is no terminal to confirm it",
            hint="pass -f to delete without asking, or --dry to see what would go",
        )

    def confirm(plan: GcReport) -> bool:
        total = len(plan.local.doomed) + (len(plan.remote.doomed) if plan.remote else 0)
        if force or total == 0:
            return True
        where = render.one_line(
            plan.local.where + (f" and remote {plan.remote.where}" if plan.remote else "")
        )  # typer.confirm prints it as it is
        question = (
            f"delete {total} object(s) ({render.size(plan.local.freed)} locally) from {where}?"
        )
        return typer.confirm(question, default=False, err=True)

    project = Project.discover()
    for path in project_paths or []:
        if not path.is_dir():
            raise UsageError(f"--project {path}: no such folder")
    others = None if project_paths is None else [Project.discover(p) for p in project_paths]
    revisions = Revisions(all_branches, all_tags, all_commits)
    report = run_gc(
        project, revisions, remote=remote, dry=dry, grace=grace, confirm=confirm, others=others
    )
    sweeps = [report.local] + ([report.remote] if report.remote else [])
    if opts.json:
        render.emit_json(
            {
                "dry": dry,
                "done": report.done,
                "stores": [
                    {
                        "where": s.where,
                        "kept": s.kept,
                        "deleted": list(s.doomed),
                        "bytes": s.freed,
                        "recent_kept": s.recent,
                        "runs_deleted": list(s.runs),
                    }
                    for s in sweeps
                ],
            }
        )
        return
    if not dry and not report.done:
        render.note(opts, "nothing deleted")
        return
    for sweep in sweeps:
        _print_sweep(opts, sweep, dry)


def _print_sweep(opts: render.Options, sweep: Sweep, dry: bool) -> None:
    where = render.one_line(sweep.where)
    if dry:
        for oid in sweep.doomed:
            render.out(f"would delete {where}: objects/{oid[:2]}/{oid[2:]}")
        for key in sweep.runs:
            render.out(f"would delete {where}: runs/{key[:2]}/{key[2:]}")
    verb = "would delete" if dry else "deleted"
    recent = f"; {sweep.recent} recent object(s) kept (--grace)" if sweep.recent else ""
    render.note(
        opts,
        f"{where}: {verb} {len(sweep.doomed)} object(s) ({render.size(sweep.freed)}), "
        f"kept {sweep.kept}{recent}",
    )


@app.command(rich_help_panel="History")
def fsck(
    ctx: typer.Context,
    remote: RemoteName = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Delete damaged objects so pull or add replaces them.")
    ] = False,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", min=1, max=256, help="Parallel checks.")
    ] = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
    json: Json = False,
) -> None:
    """Re-hash every object in the cache (or a remote); check every manifest, pointer and lock."""
    from reprocli.operations.fsck import fsck as run_fsck
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet, verbose=verbose, json=json)
    with render.progress(opts) as progress:
        report = run_fsck(
            Project.discover(), remote=remote, repair=repair, jobs=jobs, progress=progress
        )
    if opts.json:
        render.emit_json(
            {
                "where": report.where,
                "objects": report.objects,
                "corrupt": [{"object": p.subject, "problem": p.problem} for p in report.corrupt],
                "invalid": [{"subject": p.subject, "problem": p.problem} for p in report.invalid],
                "missing": [{"path": p.subject, "problem": p.problem} for p in report.missing],
                "repaired": list(report.repaired),
            }
        )
    else:
        for problem in report.corrupt:
            render.out(f"corrupt  {render.one_line(f'{problem.subject}: {problem.problem}')}")
        for problem in report.invalid:
            text, subject = render.one_line(problem.problem), render.one_line(problem.subject)
            render.out(f"invalid  {text if text.startswith(subject) else f'{subject}: {text}'}")
        for problem in report.missing:
            render.out(f"missing  {render.one_line(f'{problem.subject}: {problem.problem}')}")
        again = "push" if remote else "pull or add"
        for oid in report.repaired:
            render.note(opts, f"deleted damaged object {oid} ({again} brings it back)")
        state = "damaged" if report.damaged else "ok"
        render.note(
            opts,
            f"{render.one_line(report.where)}: {report.objects} object(s) checked, "
            f"{len(report.corrupt)} corrupt, {len(report.invalid)} invalid, "
            f"{len(report.missing)} missing: {state}",
        )
        if report.damaged and not repair:
            again = (
                f"fsck -r {remote} --repair`, then `repro push"
                if remote
                else "fsck --repair`, then `repro pull"
            )
            render.note(opts, f"hint: `repro {again}` brings them back whole")
    repaired = set(report.repaired)
    if any(p.subject not in repaired for p in (*report.corrupt, *report.invalid)):
        raise typer.Exit(1)
