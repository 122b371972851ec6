"""Every torchvision classifier through `archspec import`, both routes: whether it imports,
whether params/buffers/MACs equal the source's, whether the outputs match, and the line
count. Prints the Markdown table of docs/import.md (not run by the test suite: minutes).

    python bench/import_sweep.py > /tmp/table.md
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

import archspec
from archspec.importers import import_model
from archspec.lang.diagnostics import ArchspecError

SHAPE = (3, 64, 64)


def counts(model: torch.nn.Module) -> tuple[int, int, int]:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, *SHAPE))
    return (sum(p.numel() for p in model.parameters()),
            sum(b.numel() for b in model.buffers()), counter.get_total_flops() // 2)


def route(name: str, source: str, model: torch.nn.Module, kwargs: dict) -> str:
    try:
        imported = import_model(source, {"x": SHAPE}, kwargs)
    except ArchspecError as exc:
        return "no: " + exc.diagnostic.message.replace("|", "/")[:70]
    except Exception as exc:  # a bug in the importer: recorded, not hidden
        return f"bug: {type(exc).__name__}"
    net = archspec.to_torch(imported.spec).eval()
    net.load_state_dict(imported.weights, strict=True)
    x = torch.randn(1, *SHAPE)
    with torch.no_grad():
        same = torch.allclose(net(x), model(x), rtol=1e-3, atol=1e-4)
    totals = archspec.analyze(imported.spec).to_dict()["totals"]
    lines = sum(1 for ln in imported.text.splitlines() if ln.strip() and ln[0] != "#")
    exact = (totals["params"], totals["buffers"], totals["macs"]) == counts(model)
    return f"{'yes' if same else 'outputs differ'}, {'exact' if exact else 'counts differ'}, " \
           f"{lines} lines"


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    print("| model | PyTorch | ONNX |\n|---|---|---|")
    for name in torchvision.models.list_models(module=torchvision.models):
        kwargs = {"aux_logits": False, "init_weights": True} \
            if name in ("googlenet", "inception_v3") else {}
        model = torchvision.models.get_model(name, **kwargs).eval()
        torch_row = route(name, f"torchvision.models:{name}", model, kwargs)
        path = tmp / f"{name}.onnx"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (torch.randn(1, *SHAPE),), str(path), dynamo=False,
                                  do_constant_folding=False)
            onnx_row = route(name, str(path), model, {})
        except Exception as exc:  # the exporter's own failure
            onnx_row = f"export failed: {type(exc).__name__}"
        print(f"| {name} | {torch_row} | {onnx_row} |", flush=True)


if __name__ == "__main__":
    main()
