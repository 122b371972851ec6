"""The classic-paper and course specs, checked against the published tables and against the
same networks written by hand in PyTorch (the independent oracle for params and shapes)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from conftest import SPECS
from torch import nn

import archspec


def _report(rel: str, **overrides: object) -> archspec.views.report.Report:
    return archspec.analyze(archspec.load(SPECS / rel, **overrides))


def _shapes(rel: str, **overrides: object) -> dict[str, list[int]]:
    return {r.name: r.output_shape[1:] for r in _report(rel, **overrides).layers}


def _nparams(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_lenet5_keras_total_is_61706() -> None:
    assert _report("classic/lenet5_keras.arch").totals["params"] == 61_706


def test_lenet5_1998_paper_sizes_and_params() -> None:
    rows = {r.name: r for r in _report("classic/lenet5_1998.arch").layers}
    sizes = {"c1": [6, 28, 28], "s2": [6, 14, 14], "c3": [16, 10, 10], "s4": [16, 5, 5],
             "c5": [120, 1, 1], "f6": [84]}
    assert {k: rows[k].output_shape[1:] for k in sizes} == sizes
    assert (rows["c1"].params, rows["c5"].params, rows["f6"].params) == (156, 48_120, 10_164)


def test_lenet5_bn_equals_hand_written_torch() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.BatchNorm1d(120), nn.ReLU(),
        nn.Linear(120, 84), nn.BatchNorm1d(84), nn.ReLU(), nn.Linear(84, 10))
    totals = _report("classic/lenet5_bn.arch").totals
    assert totals["params"] == _nparams(model) == 62_158
    assert totals["buffers"] == sum(b.numel() for b in model.buffers())


def test_alexnet_2012_figure2_sizes_and_60m_params() -> None:
    shapes = _shapes("classic/alexnet_2012.arch")
    assert shapes["conv1.0"] == [96, 55, 55]
    assert shapes["conv2.0"] == [256, 27, 27]
    assert shapes["conv3.0"] == [384, 13, 13]
    assert shapes["conv4.0"] == [384, 13, 13]
    assert shapes["conv5.0"] == [256, 13, 13]
    assert shapes["pool5"] == [256, 6, 6]
    assert shapes["fc6.0"] == shapes["fc7.0"] == [4096]
    params = _report("classic/alexnet_2012.arch").totals["params"]
    assert abs(params - 60e6) / 60e6 < 0.05  # the paper: "60 million parameters"


# Szegedy et al. 2014, Table 1: output size and params (K) per stage. (Table 1's 2.7K for conv1
# cannot be a 7x7x3x64 convolution, which has 9.2K weights; it is not checked.)
GOOGLENET_TABLE1 = {
    "conv1": ([64, 112, 112], None), "pool1": ([64, 56, 56], None),
    "conv2": ([192, 56, 56], 112), "pool2": ([192, 28, 28], None),
    "inception3a": ([256, 28, 28], 159), "inception3b": ([480, 28, 28], 380),
    "pool3": ([480, 14, 14], None), "inception4a": ([512, 14, 14], 364),
    "inception4b": ([512, 14, 14], 437), "inception4c": ([512, 14, 14], 463),
    "inception4d": ([528, 14, 14], 580), "inception4e": ([832, 14, 14], 840),
    "pool4": ([832, 7, 7], None), "inception5a": ([832, 7, 7], 1072),
    "inception5b": ([1024, 7, 7], 1388), "avgpool": ([1024, 1, 1], None),
    "fc": ([1000], 1000),
}


# Rows whose params column disagrees with the same row's filter counts (4c: 497.5K from its
# own columns vs 463K printed; 5a: 1018K vs 1072K).
TABLE1_OFF = {"inception4c", "inception5a"}


def test_googlenet_2014_table1() -> None:
    report = _report("classic/googlenet_2014.arch")
    rows = {r.name: r for r in (*report.layers, *report.blocks)}
    for name, (shape, kparams) in GOOGLENET_TABLE1.items():
        assert rows[name].output_shape[1:] == shape, name
        if kparams is not None:  # Table 1 counts weights only, in units of 1024, rounded
            weights = sum(r.params - (r.output_shape[1] if r.op in ("conv2d", "linear") else 0)
                          for r in report.layers if r.name.split(".")[0] == name)
            tolerance = 0.08 if name in TABLE1_OFF else 0.02
            assert abs(weights / 1024 - kparams) / kparams < tolerance, name


def test_nin_d2l_shapes() -> None:
    shapes = _shapes("classic/nin.arch")
    assert [shapes[k] for k in ("0.5", "1", "2.5", "3", "4.5", "5", "7.5", "8", "9")] == [
        [96, 54, 54], [96, 26, 26], [256, 26, 26], [256, 12, 12], [384, 12, 12],
        [384, 5, 5], [10, 5, 5], [10, 1, 1], [10]]


class _D2LResidual(nn.Module):
    """d2l.ai's Residual block, transcribed."""

    def __init__(self, cin: int, cout: int, use_1x1conv: bool, strides: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv3 = nn.Conv2d(cin, cout, 1, stride=strides) if use_1x1conv else None
        self.bn1, self.bn2 = nn.BatchNorm2d(cout), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (self.conv3(x) if self.conv3 is not None else x))


def _d2l_resnet18() -> nn.Module:
    def stage(cin: int, cout: int, first: bool) -> list[nn.Module]:
        return [_D2LResidual(cin, cout, not first, 1 if first else 2),
                _D2LResidual(cout, cout, False)]

    return nn.Sequential(
        nn.Conv2d(1, 64, 7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1), *stage(64, 64, True), *stage(64, 128, False),
        *stage(128, 256, False), *stage(256, 512, False), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(512, 10))


def test_resnet18_d2l_equals_hand_written() -> None:
    report = _report("classic/resnet18_d2l.arch")
    model = _d2l_resnet18()
    assert report.totals["params"] == _nparams(model)
    blocks = {b.name: b.output_shape[1:] for b in report.blocks}
    assert [blocks[k] for k in ("b1", "b2", "b3", "b4", "b5")] == [
        [64, 56, 56], [64, 56, 56], [128, 28, 28], [256, 14, 14], [512, 7, 7]]
    assert model(torch.zeros(1, 1, 224, 224)).shape[1:] == (10,)


def test_vgg11_blocks_equals_torchvision_vgg11() -> None:
    report = _report("classic/vgg11_blocks.arch")
    assert report.totals["params"] == _nparams(torchvision.models.vgg11())
    one_channel = _report("classic/vgg11_blocks.arch", in_channels=1, num_classes=10)
    sizes = [b.output_shape[1:] for b in one_channel.blocks]
    assert sizes == [[64, 112, 112], [128, 56, 56], [256, 28, 28], [512, 14, 14], [512, 7, 7]]


def _course(stages: list[nn.Module], head: list[nn.Module]) -> nn.Module:
    return nn.Sequential(*stages, *head)


def _cnn_stages(widths: list[int], double: bool = False) -> list[nn.Module]:
    layers: list[nn.Module] = []
    cin = 3
    for w in widths:
        layers += [nn.Conv2d(cin, w, 3, padding=1), nn.ReLU()]
        if double:
            layers += [nn.Conv2d(w, w, 3, padding=1), nn.ReLU()]
        layers.append(nn.MaxPool2d(2))
        cin = w
    return layers


@pytest.mark.parametrize("size", [32, 64, 96])
def test_course_examples_equal_hand_written(size: int) -> None:
    feat = lambda c, n: c * (size // 2**n) ** 2  # noqa: E731
    models = {
        "mlp": nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, 512), nn.ReLU(),
                             nn.Dropout(0.5), nn.Linear(512, 128), nn.ReLU(), nn.Dropout(0.5),
                             nn.Linear(128, 4)),
        "cnn1": _course(_cnn_stages([16, 32, 64]), [nn.Flatten(), nn.Linear(feat(64, 3), 128),
                                                    nn.ReLU(), nn.Linear(128, 4)]),
        "cnn2": _course(_cnn_stages([16, 32], double=True),
                        [nn.Flatten(), nn.Linear(feat(32, 2), 128), nn.ReLU(),
                         nn.Linear(128, 4)]),
        "cnn3": _course(_cnn_stages([16, 32, 64]), [nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                                    nn.Linear(64, 4)]),
        "cnn4": _course(_cnn_stages([16, 32, 64]), [nn.Flatten(), nn.Dropout(0.5),
                                                    nn.Linear(feat(64, 3), 128), nn.ReLU(),
                                                    nn.Dropout(0.5), nn.Linear(128, 4)]),
    }
    for name, model in models.items():
        report = _report(f"examples/{name}.arch", size=size)
        assert report.totals["params"] == _nparams(model), name
        out = model(torch.zeros(2, 3, size, size))
        assert report.outputs["output"][1:] == list(out.shape[1:]), name
