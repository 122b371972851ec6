"""Shared fixtures: the spec library, published reference numbers, golden-file updating."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
GOLDEN = Path(__file__).resolve().parent / "golden"

ALL_SPECS = sorted(p for p in SPECS.rglob("*.arch") if "blocks" not in p.parts)

# references.md / torchvision 0.29.1 weight metadata: params, `_ops` GMACs, exact MACs if known.
TORCHVISION = {
    "alexnet": (61_100_840, "0.714", 714_188_480),
    "vgg11": (132_863_336, "7.609", 7_609_090_048),
    "vgg16": (138_357_544, "15.47", 15_470_264_320),
    "vgg19": (143_667_240, "19.632", None),
    "vgg16_bn": (138_365_992, "15.47", None),
    "googlenet": (6_624_904, "1.498", 1_498_376_192),
    "resnet18": (11_689_512, "1.814", 1_814_073_344),
    "resnet34": (21_797_672, "3.664", 3_663_761_408),
    "resnet50": (25_557_032, "4.089", 4_089_184_256),
    "resnet101": (44_549_160, "7.801", None),
    "resnet152": (60_192_808, "11.514", 11_513_626_624),
    "densenet121": (7_978_856, "2.834", 2_834_161_664),
    "densenet169": (14_149_480, "3.36", None),
    "densenet201": (20_013_928, "4.291", None),
}


# A DAG with two inputs and two outputs, used by the language, torch and eject tests.
TWO_TOWER = """
network two_tower
input image: 3x32x32
input meta: 10
output logits, embedding
a = conv2d(8, 3, padding=1)(image)
pooled = global_avgpool2d()(a) -> flatten
m = linear(8)(meta)
embedding = add(pooled, m)
logits = linear(2)(embedding)
"""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/* from the current output")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def spec_id(path: Path) -> str:
    return str(path.relative_to(SPECS).with_suffix(""))
