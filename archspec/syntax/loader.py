"""Reading spec files: file checks, format dispatch, imports and parameter overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archspec import ir
from archspec.diagnostics import did_you_mean, error
from archspec.initializers import check_init
from archspec.source import SourceFile, Span, display_name

FORMATS = ("arch", "yaml")


def read_source(path: str | Path) -> SourceFile:
    """Read a spec file as UTF-8 text; missing, unreadable, binary or empty files are errors."""
    p = Path(path)
    name = display_name(p)
    where = Span(SourceFile(name, ""), 1, 1)
    if not p.exists():
        raise error("E001", f"no such file: {name}", where, hint="check the path and spelling")
    if p.is_dir():
        raise error("E002", f"{name} is a directory, not a spec file", where,
                    hint="pass a .arch or .yaml file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise error("E002", f"cannot read {name}: {exc.strerror}", where,
                    hint="check the file's permissions") from None
    return source_from_bytes(name, data)


def source_from_bytes(name: str, data: bytes) -> SourceFile:
    """Decode spec bytes, rejecting binary and empty input with a located error."""
    where = Span(SourceFile(name, ""), 1, 1)
    if b"\x00" in data[:8192]:
        raise error("E003", f"{name} is a binary file, not a spec", where,
                    hint="a spec is UTF-8 text (.arch or .yaml)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error("E003", f"{name} is not UTF-8 text (bad byte at offset {exc.start})", where,
                    hint="save the file as UTF-8") from None
    if not text.strip():
        raise error("E004", f"{name} is empty", where,
                    hint="a spec needs at least an `input` line and one layer")
    return SourceFile(name, text)


def format_of(path: str | Path) -> str:
    """``yaml`` for .yaml/.yml files, ``arch`` otherwise."""
    return "yaml" if Path(path).suffix.lower() in (".yaml", ".yml") else "arch"


def parse_source(source: SourceFile, fmt: str) -> ir.Spec:
    """Parse one source in ``fmt`` into a Spec without resolving imports."""
    if fmt == "yaml":
        from archspec.syntax.yaml_form import yaml_to_spec

        spec = yaml_to_spec(source)
    else:
        from archspec.syntax.to_ir import parse

        spec = parts_to_spec(parse(source), source)
    _check(spec)
    return spec


def _no_input(where: Span) -> None:
    raise error("E111", "the network has no `input`", where,
                hint="declare one before the layers, e.g. `input x: 3x224x224`")


def _check(spec: ir.Spec) -> None:
    """Checks of a whole file that no single grammar rule can make."""
    if not spec.inputs and spec.body:
        _no_input(spec.body[0].span)
    for kind, names in (("input", list(spec.inputs)), ("block", list(spec.blocks))):
        seen: dict[str, Any] = {}
        for item in names:
            if item.name in seen:
                raise error("E114", f"{kind} `{item.name}` is defined twice", item.span,
                            hint=f"rename one; the first is at {seen[item.name].span}")
            seen[item.name] = item
    seen_ops: dict[str, ir.InitRule] = {}
    for rule in spec.inits:
        check_init(rule)
        if rule.op in seen_ops:
            raise error("E114", f"`init {rule.op}` is given twice", rule.span,
                        hint=f"keep one; the first is at {seen_ops[rule.op].span}")
        seen_ops[rule.op] = rule
    for p in [*spec.params, *(p for b in spec.blocks for p in b.params)]:
        if p.type not in ir.PARAM_TYPES:
            raise error("E113", f"unknown type `{p.type}` for parameter `{p.name}`", p.span,
                        hint=did_you_mean(p.type, ir.PARAM_TYPES) or
                        f"types: {', '.join(ir.PARAM_TYPES)}")


def parts_to_spec(parts: dict[str, list[Any]], source: SourceFile) -> ir.Spec:
    """Assemble a Spec from top-level parts, checking there is one network and an input."""
    nets = parts["network"]
    if len(nets) > 1:
        raise error("E110", "more than one `network` line", nets[1][2],
                    hint="a file describes one network; move the other to its own file")
    if nets and not parts["input"] and not parts["stmt"]:
        _no_input(nets[0][2])
    name, params, span = nets[0] if nets else (Path(source.name).stem, (), Span(source, 1, 1))
    outputs = [o for group in parts["output"] for o in group]
    return ir.Spec(name=name, params=params, imports=tuple(i for i, _ in parts["import"]),
                   inputs=tuple(parts["input"]), outputs=tuple(outputs),
                   inits=tuple(parts["init"]),
                   blocks=tuple(parts["block"]), body=tuple(parts["stmt"]), span=span)


def _resolve_imports(spec: ir.Spec, base: Path, stack: tuple[Path, ...]) -> ir.Spec:
    library: dict[str, ir.BlockDef] = {}
    for rel in spec.imports:
        path = (base / rel).resolve()
        if path in stack:
            raise error("E112", f"import cycle: {rel} imports itself", spec.span,
                        hint=" -> ".join(p.name for p in (*stack, path)))
        sub = _resolve_imports(parse_source(read_source(path), format_of(path)), path.parent,
                               (*stack, path))
        library.update(sub.all_blocks())
    return spec.model_copy(update={"library": library}) if library else spec


def loads(text: str, format: str = "arch", name: str = "<string>",
          base: str | Path = ".", **overrides: Any) -> ir.Spec:
    """Parse spec ``text`` (``format`` "arch" or "yaml"); imports resolve against ``base``."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    source = source_from_bytes(name, text.encode("utf-8"))
    spec = _resolve_imports(parse_source(source, format), Path(base), ())
    return with_overrides(spec, overrides)


def load(path: str | Path, **overrides: Any) -> ir.Spec:
    """Read and parse the spec at ``path``; keyword arguments override network parameters."""
    p = Path(path)
    spec = parse_source(read_source(p), format_of(p))
    spec = _resolve_imports(spec, p.parent, (p.resolve(),))
    return with_overrides(spec, overrides)


def with_overrides(spec: ir.Spec, overrides: dict[str, Any]) -> ir.Spec:
    """Return ``spec`` with network parameters overridden; unknown names are errors."""
    if not overrides:
        return spec
    known = {p.name: p for p in spec.params}
    for key in overrides:
        if key not in known:
            hint = did_you_mean(key, known) or (
                f"the network's parameters are: {', '.join(known) or '(none)'}")
            raise error("E120", f"`{key}` is not a parameter of network `{spec.name}`",
                        spec.span, hint=hint)
    return spec.model_copy(update={"overrides": {**spec.overrides, **overrides}})


def with_input_shapes(spec: ir.Spec, shapes: dict[str, tuple[int, ...]]) -> ir.Spec:
    """Return ``spec`` with the per-sample shapes of the named inputs replaced."""
    known = {d.name: d for d in spec.inputs}
    for key in shapes:
        if key not in known:
            raise error("E131", f"`{key}` is not an input of network `{spec.name}`", spec.span,
                        hint=did_you_mean(key, known) or f"inputs: {', '.join(known)}")
    inputs = tuple(
        d.model_copy(update={"shape": tuple(ir.Lit(value=v, span=d.span) for v in shapes[d.name])})
        if d.name in shapes else d for d in spec.inputs)
    return spec.model_copy(update={"inputs": inputs})
