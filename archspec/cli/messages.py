"""What the commands print to standard error besides their output: the warnings of a spec,
messages escaped for the terminal, click's usage errors, and runtime failures turned into
exit 1 (see the exit codes in :mod:`archspec.cli`)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import click

from archspec.lang.diagnostics import Diagnostic, printable


def warn(diags: list[Diagnostic]) -> None:
    """Print each diagnostic (a spec's warnings) to stderr."""
    for d in diags:
        click.echo(d.render(), err=True)


def say(text: str) -> None:
    """Print ``text`` to stderr with everything a terminal would act on escaped."""
    click.echo("\n".join(printable(line) for line in text.split("\n")), err=True)


def tell(text: str) -> None:
    """Print a result (``train``'s epochs and scores) to stdout, escaped as :func:`say` does;
    progress bars and warnings go to stderr."""
    click.echo("\n".join(printable(line) for line in text.split("\n")))


def show_click_error(exc: click.ClickException) -> None:
    """Print a click error (usage, bad parameter) as click would, escaped by :func:`say`."""
    buffer = io.StringIO()
    exc.show(file=buffer)
    say(buffer.getvalue().rstrip("\n"))


def exit_1_on_runtime_error(debug: bool, fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn``; a runtime problem exits 1 with its message (a missing optional package is
    a :class:`MissingExtra`, which exits 2 naming the extra)."""
    try:
        return fn(*args)
    except RuntimeError as exc:
        if debug:
            raise
        raise click.ClickException(str(exc)) from None
