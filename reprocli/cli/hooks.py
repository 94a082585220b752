"""`repro hooks install|uninstall|run` and `repro doctor`."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from reprocli.cli import render
from reprocli.cli.app import Json, Quiet, Verbose, app, options

hooks_app = typer.Typer(
    help="Git hooks that keep data in step with Git (checkout, push, commit).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(hooks_app, name="hooks", rich_help_panel="Hooks and CI")

_DESCRIBE = {
    "installed": "installed",
    "upgraded": "upgraded (it was repro's)",
    "chained": "installed; the hook that was there runs first (kept as {name}.pre-repro)",
    "removed": "removed",
    "restored": "removed; the hook it replaced is back",
    "absent": "not installed",
    "foreign": "not repro's: left alone",
}


@hooks_app.command("install")
def install(
    ctx: typer.Context,
    pre_commit_tool: Annotated[
        bool,
        typer.Option(
            "--pre-commit-tool",
            help="Add repro's hooks to .pre-commit-config.yaml instead of .git/hooks.",
        ),
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = 0,
    json: Json = False,
) -> None:
    """post-checkout/merge/rewrite → repro checkout; pre-push → repro push; pre-commit → status --check."""
    from reprocli.operations import hooks
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet, verbose=verbose, json=json)
    project = Project.discover()
    if pre_commit_tool:
        path, changed = hooks.configure_pre_commit(project)
        if opts.json:
            render.emit_json({"pre_commit_config": str(path), "changed": changed})
            return
        if changed:
            render.note(opts, f"added repro-status, repro-push and repro-checkout to {path.name}")
            render.note(
                opts,
                "next: pre-commit install --hook-type pre-commit --hook-type pre-push "
                "--hook-type post-checkout --hook-type post-merge --hook-type post-rewrite",
            )
        else:
            render.note(opts, f"{path.name} already runs repro's hooks")
        return
    changes = hooks.install(project)
    _print_changes(opts, changes)


@hooks_app.command("uninstall")
def uninstall(
    ctx: typer.Context, quiet: Quiet = False, verbose: Verbose = 0, json: Json = False
) -> None:
    """Remove repro's hooks, restoring any hook they replaced."""
    from reprocli.operations import hooks
    from reprocli.project import Project

    opts = options(ctx, quiet=quiet, verbose=verbose, json=json)
    _print_changes(opts, hooks.uninstall(Project.discover()))


def _print_changes(opts: render.Options, changes: list) -> None:  # type: ignore[type-arg]
    if opts.json:
        render.emit_json(
            {"hooks": [{"hook": c.hook, "path": str(c.path), "action": c.action} for c in changes]}
        )
        return
    for change in changes:
        render.note(opts, f"{change.hook}: {_DESCRIBE[change.action].format(name=change.hook)}")


@hooks_app.command(
    "run",
    hidden=True,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
def run(
    ctx: typer.Context,
    hook: Annotated[str, typer.Argument(help="The Git hook being run.")],
    args: Annotated[list[str] | None, typer.Argument(help="Git's arguments to the hook.")] = None,
) -> None:
    """What an installed hook runs (the hook stubs call this)."""
    from reprocli.errors import NotAProjectError
    from reprocli.operations import hooks
    from reprocli.project import Project

    opts = options(ctx)
    try:
        project = Project.discover()
    except NotAProjectError:
        return  # a Git repository that does not use repro
    action = hooks.decide(project.root, hook, args or [], os.environ)
    if action is None:
        return
    if action == "status":
        from reprocli.cli.data import status

        status(ctx, check=True)
    elif action == "push":
        if project.config.default_remote is None:
            render.warn(opts, "repro pre-push: no default remote, data not pushed")
            return
        from reprocli.cli.sync import push

        push(ctx)
    else:
        from reprocli.cli.data import checkout

        ctx.meta["after_dashdash"] = None
        checkout(ctx)


@app.command(rich_help_panel="Hooks and CI")
def doctor(
    ctx: typer.Context, quiet: Quiet = False, verbose: Verbose = 0, json: Json = False
) -> None:
    """Versions, Git, the cache (free space, link type in use) and whether each remote answers."""
    from reprocli.operations.doctor import doctor as run_doctor

    opts = options(ctx, quiet=quiet, verbose=verbose, json=json)
    report = run_doctor()
    if opts.json:
        render.emit_json(
            {
                "repro": report.repro,
                "python": report.python,
                "system": report.system,
                "libraries": report.libraries,
                "git": report.git,
                "project": report.project,
                "cache": report.cache,
                "free_bytes": report.free_bytes,
                "link_type": report.link_type,
                "remotes": [
                    {
                        "name": r.name,
                        "url": r.url,
                        "default": r.default,
                        "reachable": r.reachable,
                        "detail": r.detail,
                        "incomplete_uploads": r.incomplete_uploads,
                    }
                    for r in report.remotes
                ],
                "problems": list(report.problems),
            }
        )
    else:
        render.out(f"repro      {report.repro}")
        render.out(f"python     {report.python} on {report.system}")
        render.out(f"git        {report.git or 'not found'}")
        render.out(
            "libraries  "
            + ", ".join(f"{name} {v or 'MISSING'}" for name, v in report.libraries.items())
        )
        render.out(f"project    {report.project or '-'}")
        if report.cache is not None:
            free = "" if report.free_bytes is None else f" ({render.size(report.free_bytes)} free)"
            render.out(f"cache      {report.cache}{free}")
            render.out(f"link type  {report.link_type or 'none works'}")
        from reprocli.cli.remote import sources_text

        for r in report.remotes:
            mark = " (default)" if r.default else ""
            state = r.detail if r.reachable else f"UNREACHABLE: {r.detail}"
            origin = f" ({sources_text(r.sources)})" if r.sources else ""
            render.out(render.one_line(f"remote     {r.name}{mark} {r.url}: {state}{origin}"))
        for problem in report.problems:
            render.warn(opts, problem)
    if report.problems:
        raise typer.Exit(1)
