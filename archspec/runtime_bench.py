"""`archspec bench`: latency of the compiled torch module and of its ONNX export in
onnxruntime, with the same weights, side by side."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from archspec import ir


def _time(fn: Callable[[], Any], runs: int, sync: Callable[[], None]) -> list[float]:
    fn()
    sync()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - start)
    return out


def _summary(label: str, times: list[float], batch: int) -> str:
    med = statistics.median(times)
    p90 = sorted(times)[max(0, int(0.9 * len(times)) - 1)]
    return (f"{label:<34} median {1000 * med:8.2f} ms  p90 {1000 * p90:8.2f} ms  "
            f"{batch / med:10,.1f} samples/s")


def onnx_session(model_bytes: bytes, device: str, threads: int | None) -> Any:
    """An onnxruntime session on CUDA when asked for and available, else on the CPU."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    providers = ["CPUExecutionProvider"]
    if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(model_bytes, opts, providers=providers)


def run_bench(spec: ir.Spec, backend: str, batch: int, device: str, threads: int | None,
              runs: int) -> Iterator[str]:
    """Yield report lines: the setup, then one line per runtime."""
    import torch

    from archspec.backends.onnx import to_onnx
    from archspec.backends.torch import to_torch

    if threads:
        torch.set_num_threads(threads)
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda, but torch sees no CUDA device")
    torch.manual_seed(0)
    model = to_torch(spec).eval()
    from archspec.expander import expand

    graph = expand(spec)
    inputs = {k: torch.randn(batch, *s) for k, s in graph.inputs.items()}
    yield f"{spec.name}: batch {batch}, inputs " + ", ".join(
        f"{k} {list(v.shape)}" for k, v in inputs.items())
    if backend in ("torch", "both"):
        dev = torch.device(device)
        m = model.to(dev)
        xs = [v.to(dev) for v in inputs.values()]
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        with torch.inference_mode():
            times = _time(lambda: m(*xs), runs, sync)
        yield _summary(f"torch eager ({dev.type})", times, batch)
    if backend in ("onnxruntime", "both"):
        onnx_model = to_onnx(spec, weights=model.cpu().state_dict())
        session = onnx_session(onnx_model.SerializeToString(), device, threads)
        feed = {k: v.numpy() for k, v in inputs.items()}
        provider = session.get_providers()[0]
        if device == "cuda" and provider != "CUDAExecutionProvider":
            yield "note: CUDAExecutionProvider is not available (install onnxruntime-gpu); " \
                  "onnxruntime runs on the CPU"
        times = _time(lambda: session.run(None, feed), runs, lambda: None)
        yield _summary(f"onnxruntime ({provider})", times, batch)
