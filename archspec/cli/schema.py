"""``archspec schema``: the JSON Schema of the YAML form, for editors (docs/editors.md). It
reads no spec; the schema comes from :mod:`archspec.views.schema`."""

from __future__ import annotations

import click

from archspec.cli.options import CONTEXT


@click.command(context_settings=CONTEXT)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the schema to this file (atomically) instead of printing it.")
def schema(output: str | None) -> None:
    """Print the JSON Schema (draft 2020-12) of YAML specs, for an editor's YAML support.

    \b
    Examples:
      archspec schema -o archspec.schema.json
      archspec schema | python -m json.tool
    See docs/editors.md for VS Code and Neovim.
    """
    from archspec.files.atomic import write_atomic
    from archspec.views.schema import schema_text

    if output is None:
        click.echo(schema_text(), nl=False)
        return
    write_atomic(output, schema_text())
    click.echo(f"wrote {output}", err=True)
