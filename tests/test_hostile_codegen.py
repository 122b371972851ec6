"""Hostile names cannot run code through generated source (issue 9, safe code generation).

Each spec below carries a payload that would create the file ``PWNED`` in the working folder
if any name reached generated Python unescaped. The ejected file is written, imported and
run; the fx module is built and run; both must compute the same function and leave no mark.
Names that PyTorch cannot hold are refused with a located error instead.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest
import torch
from test_errors import run_cli

import archspec
from archspec.backends.eject import docstring, eject
from archspec.lang.diagnostics import ArchspecError
from archspec.lang.expander import expand
from archspec.lang.network import Graph
from archspec.views.diagram import dot, dot_string, folded, mermaid, mermaid_text

PAYLOAD = "__import__('os').system('touch PWNED')"
UNDOTTED = "getattr(__import__('os'), 'system')('touch PWNED')"  # for a file stem or a label
QUOTE = 'str(["\'"])[1]'  # a `"` made in the spec language, whose strings cannot hold one

HOSTILE_TEXT = ['"""', "'''", '"', "a\\", "x\ny", "a\r\nb", "\u2028", "\x00", "\x1b[2J",
                f'""" + {PAYLOAD} + """', f"\\\"\"\"\n{PAYLOAD}\n#"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own folder, where a payload would leave ``PWNED``."""
    monkeypatch.chdir(tmp_path)


def _import(source: str, path: Path) -> ModuleType:
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _assert_safe_and_same(spec: archspec.lang.ir.Spec, tmp_path: Path) -> str:
    """Import and run the ejected source and the fx module; both equal, nothing run."""
    source = eject(spec)
    compiled = archspec.to_torch(spec).eval()
    ejected = _import(source, tmp_path / "ejected.py").build().eval()
    ejected.load_state_dict(compiled.state_dict(), strict=True)
    xs = [torch.randn(1, *shape) for shape in expand(spec).inputs.values()]
    with torch.no_grad():
        torch.testing.assert_close(ejected(*xs), compiled(*xs))
    assert not (tmp_path / "PWNED").exists()
    return source


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_docstring_holds_any_text(text: str) -> None:
    """The one docstring escape: any text reads back exactly and stays one statement."""
    text_lines = [f"Network `{text}`.", "", text]
    module = ast.parse("\n".join(docstring(text_lines)) + "\nx = 1\n")
    assert len(module.body) == 2
    assert ast.get_docstring(module, clean=False) == "\n".join(text_lines)
    method = ast.parse("class C:\n" + "\n".join(docstring(text_lines, 4)) + "\n    x = 1\n")
    assert len(method.body) == 1 and len(method.body[0].body) == 2


def test_hostile_labels_run_nothing(tmp_path: Path) -> None:
    """Labels from template holes that close a string or a call in naive source are written
    as ``repr`` s: ejected and fx modules run, equal, and run no payload."""
    spec = archspec.loads(f"""network hostile
input x: 3x8x8
g{{"x'); {UNDOTTED}; ('"}}: conv2d(4, 3, padding=1)
stage{{" # ') ("}}: {{ a{{"'; {UNDOTTED} #"}}: relu; b{{"é"}}: conv2d(4, 1) }}
g{{"'''" + " + {UNDOTTED} + " + "'''"}}: relu
""")
    source = _assert_safe_and_same(spec, tmp_path)
    assert "add_module(\"gx'); getattr(__import__('os')" in source


@pytest.mark.parametrize("hole", [
    QUOTE,
    f'{QUOTE} * 3 + " + {UNDOTTED} + " + {QUOTE} * 3 + ".x"',
    f'{QUOTE} + ", {UNDOTTED} or " + {QUOTE}',
    '"a\\"', '"ﬁ"', '"x.."'])
def test_labels_generated_code_cannot_hold_are_located_errors(hole: str, tmp_path: Path) -> None:
    """A quote, a backslash, an empty part or a name Python would normalise (``ﬁ`` reads as
    ``fi``) cannot reach fx's ``getattr(self, "...")``: both backends refuse it at the layer,
    and nothing ran."""
    spec = archspec.loads(f"network odd\ninput x: 3x8x8\ng{{{hole}}}: relu\n")
    for backend in (archspec.to_torch, eject):
        with pytest.raises(ArchspecError) as info:
            backend(spec)
        assert info.value.diagnostic.code == "E504" and info.value.diagnostic.span.line == 3
    assert not (tmp_path / "PWNED").exists()


HOSTILE_YAML = f"""network: "t\\"\\"\\" + {PAYLOAD} + \\"\\"\\"\\n\\\\"
inputs:
  "x=__import__('os').system('touch PWNED')": 3x8x8
  "self": 3x8x8
  "class": 3x8x8
  "\U0001d42celf": 3x8x8
  "y\\"\\"\\"\\n{PAYLOAD}\\n": 3x8x8
blocks:
  "b\\"\\"\\"\\n{PAYLOAD}":
    body: [relu]
body:
  - "conv: conv2d(4, 3, padding=1)"
  - relu
"""


def test_hostile_yaml_names_are_refused(tmp_path: Path) -> None:
    """YAML network, input and block names are names, as in the .arch grammar: a payload in
    one is a located error (E153) before anything is generated from it."""
    (tmp_path / "h.yaml").write_text(HOSTILE_YAML, encoding="utf-8")
    with pytest.raises(ArchspecError) as info:
        archspec.load(tmp_path / "h.yaml")
    assert info.value.diagnostics[0].code == "E153"


def test_hostile_file_name_runs_nothing(tmp_path: Path) -> None:
    """A spec file name is never written into the source; a YAML spec without `network`
    takes its name from the file, which reaches docstrings only escaped."""
    name = f'n""" + {UNDOTTED} + """'
    path = tmp_path / f"{name}.yaml"
    path.write_text("inputs: {x: 3x8x8}\nbody: [relu]\n", encoding="utf-8")
    spec = archspec.load(path)
    assert spec.name == name
    source = _assert_safe_and_same(spec, tmp_path)
    assert ".yaml" not in source


def test_compile_writes_no_file_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`archspec compile` of a spec whose file name would close the module docstring: the
    name is not in the source, which imports and runs without running the payload."""
    path = tmp_path / f'n""" + {UNDOTTED} + """.arch'
    path.write_text("network n\ninput x: 3x8x8\nconv: conv2d(4, 3)\n", encoding="utf-8")
    code, source, _ = run_cli(["compile", str(path)], capsys)
    assert code == 0 and "touch" not in source and ".arch" not in source
    _import(source, tmp_path / "ejected.py").build()(torch.randn(1, 3, 8, 8))
    assert not (tmp_path / "PWNED").exists()


# --------------------------------------------------------------------------- archspec graph
HOSTILE_NAMES = ['x"; evil [label="pwn', "a\\", "<img src=x onerror=alert(1)>", "p|q -->", 'b"]',
                 "%%{init: {}}%%", "#quot;", "x\ny", "\x1b[2J", "\\N\\G"]
LABEL_MARKUP = "<b>|'#%"
_DOT_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_DOT_LINES = [re.compile(p) for p in (r"digraph S \{", r"  rankdir=TB;",
                                      r"  node \[shape=box, fontsize=10\];",
                                      r"(  )+n\d+ \[label=S\];",
                                      r"(  )+subgraph cluster_\d+ \{",
                                      r"(  )+label=S; style=rounded; color=gray60;",
                                      r"  n\d+ -> n\d+ \[label=S, fontsize=8\];", r"(  )*\}")]
_MERMAID_TEXT = r'(?:[A-Za-z0-9 _\-.,:/()\[\]+*=]|#\d+;)*'
_MERMAID_LINES = [re.compile(p) for p in (
    "flowchart TD", rf'  n\d+\["{_MERMAID_TEXT}(?:<br/>{_MERMAID_TEXT})*"\]',
    rf"  n\d+ -->\|{_MERMAID_TEXT}\| n\d+")]


def _hostile_graph() -> Graph:
    """A network whose name and input names are :data:`HOSTILE_NAMES` (specs refuse such
    names, E153; a graph built through the Python API can hold them), with a layer labelled
    by a template hole holding markup (labels cannot hold a quote: E504)."""
    plain = [f"in{i}" for i in range(len(HOSTILE_NAMES))]
    inputs = "".join(f"  {name}: 3x8x8\n" for name in plain)
    text = (f"network: n\ninputs:\n{inputs}body:\n"
            f"  - {json.dumps('g{' + json.dumps(LABEL_MARKUP) + '}: relu')}\n")
    graph = expand(archspec.loads(text, format="yaml"))
    rename = dict(zip(plain, HOSTILE_NAMES, strict=True))
    graph.name = " ".join(HOSTILE_NAMES)
    graph.inputs = {rename[k]: v for k, v in graph.inputs.items()}
    graph.nodes = {k: dataclasses.replace(n, inputs=tuple(rename.get(i, i) for i in n.inputs))
                   for k, n in graph.nodes.items()}
    return graph


def test_dot_keeps_every_name_inside_its_quoted_string() -> None:
    """Every line of the DOT text is one of the fixed forms once its quoted strings are taken
    out (no name adds a statement, an attribute or a line), and the strings read back."""
    graph = _hostile_graph()
    text = dot(graph, None)
    for line in text.split("\n"):
        assert any(p.fullmatch(_DOT_STRING.sub("S", line)) for p in _DOT_LINES), line
    strings = [re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), s[1:-1])
               for s in _DOT_STRING.findall(text)]
    for name in HOSTILE_NAMES:
        if "\x1b" not in name:  # written as visible `\x1b` text
            assert f"{name}\ninput 3x8x8" in strings, name
    assert f"g{LABEL_MARKUP}\nrelu 3x8x8" in strings
    g = folded(graph, None)
    clusters = text.count("subgraph cluster_")
    assert len(text.split("\n")) == 4 + 3 * clusters + g.number_of_nodes() + g.number_of_edges()


def test_mermaid_writes_names_as_entity_codes_only() -> None:
    """Mermaid labels hold no raw quote, bar, `<`, `#`, `%` or line break: every character
    outside a small plain set is an entity code, and decoding gives the names back."""
    text = mermaid(_hostile_graph(), None)
    for line in text.split("\n"):
        assert any(p.fullmatch(line) for p in _MERMAID_LINES), line
    decoded = re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), text)
    for name in HOSTILE_NAMES:
        assert f'["{name}<br/>input 3x8x8"]' in decoded, name
    assert f"g{LABEL_MARKUP}<br/>relu" in decoded


def test_graph_escapes_are_the_one_function_per_target() -> None:
    """The DOT and Mermaid escapes on their own: quotes, backslashes, line breaks."""
    assert dot_string('a"b\\c\nd\x1b') == '"a\\"b\\\\c\\nd\\\\x1b"'
    assert mermaid_text('a"<b>|#') == "a#34;#60;b#62;#124;#35;"


@pytest.mark.parametrize("hole", [QUOTE, '"a\\\\"', '"a.b"', '"\x1b[2J"'])
def test_check_refuses_what_the_backends_cannot_name(hole: str) -> None:
    """What `check` accepts, compile and export accept: a label no backend can hold is already
    a located error when the spec is expanded."""
    spec = archspec.loads(f"network odd\ninput x: 3x8x8\ng{{{hole}}}: relu\n")
    with pytest.raises(ArchspecError) as info:
        expand(spec)
    assert info.value.diagnostic.code == "E504" and info.value.diagnostic.span.line == 3


@pytest.mark.parametrize("doc", [
    'network: t\ninputs:\n  "x: [8, 4]\\nlinear(7)\\n#": [8, 4]\nbody:\n- linear(4)\n',
    'network: "t\\"\\"\\"\\nx"\ninputs: {x: [4]}\nbody:\n- linear(4)\n',
    "network: t\ninputs: {x: [4]}\nblocks:\n  \"b(\\n\": {body: [relu]}\nbody:\n- relu\n",
    'network: t\nparams:\n  "n = 1)\\nlinear(9": {default: 1}\ninputs: {x: [4]}\nbody:\n- relu\n',
])
def test_yaml_names_cannot_inject_statements_into_the_text_form(doc: str) -> None:
    """A YAML network, input, block or parameter name is a name, as in the text form: else
    `convert --to arch` would write it verbatim and change the spec (E153, located)."""
    with pytest.raises(archspec.ArchspecError) as info:
        archspec.loads(doc, format="yaml")
    assert [d.code for d in info.value.diagnostics] == ["E153"]


def test_a_torch_rule_naming_code_outside_torch_is_refused(monkeypatch) -> None:
    """An op (a plugin's, say) whose torch rule names `os.system` is a located E502 in both
    `compile` (eject) and `to_torch`: nothing outside torch, operator, builtins, archspec's
    helpers and the plugin's own package is imported or written by name."""
    from archspec.ops import REGISTRY, Function

    evil = dataclasses.replace(REGISTRY["relu"], name="evil_relu", aliases=(),
                               torch=lambda ctx: Function("os.system"))
    monkeypatch.setitem(REGISTRY, "evil_relu", evil)
    spec = archspec.loads("network t\ninput x: [4]\ny: evil_relu\n")
    for build in (eject, archspec.to_torch):
        with pytest.raises(ArchspecError) as info:
            build(spec)
        assert [(d.code, d.span.line) for d in info.value.diagnostics] == [("E502", 3)]
