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
from archspec.backends.onnx import to_onnx
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
    # 3-D windows: a side of 0 (only the mask's shifts may be 0), a shift as long as its
    # window, a window side that does not divide the map's, two sizes for three
    ("y = buffer(\"relative_position_index_3d\", [8, 0, 7])\noutput y", "E235"),
    ("y = buffer(\"relative_position_index\", [0, 3])\noutput y", "E235"),
    ("y = buffer(\"shifted_window_mask_3d\", [8, 14, 14, 0, 7, 7, 0, 3, 3])\noutput y", "E235"),
    ("y = buffer(\"shifted_window_mask_3d\", [8, 14, 14, 8, 7, 7, 0, 3, 7])\noutput y", "E301"),
    ("y = buffer(\"shifted_window_mask_3d\", [8, 14, 12, 8, 7, 7, 0, 3, 3])\noutput y", "E301"),
    ("y = buffer(\"relative_position_index_3d\", [8, 7])\noutput y", "E301"),
    # MViT's offsets along one axis: queries and keys, not a map's three sides; none empty
    ("y = buffer(\"scaled_offset_index\", [8, 8, 8])\noutput y", "E301"),
    ("y = buffer(\"scaled_offset_index\", [8, 0])\noutput y", "E235"),
    ("y = buffer(\"scaled_offset_index\", [2 ** 14, 2 ** 13])\noutput y", "E301"),
])
def test_bad_constants_are_located_errors(body: str, code: str) -> None:
    with pytest.raises(ArchspecError) as exc:
        archspec.expand(_spec(f"network t\ninput x: [4]\n{body}\n"))
    (diagnostic,) = exc.value.diagnostics
    assert diagnostic.code == code
    assert diagnostic.span.line >= 3


# ---- Video Swin: 3-D windows, against torchvision's own computation ----------------------


def _generated(generator: str, size: tuple[int, ...]) -> torch.Tensor:
    """What `buffer(generator, size)` holds, without its batch dim."""
    spec = _spec(f"network t\ninput x: [1]\ny = buffer(\"{generator}\", {list(size)})\n"
                 "output y\n")
    return archspec.to_torch(spec)(torch.zeros(1, 1))[0]


@pytest.mark.parametrize("window", [(8, 7, 7), (2, 4, 4), (1, 3, 5), (3, 1, 2)])
def test_relative_position_index_3d_is_torchvisions(window: tuple[int, int, int]) -> None:
    """The index torchvision's ShiftedWindowAttention3d registers for its window."""
    from torchvision.models.video.swin_transformer import ShiftedWindowAttention3d

    module = ShiftedWindowAttention3d(8, list(window), [0, 0, 0], 2)
    got = _generated("relative_position_index_3d", window)
    assert got.dtype == torch.int64
    assert torch.equal(got, module.relative_position_index)


@pytest.mark.parametrize(("sides", "window", "shift"), [
    ((8, 14, 14), (8, 7, 7), (0, 3, 3)),   # swin3d at 16 frames: no shift in time
    ((16, 14, 14), (8, 7, 7), (4, 3, 3)),  # shifted along every axis
    ((6, 4, 6), (3, 4, 3), (1, 0, 1)),     # one side a single window
    ((4, 8, 8), (2, 4, 4), (1, 2, 2)),
])
def test_shifted_window_mask_3d_is_torchvisions(sides: tuple[int, ...], window: tuple[int, ...],
                                                shift: tuple[int, ...]) -> None:
    """Bit for bit (the sign of each zero too) the mask torchvision's
    shifted_window_attention_3d computes for a padded map, float32."""
    from torchvision.models.video.swin_transformer import _compute_attention_mask_3d

    want = _compute_attention_mask_3d(torch.zeros(1), sides, window, shift)
    got = _generated("shifted_window_mask_3d", (*sides, *window, *shift))
    assert got.dtype == want.dtype == torch.float32
    assert torch.equal(got.view(torch.int32), want.view(torch.int32))


PERSISTENT_NET = """network t
input x: [2, 4, 4]
table: parameter([9, 2], init="normal", std=1.0)
relative_position_index: buffer("relative_position_index_3d", [1, 2, 2], persistent=true)
bias = take(0)(table, relative_position_index) -> permute([2, 0, 1])
y = add(x, bias)
output y
"""


def _bias_3d(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The same computation in plain torch, reading the index from the state_dict."""
    index = state["relative_position_index"]
    return x + state["table"][index.reshape(-1)].view(4, 4, 2).permute(2, 0, 1)


def test_persistent_buffer_is_in_the_state_dict_at_its_label() -> None:
    """`persistent=true`: the index is a buffer at the layer's own key, in the state_dict (as
    torchvision's Swin3D keeps it), counted as buffers; a state_dict's index is the one used.
    Without it (the negative control) the buffer stays out of the state_dict."""
    from torchvision.models.video.swin_transformer import ShiftedWindowAttention3d

    model = archspec.to_torch(_spec(PERSISTENT_NET))
    state = model.state_dict()
    assert list(state) == ["table", "relative_position_index"]
    reference = ShiftedWindowAttention3d(8, [1, 2, 2], [0, 0, 0], 2).relative_position_index
    assert torch.equal(state["relative_position_index"], reference)
    totals = archspec.analyze(_spec(PERSISTENT_NET)).totals
    assert totals["buffers"] == sum(b.numel() for b in model.buffers()) == 16
    x = torch.randn(3, 2, 4, 4)
    state["relative_position_index"] = state["relative_position_index"].flip(0)
    model.load_state_dict(state, strict=True)
    torch.testing.assert_close(model(x), _bias_3d(state, x))
    plain = _spec(PERSISTENT_NET.replace(", persistent=true", ""))
    assert list(archspec.to_torch(plain).state_dict()) == ["table"]
    assert archspec.analyze(plain).totals["buffers"] == 0


def test_persistent_buffer_ejects_builds_on_meta_and_exports() -> None:
    """The ejected source registers it at the same key; a build on the meta device takes it
    from the weights (`assign=True`); the ONNX export computes the same in onnxruntime."""
    ort = pytest.importorskip("onnxruntime")
    spec = _spec(PERSISTENT_NET)
    state = archspec.to_torch(spec).state_dict()
    x = torch.randn(2, 2, 4, 4)
    namespace: dict = {}
    exec(compile(eject(spec), "ejected", "exec"), namespace)  # noqa: S102
    ejected = namespace["build"]()
    assert [name for name, _ in ejected.named_buffers()] == ["relative_position_index"]
    ejected.load_state_dict(state, strict=True)
    torch.testing.assert_close(ejected(x), _bias_3d(state, x))
    meta = archspec.to_torch(spec, device="meta")
    meta.load_state_dict(state, strict=True, assign=True)
    torch.testing.assert_close(meta(x), _bias_3d(state, x))
    exported = to_onnx(spec, weights=state)
    (got,) = ort.InferenceSession(exported.SerializeToString()).run(None, {"x": x.numpy()})
    np.testing.assert_allclose(got, _bias_3d(state, x).numpy(), rtol=1e-6, atol=1e-6)


def test_a_constant_built_on_meta_makes_its_values_when_weights_are_loaded(
        bias_model: torch.nn.Module) -> None:
    """A non-persistent buffer, outside the state_dict, built on the meta device (no values):
    loading the weights with `assign=True` makes its values, so the model computes."""
    meta = archspec.to_torch(_spec(BIAS_NET), device="meta")
    assert meta.index.value.is_meta
    meta.load_state_dict(bias_model.state_dict(), strict=True, assign=True)
    x = torch.randn(2, 2, 16, 16)
    torch.testing.assert_close(meta(x), bias_model(x))


SWIN3D_ATTENTION = """import "std/blocks/swin3d.arch"
network t
input x: [SHAPE]
attn: swin3d_attention(2, [4, 4, 4], [2, 2, 2])
"""


@pytest.mark.parametrize("shape", [(6, 9, 3, 8), (4, 4, 8, 8)])
def test_swin3d_attention_block_is_torchvisions(shape: tuple[int, ...]) -> None:
    """The std block reads both generators as torchvision's ShiftedWindowAttention3d does: on
    maps padded to whole windows and shifted in time and height (not along a side shorter
    than its window, whose window shrinks and whose index is read at its top-left corner), or
    (4 x 4 x 8) neither padded nor shifted in the two sides one window covers; torchvision's
    randomised state loads strictly and gives its output."""
    from torchvision.models.video.swin_transformer import ShiftedWindowAttention3d

    reference = ShiftedWindowAttention3d(8, [4, 4, 4], [2, 2, 2], 2).eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.normal_(generator=torch.Generator().manual_seed(p.numel()))
    spec = archspec.loads(SWIN3D_ATTENTION.replace("SHAPE", ", ".join(map(str, shape))))
    model = archspec.to_torch(spec).eval()
    model.load_state_dict({f"attn.{k}": v for k, v in reference.state_dict().items()},
                          strict=True)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-5)


def _mvit_offsets(q: int, k: int) -> torch.Tensor:
    """The index torchvision's MViT reads its `rel_pos_h` table with, for q query and k key
    rows (`_add_rel_pos` itself): with table row r holding r, one-channel queries of ones and
    zero scores, the bias it adds to the scores is the index."""
    from torchvision.models.video.mvit import _add_rel_pos

    table = torch.arange(2 * max(q, k) - 1, dtype=torch.float32)[:, None]
    scores = _add_rel_pos(torch.zeros(1, 1, q + 1, k + 1), torch.ones(1, 1, q + 1, 1),
                          (1, q, 1), (1, k, 1), table, torch.zeros(1, 1), torch.zeros(1, 1))
    return scores[0, 0, 1:, 1:]


@pytest.mark.parametrize("size", [(56, 7), (7, 56), (8, 8), (28, 14), (3, 5), (5, 3), (1, 4),
                                  (16, 2)])
def test_scaled_offset_index_is_mvits(size: tuple[int, int]) -> None:
    """Equal to the index torchvision's MViT v2 computes, query and key axes of any lengths
    (a ratio that is no integer too); where both are longer than 1 and differ, the plain
    offset i - j + k - 1 is another index (the check tells them apart)."""
    got = _generated("scaled_offset_index", size)
    want = _mvit_offsets(*size)
    assert got.dtype == torch.int64
    assert torch.equal(got.float(), want)
    q, k = size
    plain = torch.arange(q)[:, None] - torch.arange(k)[None, :] + k - 1
    assert torch.equal(plain.float(), want) == (q == k or min(q, k) == 1)


INIT_NET = """network t
input x: [4, 8]
init linear: trunc_normal(std=0.02, bias=0)
init "table": normal(0, 2)
init "proj": kaiming_uniform(a=2.2)
table = parameter([4, 8])
y = add(x, table)
fc: linear(8)
proj = parameter([8, 8])
z = matmul(fc, proj)
output z
"""


def _drawn_by_torch() -> dict[str, torch.Tensor]:
    """What torch draws for INIT_NET from seed 0: `fc`'s default initialisation once built
    (the parameters draw nothing), then the rules in layer order."""
    torch.manual_seed(0)
    table, proj, fc = torch.zeros(4, 8), torch.zeros(8, 8), torch.nn.Linear(8, 8)
    torch.nn.init.normal_(table, 0, 2)
    torch.nn.init.trunc_normal_(fc.weight, std=0.02)
    torch.nn.init.zeros_(fc.bias)
    torch.nn.init.kaiming_uniform_(proj, a=2.2)
    return {"table": table, "fc.weight": fc.weight, "fc.bias": fc.bias, "proj": proj}


def test_init_rules_reach_parameter_layers_in_layer_order() -> None:
    """A rule on a `parameter` layer initialises its tensor, in layer order with the other
    layers' rules: the same seed gives the numbers torch draws in that order, no W117; the
    ejected source initialises the same tensors by the same schemes. Without the rules
    (the negative control) the parameters keep their zeros."""
    spec = _spec(INIT_NET)
    assert archspec.expand(spec).warnings == []
    torch.manual_seed(0)
    state = archspec.to_torch(spec).state_dict()
    want = _drawn_by_torch()
    assert state.keys() == want.keys()
    assert all(torch.equal(state[k], want[k]) for k in want)
    plain = _spec("\n".join(line for line in INIT_NET.splitlines() if '"' not in line))
    assert not archspec.to_torch(plain).state_dict()["table"].any()
    module: dict[str, object] = {}
    exec(compile(eject(spec), "ejected.py", "exec"), module)  # noqa: S102
    ejected = module["build"]().state_dict()  # type: ignore[operator]
    assert float(ejected["table"].std()) > 1.0 and not ejected["fc.bias"].any()
    assert 0 < float(ejected["proj"].abs().max()) <= (6 / (1 + 2.2**2) / 8) ** 0.5


def test_a_fan_based_rule_on_a_one_dim_parameter_is_a_located_error() -> None:
    text = "network t\ninput x: [8]\ninit \"g\": xavier_normal\ng = parameter([8])\n" \
           "y = mul(x, g)\n"
    with pytest.raises(ArchspecError) as info:
        archspec.to_torch(_spec(text))
    assert info.value.diagnostic.code == "E116" and info.value.diagnostic.span.line == 3
