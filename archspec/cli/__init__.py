"""The command line: thin wrappers that parse options, call the API and render diagnostics.

Exit codes: 0 success (warnings allowed unless --strict), 1 spec errors, 2 usage errors,
3 internal errors (a bug in archspec: rerun with --debug for the traceback).

The commands live one module per group: :mod:`~archspec.cli.static` (check, expand, graph,
diff, sweep, convert: never torch), :mod:`~archspec.cli.build` (compile, export, bench),
:mod:`~archspec.cli.training` (train, eval), :mod:`~archspec.cli.reference` (ops, specs,
errors) and :mod:`~archspec.cli.editor` (fmt, lsp); :mod:`~archspec.cli.options` holds the
options they share and :mod:`~archspec.cli.messages` what they print to stderr. This module
holds the group and :func:`main`, which turns every failure into its exit code.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from archspec.cli.messages import say, show_click_error
from archspec.cli.options import CONTEXT
from archspec.lang.diagnostics import MAX_ERRORS, ArchspecError
from archspec.lang.extras import MissingExtra

__all__ = ["cli", "main"]


# Each command by name: its module in archspec/cli/ and the function there. A module is
# imported when one of its commands runs (or the commands are listed), so that `check` loads
# neither the build nor the training commands.
COMMANDS = {
    "check": ("static", "check"), "expand": ("static", "expand"), "graph": ("static", "graph"),
    "diff": ("static", "diff"), "sweep": ("static", "sweep"), "convert": ("static", "convert"),
    "compile": ("build", "compile_"), "export": ("build", "export"), "bench": ("build", "bench"),
    "train": ("training", "train"), "eval": ("training", "eval_"),
    "import": ("importing", "import_"), "ops": ("reference", "ops"),
    "specs": ("reference", "specs"), "errors": ("reference", "errors"),
    "schema": ("schema", "schema"), "fmt": ("editor", "fmt"), "lsp": ("editor", "lsp"),
}


class Commands(click.Group):
    """The group of :data:`COMMANDS`, each imported when it is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:  # suggest from every name, not loaded ones
            raise click.exceptions.NoSuchCommand(exc.command_name, possibilities=COMMANDS,
                                                 ctx=ctx) from None

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name]
        command: click.Command = getattr(importlib.import_module(f"archspec.cli.{module}"), attr)
        return command


@click.group(cls=Commands, context_settings=CONTEXT)
@click.version_option(package_name="archspec")
def cli() -> None:
    """archspec: neural-network architectures as declarative specs.

    \b
    Analyse a spec without running it:   archspec check specs/googlenet.arch
    See what blocks and repeats made:    archspec expand specs/resnet18.arch
    Draw it (svg, png, html, dot, mmd):  archspec graph specs/resnet18.arch -o r18.html
    Convert between text and YAML:       archspec convert specs/vgg16.arch --to yaml
    Compare two specs:                   archspec diff specs/resnet18.arch specs/resnet34.arch
    Sweep values (every combination):    archspec sweep SPEC --set width=0.5,1 --set depth=18,34
    Eject PyTorch source:                archspec compile specs/resnet18.arch -o model.py
    Train (built-in data, or --data):    archspec train specs/classic/lenet5_1998.arch
    Score trained weights:               archspec eval SPEC --weights best.pt --data DIR
    Export to ONNX:                      archspec export specs/resnet18.arch -o r18.onnx
    Import a model (runs Python code):   archspec import torchvision.models:resnet18 -o r18.arch
    Time torch against onnxruntime:      archspec bench specs/resnet18.arch
    List the layer kinds:                archspec ops
    List the shipped specs:              archspec specs
    Lay out .arch files canonically:     archspec fmt specs/
    Serve editors (language server):     archspec lsp
    """



def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI, render ArchspecError as diagnostics (exit 1).

    Everything printed here is passed through :func:`printable`: click's messages and
    exception texts may quote a spec's name or content.
    """
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    # pydantic scans every installed distribution for its own plugins when it builds the first
    # validator (tens of ms at each start, for plugins archspec never uses); a user who sets
    # the variable keeps their choice.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        cli.main(args=args, prog_name="archspec", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        show_click_error(exc)
        sys.exit(exc.exit_code)
    except MissingExtra as exc:
        click.echo(exc.diagnostic.render(), err=True)
        sys.exit(2)
    except ArchspecError as exc:
        if debug:
            raise
        for d in exc.diagnostics:
            click.echo(d.render(), err=True)
        if len(exc.diagnostics) >= MAX_ERRORS:
            click.echo(f"error: stopped after {MAX_ERRORS} errors", err=True)
        sys.exit(1)
    except (KeyboardInterrupt, BrokenPipeError):
        sys.exit(130)
    except OSError as exc:  # the machine's doing (disk full, no permission), not the spec's
        if debug:
            raise
        say(f"error: cannot write: {exc}")
        sys.exit(1)
    except Exception as exc:
        if debug:
            raise
        say(f"internal error: {type(exc).__name__}: {exc}\n"
            "this is a bug in archspec; rerun with --debug for the traceback")
        sys.exit(3)
