"""The ``interp-lab`` command: a thin shell over ``interp_lab.api``.

Errors in the user's input print one line (file, line, field, what was
expected) and exit with status 2; ``--debug`` anywhere on the command line
shows the traceback instead. Usage errors (an unknown command or option, a
missing or out-of-range option, a bare ``interp-lab``) print click's usage
line and exit with status 2, as click does.
"""

from __future__ import annotations

import functools
import sys
from typing import Optional

import typer

from interp_lab import __version__
from interp_lab.api.registry import registry
from interp_lab.cli import causal, cross_model, lens, sae, stores, utilities  # noqa: F401  (renderers)
from interp_lab.cli.generate import GroupedHelp, add_commands
from interp_lab.errors import InterpLabError

app = typer.Typer(
    name="interp-lab",
    help="Criterion-driven mechanistic interpretability: rank the features that carry a criterion, "
    "test which cause it, and report with honest statistics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=GroupedHelp,
)
add_commands(app, registry())


def _version(value: bool) -> None:
    if value:
        typer.echo(f"interp-lab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
) -> None:
    """interp-lab."""


@functools.cache
def _command():
    """The click command typer builds from ``app`` (built once: tests and run configs call ``main`` often)."""
    return typer.main.get_command(app)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        # outside standalone mode a ``typer.Exit`` (``--help``, ``--version``, Ctrl-C) comes back as its code
        code = _command().main(args=args, prog_name="interp-lab", standalone_mode=False)
    except InterpLabError as exc:
        if debug:
            raise
        print(f"interp-lab: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("interp-lab: aborted", file=sys.stderr)
        return 130
    except typer.TyperException as exc:
        # Usage errors. typer 0.29 (pinned in pyproject.toml) runs its own copy of click (typer._click) whose
        # ClickException, the base of UsageError, BadParameter, MissingParameter, NoSuchOption ..., derives
        # from the public typer.TyperException; the standalone click package's classes never match them.
        _show(exc)
        return exc.exit_code
    except Exception as exc:  # bugs
        if debug:
            raise
        print(f"interp-lab: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1
    return code if isinstance(code, int) else 0


def _show(exc: typer.TyperException) -> None:
    """Print a usage error as click does: the usage line, a pointer to --help, ``Error: ...`` (stderr)."""
    show = getattr(exc, "show", None)  # every ClickException has it; a bare TyperException does not
    if show is not None:
        show()
    else:
        print(f"Error: {exc.format_message()}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
