"""The one error boundary: any exception is one line and a non-zero exit; --debug shows more."""

from __future__ import annotations

import click
import pytest

from ecg_edge.firmware_bridge.errors import BoundaryGroup, UserError, run_cli


@click.group(cls=BoundaryGroup)
def demo() -> None:
    pass


@demo.command()
@click.argument("what")
def fail(what: str) -> None:
    if what == "user":
        raise UserError("the file is empty; give a recording")
    if what == "value":
        raise ValueError("bad\nnumber")
    raise KeyError("a bug")


@pytest.mark.parametrize("what, code, line", [
    ("user", 2, "error: the file is empty; give a recording"),
    ("value", 2, "error: ValueError: bad number"),
    ("bug", 1, "error: internal error (KeyError: 'a bug'); run again with --debug"),
])
def test_any_exception_is_one_line_and_a_non_zero_exit(capsys, what, code, line):
    with pytest.raises(SystemExit) as done:
        run_cli(demo, ["fail", what], "demo")
    err = capsys.readouterr().err
    assert done.value.code == code
    assert err.strip().splitlines() == [err.strip()] and err.startswith(line)
    assert "Traceback" not in err


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(SystemExit) as done:
        run_cli(demo, ["--debug", "fail", "bug"], "demo")
    err = capsys.readouterr().err
    assert done.value.code == 1 and "Traceback" in err and "KeyError" in err
