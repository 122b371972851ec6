"""`archspec schema`: the JSON Schema of the YAML form. Every shipped spec, written as YAML,
validates; documents the YAML reader refuses (an unknown key at the top or in a structure, a
misplaced structure) are refused by the schema too, and documents it reads are accepted; the
schema follows the form's vocabulary constants, so a new key cannot go unnoticed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, SPECS
from test_errors import run_cli

import archspec
from archspec.lang.syntax import yaml_form
from archspec.views import schema as schema_module
from archspec.views.schema import yaml_schema

jsonschema = pytest.importorskip("jsonschema")

SHIPPED = sorted(SPECS.rglob("*.arch"))


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = yaml_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator: Any, text: str) -> list[str]:
    return [e.message for e in validator.iter_errors(yaml.safe_load(text))]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(SPECS)))
def test_every_shipped_spec_as_yaml_validates(validator, path: Path) -> None:
    text = yaml_form.to_yaml(archspec.load(path))
    assert _errors(validator, text) == []


HEAD = "network: n\ninputs: {x: 3x8x8}\n"
# Documents the reader refuses for their structure, each with the text its error names.
REFUSED = {
    "unknown top key": (HEAD + "layers: [relu]\n", "unknown key `layers`"),
    "unknown concat key": (HEAD + "body:\n  - {concat: [relu, relu], axis: 1}\n",
                           "unknown key `axis`"),
    "unknown residual key": (HEAD + "body:\n  - {residual: [relu], short: [relu]}\n",
                             "unknown key `short`"),
    "unknown repeat key in a label": (HEAD + "body:\n  - r: {repeat: 2, body: [relu], n: 1}\n",
                                      "unknown key `n`"),
    "unknown for key": (HEAD + "body:\n  - {for: i, in: [1, 2], body: [relu], step: 1}\n",
                        "unknown key `step`"),
    "repeat without a body": (HEAD + "body:\n  - r: {repeat: 2}\n", "needs a `body`"),
    "for without in": (HEAD + "body:\n  - {for: i, body: [relu]}\n", "needs `in` and `body`"),
    "if without then": (HEAD + "body:\n  - {if: true, else: [relu]}\n", "needs `then`"),
    "a chain as a statement": (HEAD + "body:\n  - {chain: [relu, relu]}\n", "error"),
    "a for inside a chain": (HEAD + "body:\n  - c: {chain: [{for: i, in: [1], body: [relu]}]}\n",
                             "expected a layer string or a structure"),
    "two labels in one item": (HEAD + "body:\n  - {a: relu, b: relu}\n", "exactly one key"),
    "unknown block key": (HEAD + "blocks:\n  b: {body: [relu], layers: [relu]}\nbody: [b]\n",
                          "unknown key `layers`"),
    "block without a body": (HEAD + "blocks:\n  b: {params: {c: {type: int}}}\nbody: [b]\n",
                             "has no `body`"),
    "unknown parameter key": ("network: n\nparams: {w: {type: int, min: 1}}\ninputs: {x: 3}\n",
                              "unknown key `min`"),
    "unknown parameter type": ("network: n\nparams: {w: {type: integer}}\ninputs: {x: 3}\n",
                               "integer"),
    "a reserved word as the network's name": ("network: for\ninputs: {x: 3}\n", "not a name"),
    "a name with a dash": ("network: n\ninputs: {my-x: 3}\n", "not a name"),
    "a bad shape": ("network: n\ninputs: {x: 3by8}\n", "bad shape"),
    "no inputs": ("network: n\nbody: [relu]\n", "no `inputs`"),
    "unknown init key": (HEAD + "init: {conv2d: {scheme: zeros, when: true}}\nbody: [relu]\n",
                         "unknown key `when`"),
}


@pytest.mark.parametrize("case", REFUSED, ids=str)
def test_what_the_reader_refuses_the_schema_refuses(validator, case: str) -> None:
    text, message = REFUSED[case]
    assert _errors(validator, text), f"the schema accepts {case}"
    with pytest.raises(archspec.ArchspecError) as info:
        archspec.loads(text, format="yaml")
    assert message in str(info.value)


ACCEPTED = {
    "structures in statements and labels": HEAD + """body:
  - stem: conv2d(8, 3, padding=1)
  - mix: {concat: ["a: conv2d(4, 1)", "b: maxpool2d(3, 1, 1) -> conv2d(4, 1)"], dim: 1}
  - {residual: [relu], shortcut: [identity], shortcut_if: "true"}
  - stage: {repeat: 2, as: i, body: relu}
  - {for: "k, w", in: [[1, 2]], body: [relu]}
  - {if: true, then: [relu], else: [identity]}
  - features: {chain: [relu, {dense: ["conv2d(4, 3, padding=1)"]}]}
  - group1: [relu, relu]
  - flatten
""",
    "blocks, params, init and outputs": """network: n
params: {width: {type: int, default: 8}, flag: {type: bool}, anything: null}
inputs: {x: [3, 8, 8]}
init: {conv2d: "kaiming_normal(mode=\\"fan_out\\")", linear: {scheme: zeros, if: "true"}}
blocks:
  unit:
    params: {c: {type: int}}
    body: ["conv: conv2d(c, 3, padding=1)", relu]
  fuse:
    inputs: [a, b]
    body: ["y = add(a, b)"]
body:
  - u: unit(width)
  - "f = fuse(u, u)"
outputs: [f]
""",
}


@pytest.mark.parametrize("case", ACCEPTED, ids=str)
def test_what_the_reader_reads_the_schema_accepts(validator, case: str) -> None:
    assert _errors(validator, ACCEPTED[case]) == []
    archspec.loads(ACCEPTED[case], format="yaml")


def test_the_docs_yaml_example_validates(validator) -> None:
    text = (ROOT / "docs" / "language.md").read_text()
    example = text.split("## YAML", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert "network: tiny" in example and _errors(validator, example) == []


def test_the_schema_follows_the_vocabulary() -> None:
    schema = yaml_schema()
    assert tuple(schema["properties"]) == yaml_form.TOP_KEYS
    defs = schema["$defs"]
    for kind in yaml_form.STRUCTURES:
        assert set(defs[f"structure_{kind}"]["properties"]) == yaml_form.ALLOWED[kind]
    assert defs["name"]["not"]["enum"] == list(yaml_form.RESERVED)
    assert defs["params"]["additionalProperties"]["anyOf"][1]["properties"]["type"]["enum"] \
        == list(archspec.lang.ir.PARAM_TYPES)


def test_a_key_the_schema_cannot_type_fails_loudly(monkeypatch) -> None:
    grown = {**yaml_form.ALLOWED, "concat": {*yaml_form.ALLOWED["concat"], "axis"}}
    monkeypatch.setattr(schema_module, "ALLOWED", grown)
    with pytest.raises(KeyError, match="axis"):
        yaml_schema()
    monkeypatch.setattr(schema_module, "TOP_KEYS", (*yaml_form.TOP_KEYS, "layers"))
    with pytest.raises(KeyError, match="layers"):
        yaml_schema()


def test_cli_prints_and_writes_the_schema(capsys, tmp_path) -> None:
    code, out, _ = run_cli(["schema"], capsys)
    assert code == 0 and json.loads(out) == yaml_schema()
    assert json.loads(out)["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    target = tmp_path / "archspec.schema.json"
    target.write_text("old")
    code, _, err = run_cli(["schema", "-o", str(target)], capsys)
    assert code == 0 and f"wrote {target}" in err
    assert json.loads(target.read_text()) == yaml_schema()
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary file left


def test_check_imports_neither_the_schema_nor_notebook_code() -> None:
    code = ("import sys; from archspec.cli import main\n"
            "try:\n    main(['check', 'specs/googlenet.arch', '--format', 'json'])\n"
            "except SystemExit: pass\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('jsonschema', 'IPython', "
            "'nbclient', 'nbformat', 'ipykernel') or m in ('archspec.views.schema', "
            "'archspec.views.notebook', 'archspec.views.html')]\n"
            "print('HEAVY', bad, file=sys.stderr)")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert "HEAVY []" in res.stderr, res.stderr
