"""The commands for editors: ``fmt`` (the canonical layout of ``.arch`` files) and ``lsp`` (a
language server over stdio). Neither imports torch or onnx."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from archspec.cli.messages import say
from archspec.cli.options import CONTEXT, debug_option
from archspec.lang.diagnostics import ArchspecError, Diagnostic


def arch_files(paths: tuple[str, ...]) -> list[Path]:
    """The ``.arch`` files ``paths`` name: each file as given, each folder's ``*.arch`` files at
    any depth (sorted; hidden folders and links to folders are not entered)."""
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if not path.is_dir():
            if path.suffix.lower() in (".yaml", ".yml"):
                raise click.BadParameter(f"{text}: fmt lays out .arch files; a YAML spec keeps "
                                         "its own layout", param_hint="PATH")
            found.append(path)
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [Path(root) / f for f in sorted(files) if f.endswith(".arch")]
    return found


@click.command(context_settings=CONTEXT)
@click.argument("paths", metavar="PATH...", nargs=-1, required=True,
                type=click.Path(allow_dash=True))
@click.option("--check", is_flag=True,
              help="Change nothing; exit 1 naming each file that would change.")
@debug_option
def fmt(paths: tuple[str, ...], check: bool, debug: bool) -> None:
    """Lay out .arch files canonically, in place (files, or folders of them); `-` formats
    standard input to standard output.

    Only spaces, indentation and blank lines change: comments, line breaks and what the spec
    means are kept (the result parses to the same IR). A file that does not parse is left as
    it is and its errors are shown.

    \b
    Examples:
      archspec fmt specs/
      archspec fmt --check specs/ my_net.arch
      cat net.arch | archspec fmt - > tidy.arch
    """
    from archspec.files.atomic import write_atomic
    from archspec.lang.syntax.formatter import format_source
    from archspec.lang.syntax.loader import read_source, source_from_bytes

    if paths == ("-",):
        source = source_from_bytes("<stdin>", sys.stdin.buffer.read())
        click.echo(format_source(source), nl=False)
        return
    errors: list[Diagnostic] = []
    changed = 0
    files = arch_files(paths)
    for path in files:
        try:
            source = read_source(path)
            text = format_source(source)
        except ArchspecError as exc:
            errors += exc.diagnostics
            continue
        if text == source.text:
            continue
        changed += 1
        if check:
            say(f"would reformat {source.name}")
        else:
            write_atomic(path, text)
            say(f"reformatted {source.name}")
    verb = "would be reformatted" if check else "reformatted"
    say(f"{changed} file(s) {verb}, {len(files) - changed - len({d.span.file for d in errors})}"
        " unchanged" + (f", {len({d.span.file for d in errors})} with errors" if errors else ""))
    if errors:
        raise ArchspecError(errors)
    if check and changed:
        sys.exit(1)


@click.command(context_settings=CONTEXT)
@debug_option
def lsp(debug: bool) -> None:
    """Serve the Language Server Protocol over standard input and output, for .arch and YAML
    specs: diagnostics as you type, hover, inlay shape hints, go to definition, symbols,
    completion and formatting. Editors start it themselves (docs/editors.md).

    Needs pygls (pip install 'archspec[lsp]').
    """
    import importlib.util

    from archspec.lang.extras import MissingExtra

    if importlib.util.find_spec("pygls") is None:
        raise MissingExtra(Diagnostic("E010", "`archspec lsp` needs pygls (not installed)",
                                      hint="pip install 'archspec[lsp]'"))
    from archspec.editor.server import serve

    serve()
