"""Speed of `archspec import` (not a timed test): ResNet-50 from PyTorch and from ONNX, each
in a fresh process (so the torch import counts; the imports and the import itself are also
timed apart), and ResNet ONNX files of growing depth with the growth exponent of the import
time (1.0 is linear).

    python bench/import_speed.py
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path


def fresh(setup: str, code: str) -> tuple[float, float, float]:
    """A fresh Python process runs ``setup`` (imports) then ``code``: (seconds of the whole
    process, of the imports, of ``code``)."""
    timed = (f"import time; t0 = time.perf_counter(); {setup}; t1 = time.perf_counter(); "
             f"{code}; t2 = time.perf_counter(); print(t1 - t0, t2 - t1)")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", timed], check=True, capture_output=True,
                         text=True).stdout.split()
    return time.perf_counter() - start, float(out[-2]), float(out[-1])


def report(label: str, times: tuple[float, float, float]) -> None:
    total, imports, work = times
    print(f"{label}: {total:.2f} s in a fresh process ({imports:.2f} s importing torch, "
          f"torchvision/onnx and archspec; {work:.2f} s importing the model)")


def deep_resnet_onnx(blocks: int, path: Path) -> None:
    """A ResNet of ``blocks`` basic blocks at 16 channels, exported to ONNX."""
    import torch
    from torch import nn
    from torchvision.models.resnet import BasicBlock

    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1),
                        nn.Sequential(*[BasicBlock(16, 16) for _ in range(blocks)])).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(1, 3, 16, 16),), str(path), dynamo=False)


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    setup = "from archspec.importers import import_model as m; import archspec.importers.{}; {}"
    report("resnet50 from PyTorch", fresh(setup.format("torch_route", "import torchvision"),
                                          "m('torchvision.models:resnet50')"))
    import torch
    import torchvision

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(torchvision.models.resnet50().eval(), (torch.randn(1, 3, 224, 224),),
                          str(tmp / "r50.onnx"), dynamo=False)
    report("resnet50 from ONNX   ", fresh(setup.format("onnx_route", "import onnx"),
                                          f"m({str(tmp / 'r50.onnx')!r})"))
    from archspec.importers import import_model

    rows = []
    for blocks in (125, 250, 500, 1000):
        deep_resnet_onnx(blocks, tmp / f"d{blocks}.onnx")
        start = time.perf_counter()
        import_model(str(tmp / f"d{blocks}.onnx"))
        rows.append((blocks, time.perf_counter() - start))
        print(f"{blocks:5d} blocks: {rows[-1][1]:.2f} s")
    (n0, t0), (n1, t1) = rows[0], rows[-1]
    print(f"growth exponent: {math.log(t1 / t0) / math.log(n1 / n0):.2f}")


if __name__ == "__main__":
    main()
