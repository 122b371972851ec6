"""Syntax highlighting for .arch: the Pygments lexer (archspec/views/highlight.py) lexes every
shipped spec without an error token, gives the expected token classes, is found by pygments
through its entry point; the VS Code TextMate grammar is well-formed."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, SPECS

pygments = pytest.importorskip("pygments")

from pygments.token import (  # noqa: E402
    Comment,
    Error,
    Keyword,
    Name,
    Number,
    Operator,
    String,
    _TokenType,
)

from archspec.views.highlight import ArchLexer  # noqa: E402

SPEC_FILES = sorted(SPECS.rglob("*.arch"))
GRAMMAR = ROOT / "editors" / "vscode" / "syntaxes" / "archspec.tmLanguage.json"

SMALL = """\
# a small net
import "blocks/resnet.arch"
network tiny(num_classes: int = 10, width: float = 1.5e-1)
input x: 3x224x224
output logits, aux if num_classes > 2
init conv2d: kaiming_normal(mode="fan_out")
block unit(c: int, s: int = in.channels // 2) {
    conv: conv2d(c, 3, stride=s, padding=1, bias=false)
    relu
}
stem{1}: unit(8) -> repeat 2 as i { stage{i + 1}: unit(16 * 2 ** i) }
for n, c in [[1, 8]] { if n != 0 and not false { unit(c) } else { identity } }
residual { block: unit(8) } shortcut if true { conv2d(8, 1) }
a, b = chunk(2)(stem1.0)
y = concat(a, b) -> flatten
aux = linear(num_classes)(y)
logits = linear(num_classes)(y)
"""


def _lex(text: str) -> list[tuple[_TokenType, str]]:
    return list(ArchLexer(stripnl=False, ensurenl=False).get_tokens(text))


def _types(text: str) -> dict[str, set[_TokenType]]:
    """Each token value's types in ``text``."""
    out: dict[str, set[_TokenType]] = {}
    for ttype, value in _lex(text):
        out.setdefault(value, set()).add(ttype)
    return out


def test_the_specs_are_there() -> None:
    assert len(SPEC_FILES) > 50
    assert any(p.parent.name == "blocks" for p in SPEC_FILES)


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.relative_to(SPECS).as_posix())
def test_every_spec_lexes_without_error_and_round_trips(path: Path) -> None:
    text = path.read_text("utf-8")
    tokens = _lex(text)
    errors = [value for ttype, value in tokens if ttype in Error]
    assert not errors, f"{path}: error tokens {errors[:10]}"
    assert "".join(value for _, value in tokens) == text
    # The raw stream (no newline normalisation) covers the text too, offsets in order.
    offset = 0
    for start, _, value in ArchLexer().get_tokens_unprocessed(text):
        assert start == offset
        offset += len(value)
    assert offset == len(text)


def test_token_classes_of_a_small_spec() -> None:
    types = _types(SMALL)

    def only(value: str, expected: _TokenType) -> None:
        assert types[value] == {expected}, (value, types[value])

    only("# a small net", Comment.Single)
    only("network", Keyword.Declaration)
    for kw in ("network", "input", "output", "init", "block", "import"):
        assert any(t in Keyword for t in types[kw]), kw
    for kw in ("repeat", "as", "for", "if", "else", "residual", "shortcut", "concat"):
        assert any(t in Keyword for t in types[kw]), kw
    only("false", Keyword.Constant)
    only("true", Keyword.Constant)
    only("and", Operator.Word)
    only("not", Operator.Word)
    only("3x224x224", Number.Shape)
    assert Number.Shape in Number
    only("10", Number.Integer)
    only("1.5e-1", Number.Float)
    only('"blocks/resnet.arch"', String.Double)
    only('"fan_out"', String.Double)
    only("conv2d", Name.Function)
    only("relu", Name.Function)
    only("flatten", Name.Function)
    only("kaiming_normal", Name.Function)
    only("chunk", Name.Function)
    only("tiny", Name.Class)
    assert Name.Label in types["conv"] and Name.Label in types["stage"]
    assert Name.Label in types["block"]  # a keyword as a label
    assert Name.Variable in types["a"] and Name.Variable in types["logits"]
    assert {Name.Variable, Name} == types["num_classes"]  # a parameter, then read
    only("int", Keyword.Type)
    only("stride", Name.Attribute)
    only("channels", Name.Attribute)
    assert Name.Builtin.Pseudo in types["in"] and Keyword in types["in"]
    for op in ("->", "**", "//", "!=", ">", "="):
        assert all(t in Operator for t in types[op]), op


def test_labels_and_targets_only_at_a_statement_start() -> None:
    tokens = [(t, v) for t, v in _lex("block b(x: int) { y: relu; z = add(in, in) }\n")
              if v.strip()]
    assert (Name.Variable, "x") in tokens  # a parameter, not a label
    assert (Keyword.Type, "int") in tokens
    assert (Name.Label, "y") in tokens
    assert (Name.Variable, "z") in tokens
    assert (Name.Function, "add") in tokens
    # Keyword arguments are not DAG targets, even on a continuation line.
    tokens = _lex("conv2d(8, 3,\n       stride=2)\n")
    assert (Name.Attribute, "stride") in tokens


def test_builtins_match_the_evaluator() -> None:
    from archspec.lang.exprs import BUILTINS
    from archspec.views import highlight

    assert set(highlight._BUILTINS) == set(BUILTINS)


def test_invalid_characters_are_errors() -> None:
    assert any(t in Error for t, _ in _lex("conv1: conv2d(8, $)\n"))


def test_pygments_finds_the_lexer_by_file_name_and_alias() -> None:
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_for_filename("net.arch")
    except ClassNotFound:
        pytest.skip("the pygments.lexers entry point is not installed: "
                    "pip install -e . to register archspec.views.highlight:ArchLexer")
    assert type(lexer).__name__ == "ArchLexer"
    assert type(get_lexer_by_name("archspec")).__name__ == "ArchLexer"
    assert type(get_lexer_by_name("arch")).__name__ == "ArchLexer"


# Oniguruma syntax Python's re lacks (or reads otherwise): \h, \G, \K, \z, \k<name>, \p{...},
# absence operators, possessive quantifiers. The grammar keeps to the common subset.
_ONIGURUMA_ONLY = re.compile(r"\\[hHGKzZ]|\\k<|\\p\{|\(\?~|[*+?]\+")


def _regexes(node: object, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("match", "begin", "end") and isinstance(value, str):
                yield f"{path}/{key}", value
            else:
                yield from _regexes(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _regexes(value, f"{path}/{i}")


def test_textmate_grammar_is_valid() -> None:
    grammar = json.loads(GRAMMAR.read_text("utf-8"))
    assert grammar["scopeName"] == "source.archspec"
    regexes = list(_regexes(grammar))
    assert len(regexes) > 20
    compiled = skipped = 0
    for where, pattern in regexes:
        if _ONIGURUMA_ONLY.search(pattern):
            skipped += 1
            continue
        try:
            re.compile(pattern)
        except re.error as exc:
            pytest.fail(f"{where}: {pattern!r}: {exc}")
        compiled += 1
    assert compiled >= 0.9 * len(regexes), (compiled, skipped)
    # Every include names a repository entry.
    names = set(grammar["repository"])
    includes = {v for _, v in _includes(grammar)}
    assert {i[1:] for i in includes if i.startswith("#")} <= names


def _includes(node: object) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "include":
                yield key, value
            else:
                yield from _includes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _includes(value)


def test_vscode_extension_manifest() -> None:
    folder = GRAMMAR.parent.parent
    manifest = json.loads((folder / "package.json").read_text("utf-8"))
    (language,) = manifest["contributes"]["languages"]
    assert language["id"] == "archspec" and language["extensions"] == [".arch"]
    (grammar,) = manifest["contributes"]["grammars"]
    assert grammar["scopeName"] == "source.archspec"
    assert (folder / grammar["path"]).resolve() == GRAMMAR.resolve()
    config = json.loads((folder / language["configuration"]).read_text("utf-8"))
    assert config["comments"]["lineComment"] == "#"
    settings = manifest["contributes"]["configuration"]["properties"]
    assert settings["archspec.server.path"]["default"] == "archspec"
    assert "vscode-languageclient" in manifest["dependencies"]
    assert (folder / manifest["main"]).is_file()
