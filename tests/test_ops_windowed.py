"""Swin's and MaxViT's windowed ops against torchvision's own modules (same seed, same
weights, same outputs, same counts) and their ONNX export against onnxruntime."""

from __future__ import annotations

from unittest import mock

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import maxvit as tv_maxvit
from torchvision.models import swin_transformer as tv_swin

import archspec
from archspec.backends.onnx import to_onnx
from archspec.lang.diagnostics import ArchspecError

# (op call, per-sample (H, W, C) input, torchvision module factory (dim) and ONNX opsets): small
# maps that pad to whole windows, shift, and leave a side one window covers (no shift there).
ATTENTION = [
    ("shifted_window_attention(3, 7, 3)", (9, 11, 12),
     lambda: tv_swin.ShiftedWindowAttention(12, [7, 7], [3, 3], 3), (13, 17)),
    ("shifted_window_attention(2, 4)", (8, 8, 6),
     lambda: tv_swin.ShiftedWindowAttention(6, [4, 4], [0, 0], 2), (17,)),
    ("shifted_window_attention(2, (3, 5), (1, 2), qkv_bias=false)", (6, 4, 4),
     lambda: tv_swin.ShiftedWindowAttention(4, [3, 5], [1, 2], 2, qkv_bias=False), (17,)),
    ("shifted_window_attention(2, 4, (0, 2))", (8, 12, 4),
     lambda: tv_swin.ShiftedWindowAttention(4, [4, 4], [0, 2], 2), (17,)),
    ("shifted_window_attention_v2(3, 4, 2)", (8, 8, 12),
     lambda: tv_swin.ShiftedWindowAttentionV2(12, [4, 4], [2, 2], 3), (13, 18)),
    ("shifted_window_attention_v2(2, 8, 4, proj_bias=false)", (5, 9, 4),
     lambda: tv_swin.ShiftedWindowAttentionV2(4, [8, 8], [4, 4], 2, proj_bias=False), (17,)),
]
BLOCKS = [
    ("swin_block_v2(3, 4, 2, 0.1)", (8, 8, 12),
     lambda: tv_swin.SwinTransformerBlockV2(12, 3, [4, 4], [2, 2], stochastic_depth_prob=0.1),
     (17, 18)),
    ("swin_block_v2(2, 8, mlp_ratio=2.0, eps=0.001)", (5, 9, 4),
     lambda: tv_swin.SwinTransformerBlockV2(
         4, 2, [8, 8], [0, 0], mlp_ratio=2.0,
         norm_layer=lambda c: torch.nn.LayerNorm(c, eps=0.001)), (17,)),
]
RELATIVE = [
    ("relative_attention(4)", (3, 9, 8),
     lambda: tv_maxvit.RelativePositionalMultiHeadAttention(8, 4, 9), (13, 17)),
    ("relative_attention", (2, 16, 64),
     lambda: tv_maxvit.RelativePositionalMultiHeadAttention(64, 32, 16), (17,)),
]
MERGING = [
    ("patch_merging", (5, 6, 4), lambda: tv_swin.PatchMerging(4), (17,)),
    ("patch_merging_v2", (4, 7, 6), lambda: tv_swin.PatchMergingV2(6), (17, 18)),
    ("patch_merging(eps=0.001)", (3, 3, 2),
     lambda: tv_swin.PatchMerging(2, lambda c: torch.nn.LayerNorm(c, eps=0.001)), (17,)),
    # (T, H, W, C): Video Swin's frames, each merged on its own
    ("patch_merging(1e-05)", (3, 5, 6, 4), lambda: tv_swin.PatchMerging(4), (17,)),
]
CASES = ATTENTION + BLOCKS + RELATIVE + MERGING


def _spec(call: str, shape: tuple[int, ...]) -> archspec.Spec:
    return archspec.loads(f"network t\ninput x: [{', '.join(map(str, shape))}]\ny: {call}\n")


def _randomised(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's state with every float parameter redrawn (biases, LayerNorm affine, the
    position-bias table and logit scale away from their initial values)."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3 + (1.0 if p.ndim == 1 else 0.0))
    return module.state_dict()


@pytest.mark.parametrize(("call", "shape", "reference", "opsets"), CASES,
                         ids=[c for c, *_ in CASES])
def test_same_seed_same_state_and_outputs_as_torchvision(call, shape, reference, opsets) -> None:
    """State_dict keys, order and shapes equal torchvision's; the same seed draws the same
    tensors; torchvision's (randomised) state loads strictly and gives its outputs."""
    spec = _spec(call, shape)
    torch.manual_seed(0)
    theirs = reference()
    torch.manual_seed(0)
    ours = archspec.to_torch(spec)
    want_state = {f"y.{k}": v for k, v in theirs.state_dict().items()}
    got_state = ours.state_dict()
    assert [(k, v.shape) for k, v in got_state.items()] == \
        [(k, v.shape) for k, v in want_state.items()]
    assert all(torch.equal(got_state[k], v) for k, v in want_state.items())
    state = {f"y.{k}": v for k, v in _randomised(theirs).items()}
    ours.load_state_dict(state, strict=True)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("call", "shape", "reference", "opsets"), CASES,
                         ids=[c for c, *_ in CASES])
def test_counts_equal_torchvision_module(call, shape, reference, opsets) -> None:
    """Params and buffers of torchvision's module; MACs as FlopCounterMode / 2 at batch 1 and 3
    (Swin v2's position-bias MLP runs once per forward, whatever the batch)."""
    spec = _spec(call, shape)
    theirs = reference()
    for batch in (1, 3):
        totals = archspec.analyze(spec, batch=batch).totals
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            theirs(torch.randn(batch, *shape))
        assert totals["macs"] == counter.get_total_flops() // 2
    assert totals["params"] == sum(p.numel() for p in theirs.parameters())
    assert totals["buffers"] == sum(b.numel() for b in theirs.buffers())


@pytest.mark.parametrize(("call", "shape", "reference", "opsets"), ATTENTION + RELATIVE,
                         ids=[c for c, *_ in ATTENTION + RELATIVE])
def test_attention_bytes_count_the_attention_matrices(call, shape, reference, opsets) -> None:
    """The attention matrices in the memory figures: what torchvision's forward passes to
    softmax (recorded from the live call), alive while the layer runs."""
    seen: list[int] = []
    softmax = torch.nn.functional.softmax

    def record(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        seen.append(x.numel())
        return softmax(x, *args, **kwargs)

    with mock.patch.object(torch.nn.functional, "softmax", record), torch.no_grad():
        reference()(torch.randn(2, *shape))
    totals = archspec.analyze(_spec(call, shape), batch=2).totals
    assert totals["attention_bytes"] == 4 * sum(seen)
    assert totals["peak_activation_bytes"] == 4 * (2 * 2 * int(np.prod(shape)) + sum(seen))


@pytest.mark.parametrize(("c", "h", "w", "p", "grid"), [(5, 14, 21, 7, False),
                                                        (4, 12, 8, 2, True)])
def test_partitions_equal_torchvision(c: int, h: int, w: int, p: int, grid: bool) -> None:
    """MaxViT's block partition (p x p windows) and grid partition (p x p cells of a grid,
    then the axes swapped), departitioned back, as torchvision's PartitionAttentionLayer does
    around its attention; here attention is left out (identity), so the map comes back."""
    swap = "\nswapped: transpose(0, 1)\nback: transpose(0, 1)" if grid else ""
    spec = archspec.loads(f"network t\ninput x: [{c}, {h}, {w}]\noutput y, parts\n"
                          f"parts: window_partition({p}){swap}\n"
                          f"y: window_departition({p}, {h // p}, {w // p})\n")
    x = torch.randn(2, c, h, w)
    want = tv_maxvit.WindowPartition()(x, p)
    got = archspec.to_torch(spec)(x)
    assert torch.equal(got["parts"], want)
    assert torch.equal(got["y"], tv_maxvit.WindowDepartition()(want, p, h // p, w // p))
    assert torch.equal(got["y"], x)
    session = ort.InferenceSession(to_onnx(spec).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    assert all(np.array_equal(g, w.numpy()) for g, w in
               zip(session.run(None, {"x": x.numpy()}), (got["y"], want)))


def _calibrated(spec: archspec.Spec) -> torch.nn.Module:
    model = archspec.to_torch(spec).eval()
    _randomised(model)
    return model


@pytest.mark.parametrize(("call", "shape", "reference", "opsets"), CASES,
                         ids=[c for c, *_ in CASES])
def test_onnx_export_matches_torch_in_onnxruntime(call, shape, reference, opsets) -> None:
    """A valid model whose inferred output shape is archspec's; onnxruntime gives the torch
    module's outputs at each opset the rule supports and at two batch sizes."""
    spec = _spec(call, shape)
    model = _calibrated(spec)
    for opset in opsets:
        exported = to_onnx(spec, weights=model.state_dict(), opset=opset)
        onnx.checker.check_model(exported, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(exported, strict_mode=True)
        (out,) = inferred.graph.output
        assert [d.dim_value or d.dim_param for d in out.type.tensor_type.shape.dim] == \
            ["batch", *archspec.expand(spec).nodes["y"].shape]
        session = ort.InferenceSession(exported.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        for batch in (1, 3):
            x = torch.randn(batch, *shape)
            (got,) = session.run(None, {"x": x.numpy()})
            with torch.no_grad():
                want = model(x)
            torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("call", "shape", "code", "text"), [
    ("shifted_window_attention(3, 7)", (96, 14, 14), "E301", "`heads` (=3) must divide"),
    ("shifted_window_attention(5, 7)", (14, 14, 96), "E301", "must divide the 96 input"),
    ("shifted_window_attention(3, 7)", (14, 96), "E303", "channels-last (H, W, C)"),
    ("shifted_window_attention(3, 7, 7)", (14, 14, 96), "E301", "smaller than `window`"),
    ("shifted_window_attention_v2(3, (7, 7, 7))", (14, 14, 96), "E301", "needs 2 values"),
    ("patch_merging_v2", (96, 14), "E303", "channels-last (H, W, C)"),
    ("relative_attention(24)", (4, 49, 64), "E301", "`head_dim` (=24) must divide"),
    ("relative_attention", (4, 48, 64), "E301", "not a square window"),
    ("window_partition(7)", (64, 14, 15), "E301", "must divide the map's height and width"),
    ("window_departition(7, 2, 3)", (5, 49, 8), "E301", "are not `h` x `w` (=2x3) windows"),
])
def test_shape_errors_are_located(call, shape, code, text) -> None:
    with pytest.raises(ArchspecError) as info:
        archspec.expand(_spec(call, shape))
    diag = info.value.diagnostic
    assert diag.code == code and text in diag.message and diag.span.line == 3
    if shape == (96, 14, 14):
        assert "permute([1, 2, 0])" in diag.hint


@pytest.mark.parametrize("call", ["shifted_window_attention(0, 7)",
                                  "shifted_window_attention(3, 7, -1)",
                                  "shifted_window_attention(3, 7, dropout=1.5)",
                                  "shifted_window_attention(3, 10 ** 6)",
                                  "swin_block_v2(3, 7, mlp_ratio=1e9)",
                                  "swin_block_v2(3, 7, qkv_bias=false)",
                                  "window_partition(10 ** 9)",
                                  "patch_merging(eps=0)"])
def test_bad_attributes_are_located(call: str) -> None:
    """Out-of-domain attributes, and sizes no real network uses (which `compile` could not
    allocate), are errors at the layer."""
    with pytest.raises(ArchspecError) as info:
        archspec.expand(_spec(call, (14, 14, 96)))
    assert info.value.diagnostic.span.line == 3
