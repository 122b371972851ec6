"""`archspec schema`: a JSON Schema (draft 2020-12) of the YAML form, for editors.

The schema is built from the YAML form's own vocabulary (:mod:`archspec.lang.syntax.yaml_form`:
``TOP_KEYS``, ``STRUCTURES`` and their ``ALLOWED`` keys, the ``NAME`` pattern and the
``RESERVED`` words) and from ``PARAM_TYPES`` in the IR, so a key added there appears here; a
key this module cannot type (a new structure key) is an error when the schema is built, which
the tests run. What the reader checks in code rather than in a constant (a block's keys, a
parameter's, the keys ``repeat``, ``for`` and ``if`` need) is written here once, beside it.

Layer calls, chains and expressions are strings in the text syntax, as in the form itself;
the schema checks the structure around them, and the reader the text inside.
"""

from __future__ import annotations

import json
from typing import Any

from archspec.lang import ir
from archspec.lang.syntax.yaml_form import ALLOWED, NAME, RESERVED, STRUCTURES, TOP_KEYS
from archspec.lang.version import __version__

DRAFT = "https://json-schema.org/draft/2020-12/schema"

# The structures that are statements of their own (`for`, `if`) rather than elements of a
# chain, and the one (`chain`) that only a labelled statement's value may be (yaml_reader.py:
# `stmt`, `elements`, `element`).
CONTROL = ("for", "if")
VALUE_ONLY = ("chain",)

# What each structure key's value is: a $defs entry below. (structure, key) overrides key.
SUBKEY_TYPES = {"concat": "body", "dim": "expr", "residual": "body", "shortcut": "body",
                "shortcut_if": "expr", "dense": "body", "repeat": "expr", "as": "name",
                "body": "body", "group": "body", "for": "names", "in": "expr", "if": "expr",
                "then": "body", "else": "body", "chain": "chain"}
SUBKEY_OVERRIDES = {("repeat", "body"): "repeat_body"}
# The keys a structure needs besides its own (yaml_reader.py: `structure`, `control`).
REQUIRED = {"repeat": ("body",), "for": ("in", "body"), "if": ("then",)}

BLOCK_KEYS = ("params", "inputs", "init", "body")
PARAM_KEYS = ("type", "default")
INIT_KEYS = ("scheme", "if")

_DOCS = {
    "network": "The network's name (default: the file's name).",
    "params": "Network parameters: name -> {type, default}; `--set name=value` overrides one.",
    "imports": "Spec files whose blocks this one uses, e.g. std/blocks/resnet.arch.",
    "inputs": "Graph inputs: name -> per-sample shape, `3x224x224` or a list [3, size, size].",
    "outputs": "The outputs, when not the last layer: `name` or `name: layer` strings.",
    "init": "Initialisation rules: op -> scheme call (`kaiming_normal(mode=\"fan_out\")`), or "
            "{scheme, if}.",
    "blocks": "Reusable blocks: name -> {params, inputs, init, body}.",
    "body": "The network's statements, in order.",
    "concat": "Branches that read the same input, their outputs concatenated (along `dim`).",
    "residual": "A body whose output is added to its input (or to the `shortcut`'s output).",
    "dense": "DenseNet-style: each statement reads the concatenation of all before it.",
    "repeat": "The `body` repeated a number of times; `as` names the index (from 0).",
    "for": "The `body` once per item of `in`; `for` names the loop variable(s), `a, b`.",
    "if": "`then` when the condition holds, else `else`.",
    "group": "Statements under one label, a block of the network.",
    "chain": "Elements one after another: layer strings and structures.",
}


def _name() -> dict[str, Any]:
    """A name the text form can write: letters, digits and _, not a reserved word."""
    return {"type": "string", "pattern": f"^{NAME.pattern}$", "not": {"enum": list(RESERVED)},
            "description": "A name: letters, digits and _, not starting with a digit."}


def _names() -> dict[str, Any]:
    """One name or several separated by commas (the variables of a ``for``)."""
    one = NAME.pattern
    return {"type": "string", "pattern": rf"^\s*{one}(\s*,\s*{one})*\s*$"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


def _mapping(values: dict[str, Any], keys: dict[str, Any] | None = None) -> dict[str, Any]:
    """An object whose keys are ``keys`` (a schema for property names) and values ``values``."""
    return {"type": "object", "propertyNames": keys or {"type": "string"},
            "additionalProperties": values}


def _structure(kind: str) -> dict[str, Any]:
    """One structure's mapping: its own key, the keys ALLOWED beside it, no other."""
    others = sorted(ALLOWED[kind] - {kind})
    props = {k: _ref(SUBKEY_OVERRIDES.get((kind, k), SUBKEY_TYPES[k])) for k in [kind, *others]}
    return {"type": "object", "description": _DOCS[kind],
            "required": [kind, *REQUIRED.get(kind, ())], "properties": props,
            "additionalProperties": False}


def _statement_defs() -> dict[str, Any]:
    """The statements and the values of labelled ones, as the reader tells them apart."""
    statement = [s for s in STRUCTURES if s not in VALUE_ONLY]
    element = [s for s in STRUCTURES if s not in CONTROL]
    in_chain = [s for s in element if s not in VALUE_ONLY]
    return {
        "body": {"type": "array", "items": _ref("statement")},
        "statement": {"anyOf": [
            {"type": "string", "description": "A statement in the text syntax: "
             "`conv1: conv2d(64, 7, stride=2) -> relu`, `y = add(a, b)`, `flatten`."},
            *(_ref(f"structure_{s}") for s in statement), _ref("labelled")]},
        "labelled": {"type": "object", "minProperties": 1, "maxProperties": 1,
                     "description": "`label: value`: a layer string, a list (a group) or a "
                                    "structure.",
                     "propertyNames": {"not": {"enum": list(STRUCTURES)}},
                     "additionalProperties": _ref("labelled_value")},
        "labelled_value": {"anyOf": [{"type": "string"}, _ref("body"),
                                     *(_ref(f"structure_{s}") for s in element)]},
        "chain": {"type": "array", "items": {"anyOf": [
            {"type": "string"}, *(_ref(f"structure_{s}") for s in in_chain)]}},
        "repeat_body": {"anyOf": [{"type": "string"}, _ref("body")]},
        **{f"structure_{s}": _structure(s) for s in STRUCTURES},
    }


def _value_defs() -> dict[str, Any]:
    """Names, expressions, parameters, inputs, init rules and blocks."""
    return {
        "name": _name(),
        "names": _names(),
        "expr": {"type": ["string", "number", "boolean", "null", "array"],
                 "items": _ref("expr"),
                 "description": "A value: a number, true/false, a list, or an expression in "
                                "the text syntax (`2 * width`, `stride != 1`)."},
        "params": _mapping({"anyOf": [{"type": "null"}, {
            "type": "object", "additionalProperties": False,
            "properties": {"type": {"enum": list(ir.PARAM_TYPES)}, "default": _ref("expr")}}]},
            _ref("name")),
        "inputs": _mapping({"anyOf": [
            {"type": "string", "pattern": r"^[0-9]+(x[0-9]+)*$"},
            {"type": "integer", "minimum": 0},
            {"type": "array", "items": _ref("expr")}]}, _ref("name")),
        "init": _mapping({"anyOf": [{"type": "string"}, {
            "type": "object", "required": ["scheme"], "additionalProperties": False,
            "properties": {"scheme": {"type": "string"}, "if": _ref("expr")}}]}),
        "block": {"type": "object", "required": ["body"], "additionalProperties": False,
                  "properties": {"params": _ref("params"),
                                 "inputs": {"type": "array", "items": _ref("name")},
                                 "init": _ref("init"), "body": _ref("body")}},
    }


_TOP_TYPES = {"network": _ref("name"), "params": _ref("params"),
              "imports": {"type": "array", "items": {"type": "string"}},
              "inputs": _ref("inputs"), "outputs": {"type": "array", "items": {"type": "string"}},
              "init": _ref("init"), "blocks": _mapping(_ref("block"), _ref("name")),
              "body": _ref("body")}


def _documented(schema: dict[str, Any], doc: str) -> dict[str, Any]:
    """``schema`` with a description; a bare ``$ref`` is wrapped, as draft-07 tools read a
    ``$ref`` beside other keywords as the ``$ref`` alone."""
    if "$ref" in schema:
        return {"allOf": [schema], "description": doc}
    return {**schema, "description": doc}


def yaml_schema() -> dict[str, Any]:
    """The JSON Schema of a YAML spec, as a dict."""
    return {
        "$schema": DRAFT,
        "title": "archspec YAML spec",
        "description": f"A neural-network spec in archspec's YAML form (archspec {__version__}"
                       "; `archspec schema` writes this file).",
        "type": "object",
        "required": ["inputs"],
        "properties": {k: _documented(_TOP_TYPES[k], _DOCS[k]) for k in TOP_KEYS},
        "additionalProperties": False,
        "$defs": {**_value_defs(), **_statement_defs()},
    }


def schema_text() -> str:
    """The schema as indented JSON text, ending in a newline."""
    return json.dumps(yaml_schema(), indent=2) + "\n"
