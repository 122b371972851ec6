"""The original U-Net (specs/unet.arch) against its paper and a hand-written PyTorch U-Net: the
zoo row of a spec that reproduces no torchvision builder (tests/zoo_models.py). torchvision's
segmentation specs (FCN, DeepLabV3, LR-ASPP) are zoo rows checked by tests/test_zoo.py.
"""

from __future__ import annotations

import re

import torch
from conftest import SPECS
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

import archspec


class DoubleConv(nn.Module):
    """Two unpadded 3x3 convolutions, each followed by a ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3)
        self.conv2 = nn.Conv2d(cout, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))))


class UNet(nn.Module):
    """Ronneberger et al. 2015, Section 2 and Figure 1, written out by hand."""

    def __init__(self, classes: int = 2) -> None:
        super().__init__()
        widths = [64, 128, 256, 512, 1024]
        for level, (cin, cout) in enumerate(zip([1, *widths], widths, strict=False), 1):
            self.add_module(f"enc{level}", DoubleConv(cin, cout))
        for level in (4, 3, 2, 1):
            c = widths[level - 1]
            self.add_module(f"up{level}", nn.ConvTranspose2d(2 * c, c, 2, stride=2))
            self.add_module(f"dec{level}", DoubleConv(2 * c, c))
        self.head = nn.Conv2d(64, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level in range(1, 6):
            x = getattr(self, f"enc{level}")(x if level == 1 else F.max_pool2d(x, 2))
            skips.append(x)
        for level in (4, 3, 2, 1):
            x = getattr(self, f"up{level}")(x)
            skip = skips[level - 1]
            top = (skip.shape[-2] - x.shape[-2]) // 2
            left = (skip.shape[-1] - x.shape[-1]) // 2
            skip = skip[..., top:top + x.shape[-2], left:left + x.shape[-1]]
            x = getattr(self, f"dec{level}")(torch.cat([skip, x], dim=1))
        return self.head(x)


# Figure 1: (channels, side) of every map, level by level.
UNET_FIGURE1 = {
    "enc1.conv1": (64, 570), "enc1.conv2": (64, 568), "pool1": (64, 284),
    "enc2.conv1": (128, 282), "enc2.conv2": (128, 280), "pool2": (128, 140),
    "enc3.conv1": (256, 138), "enc3.conv2": (256, 136), "pool3": (256, 68),
    "enc4.conv1": (512, 66), "enc4.conv2": (512, 64), "pool4": (512, 32),
    "enc5.conv1": (1024, 30), "enc5.conv2": (1024, 28),
    "up4": (512, 56), "cat4": (1024, 56), "dec4.conv1": (512, 54), "dec4.conv2": (512, 52),
    "up3": (256, 104), "cat3": (512, 104), "dec3.conv1": (256, 102), "dec3.conv2": (256, 100),
    "up2": (128, 200), "cat2": (256, 200), "dec2.conv1": (128, 198), "dec2.conv2": (128, 196),
    "up1": (64, 392), "cat1": (128, 392), "dec1.conv1": (64, 390), "dec1.conv2": (64, 388),
    "head": (2, 388),
}


def test_unet_figure1_shapes() -> None:
    """A 572x572 one-channel tile, every map of Figure 1, a 388x388 two-class output."""
    report = archspec.analyze(archspec.load(SPECS / "unet.arch"))
    shapes = {r.name: r.output_shape[1:] for r in report.layers}
    assert report.inputs["x"][1:] == [1, 572, 572]
    assert {k: shapes[k] for k in UNET_FIGURE1} == \
        {k: [c, s, s] for k, (c, s) in UNET_FIGURE1.items()}
    assert report.outputs["output"][1:] == [2, 388, 388]


def test_unet_equals_hand_written_pytorch() -> None:
    """Params (the header's count), buffers and MACs at 572x572 equal the hand-written U-Net's;
    it loads the compiled spec's state_dict (biases made non-zero) strictly and gives the same
    output, at 204x204 (a side 16k + 124, as 572)."""
    spec = archspec.load(SPECS / "unet.arch")
    totals = archspec.analyze(spec).totals
    with torch.device("meta"):
        meta = UNet()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta(torch.empty(1, 1, 572, 572, device="meta"))
    params = sum(p.numel() for p in meta.parameters())
    header = re.search(r"([\d,]+) params", (SPECS / "unet.arch").read_text())
    assert header and int(header[1].replace(",", "")) == params
    assert (totals["params"], totals["buffers"], totals["macs"]) == \
        (params, 0, counter.get_total_flops() // 2)

    torch.manual_seed(0)
    ours = archspec.to_torch(archspec.load(SPECS / "unet.arch", size=204)).eval()
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if name.endswith(".bias"):
                p.uniform_(-0.5, 0.5)
    with torch.device("meta"):
        hand = UNet().eval()
    hand.load_state_dict(ours.state_dict(), strict=True, assign=True)
    x = torch.randn(1, 1, 204, 204)
    with torch.no_grad():
        want = hand(x)
        got = ours(x)
    assert want.shape == (1, 2, 20, 20)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
