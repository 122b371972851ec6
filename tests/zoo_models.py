"""The torchvision zoo: every spec in specs/ that reproduces a torchvision classification
builder, and how tests/test_zoo.py checks it. bench/zoo.py renders this table as docs/zoo.md.

Plain data (no torch import), so that the docs check stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPECS = Path(__file__).resolve().parent.parent / "specs"


@dataclass(frozen=True)
class ZooModel:
    """``specs/{name}.arch`` reproduces ``torchvision.models.{name}(weights=None, **kwargs)``.

    ``size`` is the input side of both (the spec's ``input``). ``full`` is the input side of
    the FULL comparison (weights, outputs, seeded initialisation, eject, ONNX), None where the
    spec gets the STATIC comparison only (params, buffers, MACs, state_dict keys and shapes).
    """

    name: str
    family: str
    size: int = 224
    full: int | None = None
    kwargs: tuple[tuple[str, object], ...] = ()

    @property
    def path(self) -> Path:
        return SPECS / f"{self.name}.arch"


ZOO: tuple[ZooModel, ...] = (
    ZooModel("alexnet", "AlexNet", full=224),
    ZooModel("vgg11", "VGG"),
    ZooModel("vgg13", "VGG"),
    ZooModel("vgg16", "VGG"),
    ZooModel("vgg19", "VGG"),
    ZooModel("vgg11_bn", "VGG", full=224),
    ZooModel("vgg13_bn", "VGG"),
    ZooModel("vgg16_bn", "VGG"),
    ZooModel("vgg19_bn", "VGG"),
    ZooModel("googlenet", "GoogLeNet", full=64,
             kwargs=(("aux_logits", False), ("init_weights", True))),
    ZooModel("resnet18", "ResNet", full=64),
    ZooModel("resnet34", "ResNet"),
    ZooModel("resnet50", "ResNet"),
    ZooModel("resnet101", "ResNet"),
    ZooModel("resnet152", "ResNet"),
    ZooModel("resnext50_32x4d", "ResNeXt", full=64),
    ZooModel("resnext101_32x8d", "ResNeXt"),
    ZooModel("resnext101_64x4d", "ResNeXt"),
    ZooModel("wide_resnet50_2", "Wide ResNet", full=64),
    ZooModel("wide_resnet101_2", "Wide ResNet"),
    ZooModel("densenet121", "DenseNet", full=64),
    ZooModel("densenet161", "DenseNet"),
    ZooModel("densenet169", "DenseNet"),
    ZooModel("densenet201", "DenseNet"),
    ZooModel("squeezenet1_0", "SqueezeNet", full=64),
    ZooModel("squeezenet1_1", "SqueezeNet", full=64),
    ZooModel("mnasnet0_5", "MNASNet", full=64),
    ZooModel("mnasnet0_75", "MNASNet"),
    ZooModel("mnasnet1_0", "MNASNet"),
    ZooModel("mnasnet1_3", "MNASNet"),
    ZooModel("inception_v3", "Inception", size=299, full=299, kwargs=(("init_weights", True),)),
    ZooModel("mobilenet_v2", "MobileNetV2", full=64),
    ZooModel("mobilenet_v3_small", "MobileNetV3", full=64),
    ZooModel("mobilenet_v3_large", "MobileNetV3"),
    ZooModel("efficientnet_b0", "EfficientNet", full=64),
    ZooModel("efficientnet_b1", "EfficientNet", size=240),
    ZooModel("efficientnet_b2", "EfficientNet", size=288),
    ZooModel("efficientnet_b3", "EfficientNet", size=300),
    ZooModel("efficientnet_b4", "EfficientNet", size=380),
    ZooModel("efficientnet_b5", "EfficientNet", size=456),
    ZooModel("efficientnet_b6", "EfficientNet", size=528),
    ZooModel("efficientnet_b7", "EfficientNet", size=600),
    ZooModel("efficientnet_v2_s", "EfficientNetV2", size=384, full=64),
    ZooModel("efficientnet_v2_m", "EfficientNetV2", size=480),
    ZooModel("efficientnet_v2_l", "EfficientNetV2", size=480),
    ZooModel("regnet_y_400mf", "RegNetY", full=64),
    ZooModel("regnet_y_800mf", "RegNetY"),
    ZooModel("regnet_y_1_6gf", "RegNetY"),
    ZooModel("regnet_y_3_2gf", "RegNetY"),
    ZooModel("regnet_y_8gf", "RegNetY"),
    ZooModel("regnet_y_16gf", "RegNetY"),
    ZooModel("regnet_y_32gf", "RegNetY"),
    ZooModel("regnet_y_128gf", "RegNetY", size=384),
    ZooModel("regnet_x_400mf", "RegNetX", full=64),
    ZooModel("regnet_x_800mf", "RegNetX"),
    ZooModel("regnet_x_1_6gf", "RegNetX"),
    ZooModel("regnet_x_3_2gf", "RegNetX"),
    ZooModel("regnet_x_8gf", "RegNetX"),
    ZooModel("regnet_x_16gf", "RegNetX"),
    ZooModel("regnet_x_32gf", "RegNetX"),
    ZooModel("shufflenet_v2_x0_5", "ShuffleNetV2", full=64),
    ZooModel("shufflenet_v2_x1_0", "ShuffleNetV2"),
    ZooModel("shufflenet_v2_x1_5", "ShuffleNetV2"),
    ZooModel("shufflenet_v2_x2_0", "ShuffleNetV2"),
)

BY_NAME = {m.name: m for m in ZOO}
FULL = tuple(m for m in ZOO if m.full is not None)
