"""ONNX: archspec's direct lowering against torch.onnx.export, and onnxruntime against torch.

1. Export time of a torchvision spec with weights (archspec.export_onnx) against
   torch.onnx.export (TorchScript path) of the torchvision model with the same weights.
2. onnxruntime latency of archspec's file against torch.onnx.export's file (same weights,
   batch 1, CPU EP, --threads threads, alternating, median of --runs).
3. onnxruntime against torch eager, for the specs given with --specs.

    python bench/bench_onnx.py --model resnet18 --export-model resnet50 --runs 50
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torchvision

import archspec

ROOT = Path(__file__).resolve().parent.parent


def session(path: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def export_times(name: str, tmp: Path, repeat: int) -> tuple[float, float]:
    model = getattr(torchvision.models, name)(weights=None).eval()
    weights = tmp / f"{name}.pth"
    torch.save(model.state_dict(), weights)
    spec = archspec.load(ROOT / "specs" / f"{name}.arch")
    ours, theirs = [], []
    x = torch.randn(1, 3, 224, 224)
    for _ in range(repeat):
        start = time.perf_counter()
        archspec.export_onnx(spec, tmp / "ours.onnx", weights=weights)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), str(tmp / "theirs.onnx"), dynamo=False,
                              opset_version=17, input_names=["x"], output_names=["output"],
                              dynamic_axes={"x": {0: "batch"}})
        theirs.append(time.perf_counter() - start)
    return statistics.median(ours), statistics.median(theirs)


def latency(name: str, tmp: Path, runs: int, threads: int) -> tuple[float, float]:
    """Median onnxruntime latency of archspec's file and torch.onnx.export's, alternating."""
    a, b = session(tmp / "ours.onnx", threads), session(tmp / "theirs.onnx", threads)
    x = {"x": np.random.rand(1, 3, 224, 224).astype(np.float32)}
    np.testing.assert_allclose(a.run(None, x)[0], b.run(None, x)[0], rtol=1e-3, atol=1e-3)
    ta, tb = [], []
    for i in range(runs):
        for s, out in ((a, ta), (b, tb)) if i % 2 == 0 else ((b, tb), (a, ta)):
            start = time.perf_counter()
            s.run(None, x)
            out.append(time.perf_counter() - start)
    return statistics.median(ta), statistics.median(tb)


def ort_vs_eager(spec_path: Path, runs: int, threads: int, tmp: Path) -> tuple[float, float]:
    spec = archspec.load(spec_path)
    graph = archspec.expand(spec)
    torch.set_num_threads(threads)
    model = archspec.to_torch(spec).eval()
    archspec.export_onnx(spec, tmp / "spec.onnx", weights=model.state_dict())
    s = session(tmp / "spec.onnx", threads)
    inputs = {k: torch.randn(1, *v) for k, v in graph.inputs.items()}
    feed = {k: v.numpy() for k, v in inputs.items()}
    te, to = [], []
    with torch.inference_mode():
        model(*inputs.values())
        s.run(None, feed)
        for _ in range(runs):
            start = time.perf_counter()
            model(*inputs.values())
            te.append(time.perf_counter() - start)
            start = time.perf_counter()
            s.run(None, feed)
            to.append(time.perf_counter() - start)
    return statistics.median(to), statistics.median(te)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--export-model", default="resnet50")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--specs", nargs="*", default=["resnet18", "googlenet",
                                                        "classic/lenet5_1998",
                                                        "examples/cnn1"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ours, theirs = export_times(args.export_model, tmp, 3)
        print(f"export {args.export_model} with weights: archspec {ours:.3f} s, "
              f"torch.onnx.export {theirs:.3f} s, ratio {ours / theirs:.2f}")
        export_times(args.model, tmp, 1)
        a, b = latency(args.model, tmp, args.runs, args.threads)
        print(f"onnxruntime {args.model} batch 1: archspec file {1000 * a:.2f} ms, "
              f"torch.onnx.export file {1000 * b:.2f} ms, ratio {a / b:.3f}")
        for rel in args.specs:
            o, e = ort_vs_eager(ROOT / "specs" / f"{rel}.arch", args.runs, args.threads, tmp)
            print(f"{rel:<22} onnxruntime {1000 * o:8.2f} ms  torch eager {1000 * e:8.2f} ms  "
                  f"speed-up {e / o:.2f}x")


if __name__ == "__main__":
    main()
