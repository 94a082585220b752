"""The root `repro` command: global options and the one error boundary.

Imports nothing heavy: each command imports its operation inside its body, so `repro --help`
loads neither GitPython, fsspec, networkx nor s3fs (a test checks it).
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from reprocli import __version__
from reprocli.cli import render
from reprocli.errors import ReproError, UsageError


class ReproGroup(TyperGroup):
    """The only place exceptions become exit codes and one-line messages."""

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        standalone_mode: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Run the CLI; usage errors are one `error:` line (plus a hint), exit code 2."""
        from typer._click import exceptions as click_errors  # typer's vendored Click

        try:
            code = super().main(args=args, prog_name=prog_name, standalone_mode=False, **kwargs)
        except click_errors.NoArgsIsHelpError as exc:
            exc.show()
            code = 2
        except click_errors.UsageError as exc:
            message = exc.format_message()
            command = exc.ctx.command_path if exc.ctx is not None else "repro"
            render.error(message[:1].lower() + message[1:], hint=f"see `{command} --help`")
            code = 2
        except click_errors.ClickException as exc:
            render.error(exc.format_message())
            code = exc.exit_code
        except typer.Abort:
            render.error("interrupted")
            code = 130
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: Any) -> Any:
        try:
            result = super().invoke(ctx)
            _work_done()
            return result
        except ReproError as exc:
            if _verbose(ctx) > 1:
                traceback.print_exc()
            render.error(str(exc), hint=exc.hint)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            written = sys.modules.get("reprocli.core.atomic")  # no temp file without it
            if written is not None:
                written.remove_own_temps()  # Ctrl-C leaves nothing half-done
            render.error("interrupted")
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # The reader went away (`repro log | head`): stop quietly, as git does.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(141) from None
        except typer.Exit:
            _work_done()
            raise
        except typer.Abort:
            raise
        except Exception as exc:
            if getattr(exc, "exit_code", None) is not None and type(exc).__module__.startswith(
                "typer"
            ):
                raise
            if _verbose(ctx):
                traceback.print_exc()
            render.error(
                f"internal error ({type(exc).__name__}: {exc})", hint="rerun with -v and report it"
            )
            raise typer.Exit(2) from None


OWN_PROCESS = False
"""Set by the console entry point: repro owns the process and may change its signal handling
(not when a test or a program runs the app in its own process)."""


def _work_done() -> None:
    """The command has finished and said so: a Ctrl-C from here on changes nothing, and must
    not turn its success into `error: interrupted`."""
    if OWN_PROCESS:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _verbose(ctx: Any) -> int:
    obj = ctx.obj
    return obj.verbose if isinstance(obj, render.Options) else 0


app = typer.Typer(
    cls=ReproGroup,
    name="repro",
    help="Git-native reproducibility for data and machine learning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")]
Verbose = Annotated[
    int,
    typer.Option(
        "--verbose", "-v", count=True, show_default=False, help="More detail; -vv tracebacks."
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def _print_version(value: bool) -> None:
    if value:
        render.out(f"repro {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    directory: Annotated[
        Path | None, typer.Option("-C", help="Run as if repro was started in DIR.", metavar="DIR")
    ] = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
    json: Json = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Git-native reproducibility for data and machine learning."""
    ctx.obj = render.Options(directory=directory, quiet=quiet, verbose=verbose, json=json)
    if directory is not None:
        try:
            os.chdir(directory)
        except OSError as exc:
            raise UsageError(f"-C {directory}: {exc.strerror}") from None


def options(
    ctx: typer.Context, *, quiet: bool = False, verbose: int = 0, json: bool = False
) -> render.Options:
    """The global options, with any given after the command name folded in."""
    opts: render.Options = ctx.obj if isinstance(ctx.obj, render.Options) else render.Options()
    opts.quiet = opts.quiet or quiet
    opts.verbose = max(opts.verbose, verbose)
    opts.json = opts.json or json
    return opts


from reprocli.cli import data, history, hooks, pipeline, remote, sync  # noqa: E402, F401 - registers

__all__ = ["app"]
