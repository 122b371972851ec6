"""Tensors no input computes (ops/constants.py): `parameter`, `buffer` and `take`.

Checked against independent references: the index generators against timm's own functions
(Swin's and BEiT's relative-position indices, EfficientViT's attention-bias indices, built by
the timm module itself), values against hand-written torch, the ONNX export against
onnxruntime, the ejected source against the compiled module; the analysis counts constants
once per forward, not per sample, and frozen parameters as non-trainable, as torch does.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import archspec
from archspec.backends.eject import eject
from archspec.lang.diagnostics import ArchspecError

timm = pytest.importorskip("timm")

# A relative-position bias as Swin and BEiT add it: a learnable table indexed by a constant
# index, (hw, hw, heads) -> (heads, hw, hw), added to the scores; a layer scale (D,) on tokens.
BIAS_NET = """network t
input x: [2, 16, 16]
table = parameter([49, 2], init="normal", std=1.0)
index = buffer("relative_position_index", [4, 4])
bias = take(0)(table, index) -> permute([2, 0, 1])
scores = add(x, bias)
gamma = parameter([16], init="constant", value=0.5)
y = mul(scores, gamma)
output y
"""


def _spec(text: str) -> archspec.Spec:
    return archspec.loads(text)


@pytest.fixture(scope="module")
def bias_model() -> torch.nn.Module:
    return archspec.to_torch(_spec(BIAS_NET)).eval()


def _bias_reference(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The same computation in plain torch, with timm's Swin index."""
    from timm.models.swin_transformer import get_relative_position_index

    index = get_relative_position_index(4, 4)
    bias = model.table[index.view(-1)].view(16, 16, -1).permute(2, 0, 1)
    return (x + bias) * model.gamma


def test_parameter_keys_shapes_and_values(bias_model: torch.nn.Module) -> None:
    state = bias_model.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {"table": (49, 2), "gamma": (16,)}
    assert torch.equal(state["gamma"], torch.full((16,), 0.5))
    x = torch.randn(3, 2, 16, 16)
    torch.testing.assert_close(bias_model(x), _bias_reference(bias_model, x))


@pytest.mark.parametrize("size", [(4, 4), (7, 7), (3, 5)])
def test_relative_position_index_is_swins(size: tuple[int, int]) -> None:
    from timm.models.swin_transformer import get_relative_position_index

    spec = _spec(f"network t\ninput x: [1]\ny = buffer(\"relative_position_index\", "
                 f"{list(size)})\noutput y\n")
    got = archspec.to_torch(spec)(torch.zeros(1, 1))
    assert torch.equal(got[0], get_relative_position_index(*size))


@pytest.mark.parametrize("size", [(4, 4), (14, 14), (2, 3)])
def test_relative_position_index_cls_is_beits(size: tuple[int, int]) -> None:
    from timm.models.beit import gen_relative_position_index

    spec = _spec(f"network t\ninput x: [1]\ny = buffer(\"relative_position_index_cls\", "
                 f"{list(size)})\noutput y\n")
    got = archspec.to_torch(spec)(torch.zeros(1, 1))
    assert torch.equal(got[0], gen_relative_position_index(size))


@pytest.mark.parametrize("resolution", [3, 7])
def test_attention_bias_index_is_efficientvits(resolution: int) -> None:
    from timm.models.efficientvit_msra import CascadedGroupAttention

    timm_module = CascadedGroupAttention(8, 4, num_heads=2, resolution=resolution)
    spec = _spec(f"network t\ninput x: [1]\ny = buffer(\"attention_bias_index\", "
                 f"[{resolution}, {resolution}])\noutput y\n")
    got = archspec.to_torch(spec)(torch.zeros(1, 1))
    assert torch.equal(got[0], timm_module.attention_bias_idxs)


@pytest.mark.parametrize(("side", "window", "shift"), [(56, 7, 3), (14, 7, 3), (8, 4, 2)])
def test_shifted_window_mask_is_swins(side: int, window: int, shift: int) -> None:
    """The mask timm's SwinTransformerBlock registers for its shifted windows (0 / -100)."""
    from timm.models.swin_transformer import SwinTransformerBlock

    timm_block = SwinTransformerBlock(8, (side, side), num_heads=2, window_size=window,
                                      shift_size=shift)
    spec = _spec(f"network t\ninput x: [1]\ny = buffer(\"shifted_window_mask\", "
                 f"[{side}, {side}, {window}, {shift}])\noutput y\n")
    got = archspec.to_torch(spec)(torch.zeros(1, 1))
    assert got.dtype == torch.float32  # as the scores it is added to, in torch and ONNX
    assert torch.equal(got[0], timm_block.attn_mask)


@pytest.mark.parametrize("size", [(8, 8), (7, 7), (3, 5), (2, 2)])
def test_relative_coords_table_is_swin_v2s(size: tuple[int, int]) -> None:
    """The log-spaced coordinates torchvision's ShiftedWindowAttentionV2 registers as its
    `relative_coords_table`, (1, 2h-1, 2w-1, 2), float32."""
    from torchvision.models.swin_transformer import ShiftedWindowAttentionV2

    module = ShiftedWindowAttentionV2(8, list(size), [0, 0], 2)
    spec = _spec(f"network t\ninput x: [1]\ny = buffer(\"relative_coords_table\", "
                 f"{list(size)})\noutput y\n")
    got = archspec.to_torch(spec)(torch.zeros(1, 1))
    assert got.dtype == torch.float32
    assert torch.equal(got, module.relative_coords_table)


def test_arange_and_take_along_a_later_dim() -> None:
    spec = _spec("network t\ninput x: [3, 5]\ni = buffer(\"arange\", [4])\n"
                 "y = take(-1)(x, i)\noutput y\n")
    x = torch.randn(2, 3, 5)
    torch.testing.assert_close(archspec.to_torch(spec)(x), x[:, :, :4])


def test_onnx_export_matches_onnxruntime(tmp_path, bias_model: torch.nn.Module) -> None:
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "t.onnx"
    archspec.export_onnx(_spec(BIAS_NET), path, weights=bias_model.state_dict())
    x = torch.randn(3, 2, 16, 16)
    (got,) = ort.InferenceSession(str(path)).run(None, {"x": x.numpy()})
    np.testing.assert_allclose(got, bias_model(x).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_ejected_source_matches(bias_model: torch.nn.Module) -> None:
    namespace: dict = {}
    exec(compile(eject(_spec(BIAS_NET)), "ejected", "exec"), namespace)  # noqa: S102
    model = namespace["build"]().eval()
    model.load_state_dict(bias_model.state_dict())
    x = torch.randn(2, 2, 16, 16)
    torch.testing.assert_close(model(x), bias_model(x))
    assert [name for name, _ in model.named_buffers()] == ["index.value"]


def test_constants_count_once_per_forward_and_frozen_is_not_trainable() -> None:
    text = BIAS_NET.replace('value=0.5)', 'value=0.5, frozen=true)')
    model = archspec.to_torch(_spec(text))
    report = archspec.analyze(_spec(text), batch=8)
    rows = {r.name: r for r in report.layers}
    # per forward: the table (49 x 2) and the biases (2 x 16 x 16) once; the scores per sample
    assert rows["table"].activation_bytes == 49 * 2 * 4
    assert rows["bias.1"].output_shape == [1, 2, 16, 16]
    assert rows["scores"].output_shape == [8, 2, 16, 16]
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert report.totals["non_trainable_params"] == frozen == 16
    assert report.totals["trainable_params"] == sum(
        p.numel() for p in model.parameters() if p.requires_grad)


def test_batch_dim_parameter_keeps_timms_shape() -> None:
    spec = _spec("network t\ninput x: [5, 4]\npos_embed = parameter([1, 5, 4], batch_dim=true)\n"
                 "y = add(x, pos_embed)\noutput y\n")
    model = archspec.to_torch(spec)
    assert tuple(model.state_dict()["pos_embed"].shape) == (1, 5, 4)
    x = torch.randn(2, 5, 4)
    torch.testing.assert_close(model(x), x + model.pos_embed)


@pytest.mark.parametrize(("body", "code"), [
    # take's index computed from the network's input
    ("t = parameter([4, 2])\ny = take(0)(t, x)\noutput y", "E218"),
    # a parameter given an input
    ("y = parameter([4])(x)\noutput y", "E214"),
    ("y = parameter([0, 3])\noutput y", "E235"),
    ("y = buffer(\"relative_position_index\", [4])\noutput y", "E301"),
    # a window side of 1: torchvision divides its offsets by side - 1 = 0
    ("y = buffer(\"relative_coords_table\", [1, 4])\noutput y", "E301"),
    ("y = buffer(\"spiral\", [4])\noutput y", "E235"),
    ("y = parameter([1, 4], init=\"xavier\")\noutput y", "E235"),
    ("y = parameter([2, 4], batch_dim=true)\noutput y", "E301"),
    ("y = parameter([4], init=\"normal\", std=-1.0)\noutput y", "E235"),
])
def test_bad_constants_are_located_errors(body: str, code: str) -> None:
    with pytest.raises(ArchspecError) as exc:
        archspec.expand(_spec(f"network t\ninput x: [4]\n{body}\n"))
    (diagnostic,) = exc.value.diagnostics
    assert diagnostic.code == code
    assert diagnostic.span.line >= 3
