"""The zoo: every spec in specs/ that reproduces a torchvision classification, segmentation or
video builder, and how tests/test_zoo.py checks it; and the specs of other published models,
checked by their own tests against their papers. bench/zoo.py renders this table as docs/zoo.md.

Plain data (no torch import), so that the docs check stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPECS = Path(__file__).resolve().parent.parent / "specs"


@dataclass(frozen=True)
class ZooModel:
    """``specs/{name}.arch``, loaded with the network parameters ``params``, reproduces
    ``torchvision.models.{name}(weights=None, **kwargs)`` (``task="classification"``) or
    ``torchvision.models.segmentation.{name}(weights=None, weights_backbone=None, **kwargs)``
    (``task="segmentation"``) or ``torchvision.models.video.{name}(weights=None, **kwargs)``
    (``task="video"``); a spec may have several rows, one per parameter setting.

    ``size`` is the input side of both (the spec's ``input``, ``channels`` x size x size; a
    video model's is ``channels`` x ``frames`` x size x size, ``full_frames`` frames in the
    FULL comparison, ``frames`` unless given).
    ``full`` is the input side of the FULL comparison (weights, outputs, seeded initialisation,
    eject, ONNX), None where the row gets the STATIC comparison only (params, buffers, MACs,
    state_dict keys and shapes). ``published`` marks the row of the published weights' model,
    whose ``num_params`` and ``_ops`` the spec's header quotes.

    A spec of no torchvision builder has ``reference``: what it is checked against, by the test
    file ``tests``. ``more`` names the checks of tests/test_zoo_full.py beyond the row's STATIC and
    FULL ones (S3D's, whose FULL input would be too large).
    """

    name: str
    family: str
    size: int = 224
    full: int | None = None
    kwargs: tuple[tuple[str, object], ...] = ()
    params: tuple[tuple[str, object], ...] = ()
    task: str = "classification"
    published: bool = True
    channels: int = 3
    reference: str = ""
    tests: str = ""
    frames: int | None = None
    full_frames: int | None = None
    more: str = ""

    @property
    def path(self) -> Path:
        return SPECS / f"{self.name}.arch"

    def shape(self, full: bool = False) -> tuple[int, ...]:
        """The per-sample input shape: the spec's (``size``), or the FULL comparison's
        (``full``, and a video model's ``full_frames``)."""
        side = self.full if full else self.size
        assert side is not None
        if self.frames is None:
            return (self.channels, side, side)
        frames = (self.full_frames or self.frames) if full else self.frames
        return (self.channels, frames, side, side)

    @property
    def id(self) -> str:
        """The spec's name and its parameters: unique over the table."""
        return "-".join([self.name, *(f"{k}={v}" for k, v in self.params)])

    @property
    def torchvision(self) -> bool:
        return not self.reference

    @property
    def seeded_init_matches(self) -> bool:
        """Whether the same seed gives torchvision's weights: not for segmentation models (see
        SEEDED_INIT_DIFFERS)."""
        return self.task in ("classification", "video")


SEEDED_INIT_DIFFERS = (
    "torchvision's segmentation builders draw the default weights of the backbone's "
    "classifier, which the model discards, and run the backbone's init loop before they build "
    "the heads; archspec builds every layer of the spec, then applies the init rules")


def _timm(name: str, family: str) -> ZooModel:
    """``specs/timm/{name}.arch``, which reproduces timm 1.0.31's ``{name}`` (module names,
    state_dict, every layer's output), as tests/test_timm.py checks."""
    return ZooModel(f"timm/{name}", family, reference="timm 1.0.31", tests="test_timm.py")


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
    ZooModel("googlenet", "GoogLeNet", kwargs=(("aux_logits", True), ("init_weights", True)),
             params=(("aux_logits", True),), published=False),
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
    ZooModel("inception_v3", "Inception", size=299,
             kwargs=(("aux_logits", False), ("init_weights", False)),
             params=(("aux_logits", False),), published=False),
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
    ZooModel("convnext_tiny", "ConvNeXt", full=64),
    ZooModel("convnext_small", "ConvNeXt"),
    ZooModel("convnext_base", "ConvNeXt"),
    ZooModel("convnext_large", "ConvNeXt"),
    ZooModel("vit_b_16", "ViT"),
    ZooModel("vit_b_32", "ViT"),
    # the FULL comparison of ViT at 64 x 64 (4 patches and the class token), both models built
    # for that side: a ViT's position embedding is sized by its input
    ZooModel("vit_b_32", "ViT", size=64, full=64, kwargs=(("image_size", 64),),
             params=(("image_size", 64),), published=False),
    ZooModel("vit_l_16", "ViT"),
    ZooModel("vit_l_32", "ViT"),
    ZooModel("vit_h_14", "ViT", size=518, kwargs=(("image_size", 518),),
             params=(("image_size", 518),)),
    ZooModel("swin_t", "Swin", full=64),
    ZooModel("swin_s", "Swin"),
    ZooModel("swin_b", "Swin"),
    ZooModel("swin_v2_t", "Swin V2", size=256, full=64),
    ZooModel("swin_v2_s", "Swin V2", size=256),
    ZooModel("swin_v2_b", "Swin V2", size=256),
    ZooModel("maxvit_t", "MaxViT", full=224),
    ZooModel("fcn_resnet50", "FCN", size=520, full=64, kwargs=(("aux_loss", True),),
             params=(("aux", True),), task="segmentation"),
    ZooModel("fcn_resnet50", "FCN", size=520, kwargs=(("aux_loss", False),),
             params=(("aux", False),), task="segmentation", published=False),
    ZooModel("fcn_resnet101", "FCN", size=520, kwargs=(("aux_loss", True),),
             params=(("aux", True),), task="segmentation"),
    ZooModel("fcn_resnet101", "FCN", size=520, kwargs=(("aux_loss", False),),
             params=(("aux", False),), task="segmentation", published=False),
    ZooModel("deeplabv3_resnet50", "DeepLabV3", size=520, kwargs=(("aux_loss", True),),
             params=(("aux", True),), task="segmentation"),
    ZooModel("deeplabv3_resnet50", "DeepLabV3", size=520, kwargs=(("aux_loss", False),),
             params=(("aux", False),), task="segmentation", published=False),
    ZooModel("deeplabv3_resnet101", "DeepLabV3", size=520, kwargs=(("aux_loss", True),),
             params=(("aux", True),), task="segmentation"),
    ZooModel("deeplabv3_resnet101", "DeepLabV3", size=520, kwargs=(("aux_loss", False),),
             params=(("aux", False),), task="segmentation", published=False),
    ZooModel("deeplabv3_mobilenet_v3_large", "DeepLabV3", size=520, full=96,
             kwargs=(("aux_loss", True),), params=(("aux", True),), task="segmentation"),
    ZooModel("deeplabv3_mobilenet_v3_large", "DeepLabV3", size=520,
             kwargs=(("aux_loss", False),), params=(("aux", False),), task="segmentation",
             published=False),
    ZooModel("lraspp_mobilenet_v3_large", "LR-ASPP", size=520, full=96, task="segmentation"),
    ZooModel("unet", "U-Net", size=572, channels=1,
             reference="the paper's Figure 1 (every map's shape), a hand-written PyTorch "
                       "U-Net (params, MACs, outputs on the same weights)",
             tests="test_zoo_segmentation.py"),
    # torchvision.models.video's classifiers, on C x T x H x W clips
    ZooModel("r3d_18", "Video ResNet", size=112, frames=16, full=32, full_frames=8,
             task="video"),
    ZooModel("mc3_18", "Video ResNet", size=112, frames=16, task="video"),
    ZooModel("r2plus1d_18", "Video ResNet", size=112, frames=16, task="video"),
    ZooModel("s3d", "S3D", frames=16, task="video",
             more="same seed same weights, layers and output at 16x64x64 (both models' 2x7x7 "
                  "head pool made adaptive), ONNX at 13x209x209"),
    ZooModel("swin3d_t", "Video Swin", frames=16, full=30, full_frames=3, task="video"),
    ZooModel("swin3d_s", "Video Swin", frames=16, task="video"),
    ZooModel("swin3d_b", "Video Swin", frames=16, task="video"),
    ZooModel("mvit_v2_s", "MViT", frames=16, task="video"),
    # the builder fixes the clip (16x224x224); a coarser patch embedding makes the tokens few
    ZooModel("mvit_v2_s", "MViT", frames=16, full=224, task="video", published=False,
             kwargs=(("patch_embed_stride", (8, 28, 28)),),
             params=(("patch_embed_stride", (8, 28, 28)),)),
    ZooModel("mvit_v1_b", "MViT", frames=16, task="video"),
    # timm 1.0.31's models, checked against live timm by tests/test_timm.py
    _timm("ese_vovnet19b_dw", "VoVNet"),
    _timm("inception_v4", "Inception"),
    _timm("xception41", "Xception"),
    _timm("starnet_s1", "StarNet"),
    _timm("dpn68", "DPN"),
    _timm("mobilenetv4_conv_small", "MobileNetV4"),
    _timm("regnetz_b16", "RegNetZ"),
    _timm("rexnet_100", "ReXNet"),
    _timm("skresnet18", "SKNet"),
    _timm("hgnetv2_b0", "HGNetV2"),
    _timm("hrnet_w18_small", "HRNet"),
    _timm("mambaout_femto", "MambaOut"),
    _timm("tresnet_m", "TResNet"),
    _timm("vit_small_patch16_224", "ViT"),
    _timm("cait_xxs24_224", "CaiT"),
    _timm("resmlp_12_224", "ResMLP"),
    _timm("gmlp_s16_224", "gMLP"),
    _timm("beit_base_patch16_224", "BEiT"),
    _timm("eva02_tiny_patch14_224", "EVA-02"),
    _timm("swin_tiny_patch4_window7_224", "Swin"),
    _timm("tiny_vit_5m_224", "TinyViT"),
    _timm("davit_tiny", "DaViT"),
    _timm("coatnet_0_rw_224", "CoAtNet"),
    _timm("nfnet_l0", "NFNet"),
    _timm("fastvit_t8", "FastViT"),
    _timm("pvt_v2_b0", "PVTv2"),
    _timm("twins_svt_small", "Twins"),
    _timm("focalnet_tiny_srf", "FocalNet"),
    _timm("crossvit_tiny_240", "CrossViT"),
    _timm("efficientvit_m0", "EfficientViT"),
)

TORCHVISION = tuple(m for m in ZOO if m.torchvision)
FULL = tuple(m for m in TORCHVISION if m.full is not None)
