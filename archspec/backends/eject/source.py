"""Source text from data: constants as literals, calls wrapped within :data:`WIDTH`, the
attribute and registration of each submodule label, docstrings and ``torch.nn.init``
statements. Spec names reach the source only through these functions."""

from __future__ import annotations

import ast
import keyword
import math
from collections.abc import Callable
from typing import Any

from torch import nn

from archspec.backends.eject.helpers import carried
from archspec.lang.initializers import Init
from archspec.ops import Function, Module


def literal(value: Any) -> str:
    """Source of a constant: ``repr`` of a Python literal (int, float, bool, str, None, tuple,
    list); anything else, or a value whose ``repr`` does not read back, is an error. An
    infinite float (``norm``'s ``p="inf"``) is ``math.inf`` spelt with torch: ``torch.inf``."""
    if isinstance(value, float) and math.isinf(value):
        return "torch.inf" if value > 0 else "-torch.inf"
    text = repr(value)
    try:
        back = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        back = None
    if type(back) is not type(value) or back != value:
        raise ValueError(f"cannot write {text} as a Python literal")
    return text


def qualified_source(target: str) -> str:
    """How generated code names a qualified target: ``torch.nn.Conv2d`` -> ``nn.Conv2d``."""
    if target.startswith("torch.nn.") and target.count(".") == 2:
        return "nn." + target.rsplit(".", 1)[1]
    if carried(target) or target.startswith("builtins."):
        return target.rsplit(".", 1)[1]
    if target.startswith("operator."):
        raise ValueError(f"no source for {target!r}: write it as an operator")
    return target


WIDTH = 100  # generated lines stay within this, where a line can be broken


def wrap_call(head: str, args: list[str], start: int = 0, tail: int = 0,
              brackets: str = "()") -> str:
    """``head(arg, ...)`` written from column ``start`` with ``tail`` characters after it: on
    one line when that fits in :data:`WIDTH`, else with the arguments packed on lines aligned
    after the opening bracket (each leaving room for the tail)."""
    opening, closing = brackets
    flat = f"{head}{opening}{', '.join(args)}{closing}"
    if start + len(flat) + tail <= WIDTH:
        return flat
    column = start + len(head) + 1
    rows: list[list[str]] = [[]]
    for arg in args:
        if rows[-1] and column + len(", ".join([*rows[-1], arg])) + 1 + tail > WIDTH:
            rows.append([])
        rows[-1].append(arg)
    joint = ",\n" + " " * column
    return f"{head}{opening}{joint.join(', '.join(row) for row in rows)}{closing}"


def module_source(call: Module, value: Callable[[Any], str] = literal, start: int = 0,
                  tail: int = 0) -> str:
    """``nn.Conv2d(3, 64, 7, stride=2)``: the constructor call a :class:`Module` describes;
    ``value`` writes each argument (``start``, ``tail``: as for :func:`wrap_call`)."""
    args = [value(a) for a in call.args] + [f"{k}={value(v)}" for k, v in call.kwargs]
    return wrap_call(qualified_source(call.target), args, start, tail)


def special_call(member: str, args: list[str], call: Module, start: int) -> str:
    """``self.attn(x, x, x, need_weights=False)[0]``: a module call with repeated inputs,
    keyword arguments or one item of its results (:class:`Module` ``repeat``/``call``/``item``)."""
    pieces = args * call.repeat + [f"{k}={literal(v)}" for k, v in call.call]
    suffix = "" if call.item is None else f"[{call.item}]"
    return wrap_call(member, pieces, start, len(suffix)) + suffix


_OPERATORS = {"operator.add": "+", "operator.mul": "*",
              "operator.sub": "-", "operator.truediv": "/"}  # tensor primitives: sub, div
_INPLACE = {"operator.iadd": "add_", "operator.imul": "mul_"}


def function_source(call: Function, args: list[str], start: int = 0) -> str:
    """The expression a :class:`Function` computes on the variables ``args``, from column
    ``start``."""
    if call.target in _OPERATORS:
        return f" {_OPERATORS[call.target]} ".join(args)
    if call.target in _INPLACE:
        return f"{args[0]}.{_INPLACE[call.target]}({args[1]})"
    head = qualified_source(call.target)
    kwargs = [f"{k}={literal(v)}" for k, v in call.kwargs]
    if not call.as_list:
        return wrap_call(head, [*args, *kwargs], start)
    rest = "".join(f", {k}" for k in kwargs) + ")"
    items = wrap_call("", args, start + len(head) + 1, len(rest), "[]")
    return f"{head}({items}{rest}"


def _escaped(char: str) -> str:
    """One character of docstring text as source: a quote or a backslash escaped, anything
    not printable (a line break, U+2028, NUL) as its ``\\x``/``\\u`` escape."""
    if char in '"\\':
        return "\\" + char
    return char if char.isprintable() else char.encode("unicode_escape").decode("ascii")


def docstring(lines: list[str], indent: int = 0) -> list[str]:
    """The source lines of a docstring holding ``lines`` (text with names from the spec),
    indented by ``indent``: the one escape for generated docstrings, so that no name can end
    the string or break its line."""
    body = ["".join(map(_escaped, line)) for line in lines]
    body[0] = '"""' + body[0]
    body[-1] += '"""'
    return [" " * indent + line if line else line for line in body]


_MODULE_ATTRS = frozenset(dir(nn.Module()))


def _plain(label: str) -> bool:
    """Whether ``label`` can follow a dot: an ASCII identifier (Python reads a non-ASCII one
    as its NFKC form, so ``self.\ufb01`` would be ``self.fi``) that is no keyword and no
    ``nn.Module`` attribute."""
    return (label.isascii() and label.isidentifier() and not keyword.iskeyword(label)
            and label not in _MODULE_ATTRS)


def attribute(base: str, label: str) -> str:
    """How generated code reads submodule ``label`` of ``base``: ``self.conv1``,
    ``getattr(self, 'block1-0')``, or ``self._modules['forward']`` for a label that
    ``nn.Module`` itself uses."""
    if _plain(label):
        return f"{base}.{label}"
    if label in _MODULE_ATTRS:
        return f"{base}._modules[{label!r}]"
    return f"getattr({base}, {label!r})"


def assignment(base: str, label: str, parameter: bool = False) -> tuple[str, str]:
    """What goes before and after a module's (or a learnable tensor's or persistent
    buffer's, ``parameter``) source to register it as ``label`` of ``base``:
    ``self.conv1 = ...``, ``self.add_module('block1-0', ...)``, ``setattr(self, '0', ...)``
    (``nn.Module`` registers an ``nn.Parameter`` or an ``nn.Buffer`` it is given)."""
    if _plain(label):
        return f"{base}.{label} = ", ""
    if parameter:
        return f"setattr({base}, {label!r}, ", ")"
    if label in _MODULE_ATTRS:
        return f"{base}._modules[{label!r}] = ", ""
    return f"{base}.add_module({label!r}, ", ")"


def packed(items: list[str], indent: int) -> list[str]:
    """``items``, each followed by a comma, over as few lines within :data:`WIDTH` as fit."""
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + len(item) + 2 <= WIDTH:
            lines[-1] += f" {item},"
        else:
            lines.append(f"{' ' * indent}{item},")
    return lines


def init_calls(layer: str, init: Init, indent: int, tensor: bool = False) -> list[str]:
    """The ``torch.nn.init`` statements applying ``init`` to the module ``layer``, or with
    ``tensor`` to the learnable tensor ``layer`` itself (which has no bias)."""
    pad = " " * indent
    out = []
    if init.func is not None:
        target = layer if tensor else f"{layer}.weight"
        args = [target, *(f"{k}={literal(v)}" for k, v in init.kwargs)]
        out.append(pad + wrap_call(f"nn.init.{init.func}", args, indent))
    if tensor:
        return out
    if init.bias is not None:
        args = [f"{layer}.bias", literal(init.bias)]
        out += [f"{pad}if {layer}.bias is not None:",
                f"{pad}    {wrap_call('nn.init.constant_', args, indent + 4)}"]
    elif init.bias_func is not None:
        args = [f"{layer}.bias", *(f"{k}={literal(v)}" for k, v in init.bias_kwargs)]
        out += [f"{pad}if {layer}.bias is not None:",
                f"{pad}    {wrap_call(f'nn.init.{init.bias_func}', args, indent + 4)}"]
    return out
