"""Speed of `archspec import` (not a timed test): ResNet-50 from PyTorch and from ONNX, each
in a fresh process (so the torch import counts), and ResNet ONNX files of growing depth with
the growth exponent of the import time (1.0 is linear).

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


def fresh(code: str) -> float:
    """Seconds a fresh Python process takes to run ``code``."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


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
    r50 = "from archspec.importers import import_model as m; "
    code = r50 + "m('torchvision.models:resnet50')"
    print(f"resnet50 from PyTorch: {fresh(code):.2f} s")
    import torch
    import torchvision

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(torchvision.models.resnet50().eval(), (torch.randn(1, 3, 224, 224),),
                          str(tmp / "r50.onnx"), dynamo=False)
    code = r50 + f"m({str(tmp / 'r50.onnx')!r})"
    print(f"resnet50 from ONNX:    {fresh(code):.2f} s")
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
