"""`archspec bench`: latency of the compiled torch module and of its ONNX export in
onnxruntime, with the same weights, side by side.

Both runtimes get the same thread count, and the process is pinned to that many cores (Linux),
so that the operating system does not move threads between cores mid-run: that, and threads
outnumbering cores, is what makes the slow tail (p90) wander. Each runtime runs ``warmup``
untimed iterations first; the report gives the median, p90 and the spread (p90 - p10 as a
fraction of the median).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from archspec.lang import ir


@contextlib.contextmanager
def pinned(threads: int | None) -> Iterator[tuple[int, list[int] | None]]:
    """The thread count to use (default: the cores this process may run on) and the cores the
    process is pinned to while the block runs (None where the OS offers no affinity); the
    previous affinity comes back afterwards."""
    if not hasattr(os, "sched_setaffinity"):
        yield threads or (os.cpu_count() or 1), None
        return
    before = os.sched_getaffinity(0)
    cores = sorted(before)[:min(threads or len(before), len(before))]
    os.sched_setaffinity(0, cores)
    try:
        yield threads or len(cores), cores
    finally:
        os.sched_setaffinity(0, before)


def _time(fn: Callable[[], Any], runs: int, sync: Callable[[], None],
          warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    sync()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - start)
    return out


def percentile(times: list[float], q: float) -> float:
    """The ``q`` quantile of ``times`` (nearest rank)."""
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def _summary(label: str, times: list[float], batch: int) -> str:
    med = statistics.median(times)
    p10, p90 = percentile(times, 0.1), percentile(times, 0.9)
    return (f"{label:<34} median {1000 * med:8.2f} ms  p90 {1000 * p90:8.2f} ms  spread "
            f"{100 * (p90 - p10) / med:5.1f}%  {batch / med:10,.1f} samples/s")


def onnx_session(model_bytes: bytes, device: str, threads: int | None) -> Any:
    """An onnxruntime session on CUDA when asked for and available, else on the CPU."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(model_bytes, opts, providers=providers)


def run_bench(spec: ir.Spec, backend: str, batch: int, device: str, threads: int | None,
              runs: int, warmup: int = 5) -> Iterator[str]:
    """Yield report lines: the setup, then one line per runtime."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda, but torch sees no CUDA device")
    previous = torch.get_num_threads()
    with pinned(threads) as (threads, cores):
        torch.set_num_threads(threads)
        try:
            yield from _bench(spec, backend, batch, device, threads, runs, warmup, cores)
        finally:
            torch.set_num_threads(previous)


def _bench(spec: ir.Spec, backend: str, batch: int, device: str, threads: int, runs: int,
           warmup: int, cores: list[int] | None) -> Iterator[str]:
    import torch

    from archspec.backends.torch import to_torch
    from archspec.lang.expander import expand

    torch.manual_seed(0)
    model = to_torch(spec).eval()

    graph = expand(spec)
    inputs = {k: torch.randn(batch, *s) for k, s in graph.inputs.items()}
    yield f"{spec.name}: batch {batch}, inputs " + ", ".join(
        f"{k} {list(v.shape)}" for k, v in inputs.items())
    where = f", pinned to cores {cores}" if cores else ""
    yield f"{threads} threads{where}; {warmup} warm-up runs, then {runs} timed runs each"
    if backend in ("torch", "both"):
        dev = torch.device(device)
        m = model.to(dev)
        xs = [v.to(dev) for v in inputs.values()]
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        with torch.inference_mode():
            times = _time(lambda: m(*xs), runs, sync, warmup)
        yield _summary(f"torch eager ({dev.type})", times, batch)
    if backend in ("onnxruntime", "both"):
        from archspec.backends.onnx import to_onnx

        onnx_model = to_onnx(spec, weights=model.cpu().state_dict())
        session = onnx_session(onnx_model.SerializeToString(), device, threads)
        feed = {k: v.numpy() for k, v in inputs.items()}
        provider = session.get_providers()[0]
        if device == "cuda" and provider != "CUDAExecutionProvider":
            yield "note: CUDAExecutionProvider is not available (install onnxruntime-gpu); " \
                  "onnxruntime runs on the CPU"
        times = _time(lambda: session.run(None, feed), runs, lambda: None, warmup)
        yield _summary(f"onnxruntime ({provider})", times, batch)
