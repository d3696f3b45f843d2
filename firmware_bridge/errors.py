"""The one error boundary every command line goes through, and the exception it expects.

It lives in the lowest package so that device/, train/, convert/ and benchmarks/ can all raise
and catch the same type without importing each other's internals. :func:`run_cli` wraps every
console script (ecg-device, ecg-bridge, ecg-train, ecg-convert, ecg-bench, ecg-edge): bad input
ends in one line on stderr and exit status 2; anything else that escapes (a bug) ends in one
line and exit status 1, with the traceback only under ``--debug`` (or ``ECG_EDGE_DEBUG=1``).
"""

from __future__ import annotations

import os
import sys
import traceback

#: Exit status for bad input the user can fix, and for an unexpected internal error.
EXIT_USER, EXIT_INTERNAL, EXIT_INTERRUPTED = 2, 1, 130


class UserError(Exception):
    """Bad input the user can fix: the message says what is wrong and what to do."""


class RecordError(UserError):
    """A recording or annotation file is missing, empty or malformed."""


def positive_number(ctx, param, value):
    """click callback: a finite number > 0 (NaN, infinity, zero and negatives are refused)."""
    return _number(value, lambda v: v > 0, "> 0")


def nonnegative_number(ctx, param, value):
    """click callback: a finite number >= 0."""
    return _number(value, lambda v: v >= 0, ">= 0")


def _number(value, ok, what: str):
    import math

    import click

    if value is not None and not (math.isfinite(value) and ok(value)):
        raise click.BadParameter(f"{value}: give a finite number {what}")
    return value


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def _guarded(call, debug: bool) -> None:
    """Run ``call()`` (a click main in non-standalone mode); every outcome is a SystemExit."""
    import click

    try:
        code = call()
    except (click.exceptions.Abort, KeyboardInterrupt):
        raise SystemExit(EXIT_INTERRUPTED) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except SystemExit:
        raise
    except (UserError, ValueError, OSError, EOFError) as exc:
        # ValueError/OSError from a library call on the user's input (a file that is not
        # there, a number out of range) are the user's to fix as well.
        if debug:
            traceback.print_exc()
        reason = _one_line(exc)
        if not isinstance(exc, UserError):
            reason = f"{type(exc).__name__}: {reason}"
        click.echo(f"error: {reason}", err=True)
        raise SystemExit(EXIT_USER) from None
    except MemoryError:
        click.echo("error: out of memory; the input is too large for this machine", err=True)
        raise SystemExit(EXIT_INTERNAL) from None
    except Exception as exc:  # noqa: BLE001 - the boundary: no traceback reaches the user
        if debug:
            traceback.print_exc()
        click.echo(f"error: internal error ({type(exc).__name__}: {_one_line(exc)}); "
                   "run again with --debug for the traceback and report it", err=True)
        raise SystemExit(EXIT_INTERNAL) from None
    raise SystemExit(code if isinstance(code, int) else 0)


def _split_debug(args: list[str] | None) -> tuple[list[str], bool]:
    argv = list(sys.argv[1:] if args is None else args)
    debug = "--debug" in argv or os.environ.get("ECG_EDGE_DEBUG") == "1"
    return [a for a in argv if a != "--debug"], debug


def _boundary_group_class():
    import click

    class BoundaryGroup(click.Group):
        """A click group whose ``main`` is the error boundary (console scripts and CliRunner
        tests alike go through it)."""

        is_boundary = True

        def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
                 **extra):
            argv, debug = _split_debug(args)
            parent = super().main
            _guarded(lambda: parent(argv, prog_name, complete_var, standalone_mode=False,
                                    **extra), debug)

    return BoundaryGroup


def __getattr__(name: str):
    # Built lazily so that importing this module does not import click (the decoder is pure).
    if name == "BoundaryGroup":
        cls = _boundary_group_class()
        globals()["BoundaryGroup"] = cls
        return cls
    raise AttributeError(name)


def run_cli(group, args: list[str] | None = None, prog_name: str | None = None) -> None:
    """Run a click group behind the error boundary; always ends with ``SystemExit``.

    ``--debug`` anywhere on the command line is taken out and shows the traceback of an
    unexpected error.
    """
    prog = prog_name or os.path.basename(sys.argv[0] or "") or None
    if getattr(group, "is_boundary", False):
        group.main(args=args, prog_name=prog)  # the boundary itself; ends in SystemExit
    argv, debug = _split_debug(args)
    _guarded(lambda: group.main(args=argv, prog_name=prog, standalone_mode=False), debug)
