"""int8 ONNX models: onnxruntime's static quantisation (QDQ format, per-channel int8 weights,
int8 activations with MinMax ranges) calibrated on images, and a report of what it cost: file
size, onnxruntime latency and top-1 agreement with the float model on held-out images.

The caller hands the images in (archspec/training/data.py makes them from the built-in shapes
or an image folder): of the ``samples`` images, the first three quarters calibrate and the rest
are held out.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class QuantReport:
    """Sizes in bytes, latencies in seconds (median, batch 1, onnxruntime CPU), and the
    fraction of ``held_out`` images whose top-1 class the int8 model shares with the float
    one."""

    float_bytes: int
    int8_bytes: int
    float_latency: float
    int8_latency: float
    agreement: float
    held_out: int
    calibrated: int

    def lines(self) -> list[str]:
        return [f"size: float {self.float_bytes / 1e6:.2f} MB, int8 {self.int8_bytes / 1e6:.2f} "
                f"MB ({self.int8_bytes / self.float_bytes:.2f}x)",
                f"latency (batch 1, onnxruntime CPU, median): float "
                f"{1000 * self.float_latency:.2f} ms, int8 {1000 * self.int8_latency:.2f} ms "
                f"({self.float_latency / self.int8_latency:.2f}x faster)",
                f"top-1 agreement with the float model: {self.agreement:.4f} on "
                f"{self.held_out} held-out images ({self.calibrated} calibrated)"]


class _Reader:
    """onnxruntime's CalibrationDataReader protocol: one feed dict per call, then None."""

    def __init__(self, name: str, images: np.ndarray) -> None:
        self.feeds: Iterator[dict[str, np.ndarray]] = iter(
            {name: images[i:i + 1]} for i in range(len(images)))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.feeds, None)


def _latency(session: Any, feed: dict[str, np.ndarray], runs: int) -> float:
    session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _top1(session: Any, name: str, images: np.ndarray) -> np.ndarray:
    return np.concatenate([session.run(None, {name: images[i:i + 32]})[0].argmax(1)
                           for i in range(0, len(images), 32)])


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime's quantiser logs advice through the root logger: keep errors only."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_int8(float_model: Path, output: Path, images: np.ndarray, threads: int | None = None,
                  runs: int = 20) -> QuantReport:
    """Quantise ``float_model`` (a float32 ONNX file with one input) into ``output``,
    calibrated on the first 3/4 of ``images``; measure both on the rest."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from archspec.files.atomic import atomic_file

    split = max(1, len(images) * 3 // 4)
    calib, held = images[:split], images[split:] if len(images) > split else images
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    float_session = ort.InferenceSession(str(float_model), opts,
                                         providers=["CPUExecutionProvider"])
    name = float_session.get_inputs()[0].name
    with tempfile.TemporaryDirectory() as tmp, _quiet_root_logger():
        prepared, staged = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(float_model), str(prepared))  # folds BN into convs, shapes
        quantize_static(str(prepared), str(staged), _Reader(name, calib),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        data = staged.read_bytes()
    with atomic_file(output) as f:
        f.write(data)
    int8_session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    agree = float((_top1(float_session, name, held) == _top1(int8_session, name, held)).mean())
    feed = {name: held[:1]}
    return QuantReport(float_model.stat().st_size, len(data),
                       _latency(float_session, feed, runs), _latency(int8_session, feed, runs),
                       agree, len(held), len(calib))
