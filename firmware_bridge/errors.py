"""The one exception type every command turns into a one-line message and a non-zero exit.

It lives in the lowest package so that device/, train/ and convert/ can all raise and catch
the same type without importing each other's internals.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input the user can fix: the message says what is wrong and what to do."""


class RecordError(UserError):
    """A recording or annotation file is missing, empty or malformed."""


def run_cli(group, args: list[str] | None = None) -> None:
    """Run a click group so bad input ends in one line on stderr and exit status 2."""
    import click

    try:
        group.main(args=args, standalone_mode=False)
    except click.exceptions.Abort:
        raise SystemExit(130) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except (UserError, ValueError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
