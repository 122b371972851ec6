"""Shared fixtures: the spec library, the torchvision specs, golden-file updating, a headless
Chromium for the tests that look at pages."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
GOLDEN = Path(__file__).resolve().parent / "golden"

ALL_SPECS = sorted(p for p in SPECS.rglob("*.arch") if "blocks" not in p.parts)
# Specs small enough to build, run, eject and export at their own input size in every
# per-spec test. The torchvision reproductions at the top of specs/ (up to 645 M parameters,
# inputs up to 600x600) are checked by test_zoo*.py: statically at full size, and the smallest
# of each family at run time on small inputs; the timm reproductions in specs/timm/ by
# test_timm.py, layer by layer on small inputs.
RUN_SPECS = [p for p in ALL_SPECS if p.parent != SPECS and p.parent.name != "timm"]

# The torchvision specs test_onnx.py exports with torchvision's weights at 224x224.
# tests/zoo_models.py lists the whole torchvision zoo and test_zoo.py checks it.
TORCHVISION = ("alexnet", "vgg11", "vgg16", "vgg19", "vgg16_bn", "googlenet", "resnet18",
               "resnet34", "resnet50", "resnet101", "resnet152", "densenet121", "densenet169",
               "densenet201")


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


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker's torch uses its share of the cores (at least one), so
    that the workers' thread pools do not oversubscribe the machine."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers is not None and importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/* from the current output")
    parser.addoption("--long", action="store_true",
                     help="fuzz with 20,000 .arch and 10,000 YAML mutants (tests/test_fuzz.py)")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def spec_id(path: Path) -> str:
    return str(path.relative_to(SPECS).with_suffix(""))


CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome",
                                                "chrome")) if p), None)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium (through playwright with the system browser, no download); the
    tests that use it are skipped, saying why, where there is none."""
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium; .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()
