"""The reference commands, which read no spec: ``ops`` (the layer kinds), ``specs`` (the
shipped library) and ``errors`` (the diagnostic codes). What they print comes from
:mod:`archspec.views.catalogue`, :mod:`archspec.views.ops_reference` and
:mod:`archspec.views.library`."""

from __future__ import annotations

import click

from archspec.cli.options import CONTEXT


@click.command(context_settings=CONTEXT)
@click.argument("name", required=False)
@click.option("--markdown", is_flag=True, help="Print the whole reference as Markdown.")
def ops(name: str | None, markdown: bool) -> None:
    """List the layer kinds, or show one op's signature and rules."""
    from archspec.lang.plugins import lookup
    from archspec.views.catalogue import op_entry, op_lines
    from archspec.views.ops_reference import markdown as reference

    if markdown:
        click.echo(reference())
    elif name:
        op = lookup(name)
        if op is None:
            raise click.BadParameter(f"unknown op {name!r}", param_hint="NAME")
        click.echo(op_entry(op))
    else:
        for line in op_lines():
            click.echo(line)


@click.command(context_settings=CONTEXT)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def specs(fmt: str) -> None:
    """List the specs shipped with archspec, with params and MACs (torchvision convention).

    \b
    Import their blocks from any folder:  import "std/blocks/resnet.arch"
    Check one by its name:                archspec check std/resnet18.arch
    """
    from archspec.views.library import as_json, as_table

    click.echo(as_json() if fmt == "json" else as_table())


@click.command(context_settings=CONTEXT)
@click.argument("code", required=False)
@click.option("--markdown", is_flag=True, help="Print the table as Markdown (docs/errors.md).")
def errors(code: str | None, markdown: bool) -> None:
    """List the diagnostic codes, or say what one code means.

    \b
    Examples:
      archspec errors E302
      archspec errors --markdown > docs/errors.md
    """
    from archspec.lang.diagnostics import CODES, codes_markdown
    from archspec.views.catalogue import code_entry, code_lines

    if markdown:
        click.echo(codes_markdown(), nl=False)
    elif code:
        if code.upper() not in CODES:
            raise click.BadParameter(f"unknown code {code!r}; `archspec errors` lists them",
                                     param_hint="CODE")
        click.echo(code_entry(code.upper()))
    else:
        for line in code_lines():
            click.echo(line)
