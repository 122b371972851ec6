"""`init` rules inside a block: they set the block's own layers as soon as each call of the
block is built, as a PyTorch module's constructor initialises its submodules, so a seeded build
draws the random numbers a hand-written model draws (ViT's and Swin's MLP blocks)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import archspec
from archspec.backends.eject import eject
from archspec.lang.diagnostics import ArchspecError
from archspec.lang.syntax.printer import to_text
from archspec.lang.syntax.yaml_form import to_yaml

SPEC = """network t
input x: [5, 4]
init "head": zeros(bias=0)

block mlp(hidden: int) {
    init linear: xavier_uniform(bias=normal(0, 1e-6))
    init "0" if hidden > 4: kaiming_uniform(a=sqrt(5))
    linear(hidden) -> gelu -> linear(in.features)
}

mlp1: mlp(8)
mlp2: mlp(3)
head: linear(2)
"""


class Mlp(nn.Sequential):
    """A hand-written MLP that initialises its layers in its constructor (the first one its
    own way when it is wide: the last matching rule wins, wholly)."""

    def __init__(self, features: int, hidden: int) -> None:
        super().__init__(nn.Linear(features, hidden), nn.GELU(), nn.Linear(hidden, features))
        for i, m in enumerate(self):
            if isinstance(m, nn.Linear) and i == 0 and hidden > 4:
                nn.init.kaiming_uniform_(m.weight, a=5 ** 0.5)
            elif isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.normal_(m.bias, std=1e-6)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mlp1, self.mlp2, self.head = Mlp(4, 8), Mlp(4, 3), nn.Linear(4, 2)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)


def test_a_seeded_build_equals_a_module_that_initialises_in_its_constructor() -> None:
    torch.manual_seed(3)
    ours = archspec.to_torch(archspec.loads(SPEC)).state_dict()
    torch.manual_seed(3)
    theirs = Net().state_dict()
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        assert torch.equal(ours[key], value), key


def test_block_init_rules_print_back_in_both_forms() -> None:
    spec = archspec.loads(SPEC)
    assert spec.all_blocks()["mlp"].inits
    assert archspec.loads(to_text(spec)) == spec
    assert archspec.loads(to_yaml(spec), format="yaml") == spec


def test_the_ejected_file_initialises_the_block_layers() -> None:
    source = eject(archspec.loads(SPEC))
    namespace: dict = {}
    exec(compile(source, "ejected", "exec"), namespace)
    model = namespace["build"]()
    assert "nn.init.normal_" in source and "nn.init.xavier_uniform_" in source
    for bias in (model.mlp1[2].bias, model.mlp2[0].bias):
        assert 0 < bias.abs().max() < 1e-4  # drawn from N(0, 1e-12), not nn.Linear's default
    assert model.mlp1[0].bias.abs().max() > 1e-3  # the rule for a wide first layer has no bias


@pytest.mark.parametrize(("old", "new", "code", "at"), [
    ('init "0" if', 'init "fc" if', "E117", '"fc"'),
    ("bias=normal(0, 1e-6)", "bias=uniform2(0, 1)", "E116", "uniform2"),
    ("bias=normal(0, 1e-6)", "bias=normal(0, 1, 2)", "E116", "normal(0, 1, 2)"),
    # what torch.nn.init would refuse when the network is built, refused in `check`
    ("bias=normal(0, 1e-6)", "bias=normal(0, -1)", "E116", "-1"),
    ("bias=normal(0, 1e-6)", "bias=kaiming_normal()", "E116", "kaiming_normal"),
    ("xavier_uniform(bias", "kaiming_normal(mode=\"fan_bogus\", bias", "E116", 'mode="fan_bogus"'),
    ("xavier_uniform(bias", "uniform(a=5, b=-5, bias", "E116", "b=-5"),
])
def test_bad_block_init_rules_are_located_errors(old: str, new: str, code: str, at: str) -> None:
    text = SPEC.replace(old, new)
    with pytest.raises(ArchspecError) as info:
        archspec.expand(archspec.loads(text))
    (d,) = info.value.diagnostics
    assert d.code == code
    assert text.splitlines()[d.span.line - 1][d.span.col - 1:].startswith(at)
