"""Every torchvision classifier and segmenter through `archspec import`: whether it imports,
whether its params/buffers/MACs equal the source's and its outputs torch's (PyTorch route) or
onnxruntime's (ONNX route), and the imported spec's lines over the hand-written spec's.
Prints the Markdown table of docs/import.md (not run by the test suite: minutes).

    python bench/import_sweep.py --routes torch,onnx > /tmp/table.md
    python bench/import_sweep.py --models resnet18,vit_b_16 --routes torch

Inputs are 3x64x64 where the model allows it (ViT and MaxViT fix 224, Inception-v3 needs
75 and takes 96; on the ONNX route AlexNet and VGG take 224): the counts are compared at
that input, so the figures are the model's at that size.
"""

from __future__ import annotations

import argparse
import copy
import re
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

import archspec
from archspec.importers import import_model
from archspec.lang.diagnostics import ArchspecError

ROOT = Path(__file__).resolve().parents[1]
KWARGS = {"googlenet": {"aux_logits": False, "init_weights": True},
          "inception_v3": {"aux_logits": False, "init_weights": True}}
# the segmenters (which return {"out": y}; the imported spec returns y), without downloading
# a backbone
SEGMENTERS = torchvision.models.list_models(module=torchvision.models.segmentation)
for _name in SEGMENTERS:
    KWARGS[_name] = {"weights_backbone": None}


def shape_of(name: str, route: str = "torch") -> tuple[int, int, int]:
    """The smallest convenient input the model takes (on the ONNX route, AlexNet and VGG at
    224: torch's exporter cannot write their adaptive pooling of a smaller map)."""
    if name.startswith(("vit_", "maxvit")) or route == "onnx" and name.startswith(
            ("vgg", "alexnet")):
        return (3, 224, 224)
    return (3, 96, 96) if name == "inception_v3" else (3, 64, 64)


def lines(text: str) -> int:
    """Lines that are not blank or comments."""
    return sum(1 for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#"))


def hand_lines(name: str) -> int | None:
    """The hand-written spec's lines with the whole block files it imports (an upper bound
    on what it uses), or None when specs/ has none."""
    path = ROOT / "specs" / f"{name}.arch"
    if not path.is_file():
        return None
    text = path.read_text()
    total = lines(text)
    for imported in re.findall(r'^import "([^"]+)"', text, re.M):
        total += lines((ROOT / "specs" / imported).read_text())
    return total


def counts(model: torch.nn.Module, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Params, buffers and MACs (FlopCounterMode / 2 at batch 2) as tests/test_zoo.py counts
    them: a training-mode forward of two samples (BatchNorm takes no less) through a copy on
    the meta device. An eval forward on the CPU
    takes kernels FlopCounterMode does not count (nn.MultiheadAttention's fast path, CPU
    scaled-dot-product attention), so ViT's attention products would be missing."""
    meta = copy.deepcopy(model).to("meta").train()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta(torch.empty(2, *shape, device="meta"))
    return (sum(p.numel() for p in model.parameters()),
            sum(b.numel() for b in model.buffers()), counter.get_total_flops() // 2)


def check(source: str, shape: tuple[int, ...], kwargs: dict, oracle, expected_counts
          ) -> tuple[str, str]:
    """(exact yes/no with the reason, the line count) for one import."""
    try:
        imported = import_model(source, {"x": shape}, kwargs)
    except ArchspecError as exc:
        return "no: " + exc.diagnostic.message.replace("|", "/")[:110], ""
    except Exception as exc:  # a bug in the importer: recorded, not hidden
        return f"no (importer bug: {type(exc).__name__}: {str(exc)[:60]})", ""
    net = archspec.to_torch(imported.spec).eval()
    net.load_state_dict(imported.weights, strict=True)
    if isinstance(oracle, torch.nn.Module):  # the source module, drawn again: the same weights
        state = oracle.state_dict()  # keeps the metadata some modules check (MNASNet)
        state.update(imported.weights)
        oracle.load_state_dict(state)
    x = torch.randn(1, *shape)
    with torch.no_grad():
        want = oracle(x)  # relative to its scale: some random-init outputs are ~1e-18
        want = want["out"] if isinstance(want, dict) else want
        same = torch.allclose(net(x), want, rtol=1e-3, atol=1e-4 * float(want.abs().max()))
    totals = archspec.analyze(imported.spec, batch=2).to_dict()["totals"]
    exact = expected_counts is None or \
        (totals["params"], totals["buffers"], totals["macs"]) == expected_counts
    verdict = "yes" if same and exact else \
        f"no: {'outputs differ' if not same else ''}{' counts differ' if not exact else ''}"
    return verdict, str(lines(imported.text))


def onnx_oracle(path: Path):  # noqa: ANN201
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])


def row(name: str, routes: list[str], tmp: Path) -> str:
    kwargs = KWARGS.get(name, {})
    shape = shape_of(name)
    model = torchvision.models.get_model(name, **kwargs).eval()
    hand = hand_lines(name)
    cells = []
    start = time.perf_counter()
    if "torch" in routes:
        where = "models.segmentation" if name in SEGMENTERS else "models"
        verdict, n = check(f"torchvision.{where}:{name}", shape, kwargs, model,
                           counts(model, shape))
        cells.append(f"| PyTorch | {verdict} | {n} | "
                     f"{f'{int(n) / hand:.2f}' if n and hand else ''} |")
    if "onnx" in routes:
        path = tmp / f"{name}.onnx"
        shape = shape_of(name, "onnx")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (torch.randn(1, *shape),), str(path), dynamo=False,
                                  do_constant_folding=False)
        except Exception as exc:  # the exporter's own failure
            verdict, n = f"no: export failed: {type(exc).__name__}", ""
        else:
            verdict, n = check(str(path), shape, {}, onnx_oracle(path), counts(model, shape))
        cells.append(f"| ONNX | {verdict} | {n} | "
                     f"{f'{int(n) / hand:.2f}' if n and hand else ''} |")
    seconds = time.perf_counter() - start
    return "\n".join(f"| {name} {cell} {seconds:.0f} |" for cell in cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", default="torch,onnx", help="torch, onnx or both")
    parser.add_argument("--models", default="",
                        help="comma-separated (default: the 80 classifiers and 6 segmenters)")
    args = parser.parse_args()
    names = [m for m in args.models.split(",") if m] or \
        [*torchvision.models.list_models(module=torchvision.models), *SEGMENTERS]
    tmp = Path(tempfile.mkdtemp())
    print("| model | route | exact | spec lines | / hand-written | seconds |")
    print("|---|---|---|---|---|---|")
    for name in names:
        print(row(name, args.routes.split(","), tmp), flush=True)


if __name__ == "__main__":
    main()
