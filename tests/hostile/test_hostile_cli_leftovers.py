"""Commands that used to succeed at something else: `graph --format mermaid -o g.dot` wrote
DOT without a word, and `sweep` exited 0 when every variant was refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_support import SMALL, SPECS, clean_failure, run_cli

FAMILY = str(SPECS / "examples" / "resnet_family.arch")


def test_graph_refuses_a_suffix_that_contradicts_format(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g.dot"
    code, _, err = run_cli(["graph", str(SPECS / "resnet18.arch"), "--format", "mermaid",
                            "-o", str(out)], capsys)
    clean_failure(code, err, "--format mermaid but", "names dot")
    assert code == 2 and not out.exists()
    code, _, _ = run_cli(["graph", str(SPECS / "resnet18.arch"), "-o", str(out)], capsys)
    assert code == 0 and out.read_text().startswith("digraph")


def test_a_sweep_whose_every_variant_is_refused_exits_1(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["sweep", FAMILY, "--set", "width=0,-1", "--format", "csv"],
                             capsys)
    assert code == 1 and "every one of the 2 variants was refused" in err
    assert out.count("E235") == 2  # the table still says why, variant by variant
    code, _, _ = run_cli(["sweep", FAMILY, "--set", "width=0,1", "--format", "csv"], capsys)
    assert code == 0  # one variant refused of two: the sweep itself succeeded


def test_train_prints_results_on_stdout_and_no_top5_for_two_classes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["train", str(SPECS / "examples" / "cnn3.arch"), *SMALL,
                              "--epochs", "1", "--samples", "40", "--workers", "0",
                              "--out", str(tmp_path / "run")], capsys)
    assert code == 0, err
    assert "epoch 1:" in out and "test accuracy" in out and "epoch 1:" not in err
    assert "top-5" not in out  # with 2 classes every sample is in the top 5


def test_a_yaml_init_rule_with_a_chain_is_located(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "net.yaml"
    spec.write_text('network: t\ninputs: {x: [3, 8, 8]}\ninit: {conv2d: "normal -> normal"}\n'
                    "body:\n  - conv2d: [4, 3]\n")
    code, _, err = run_cli(["check", str(spec)], capsys)
    clean_failure(code, err, "net.yaml:3:16", "an init rule takes one")


@pytest.mark.parametrize("call", ['mhsa("2")', 'linear("8")', 'scale("2")', 'dropout("0.5")'])
def test_numbers_written_as_text_are_refused(call: str) -> None:
    import archspec

    with pytest.raises(archspec.ArchspecError) as info:
        archspec.expand(archspec.loads(f"network t\ninput x: 4x8\n{call}\n"))
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "E235" and diagnostic.span.line == 3
    assert "without quotes" in diagnostic.message


def test_text_attributes_and_text_parsers_still_take_text() -> None:
    import archspec

    for call in ['norm("inf", 0)', 'softmax(-1)', 'gelu("tanh")']:
        archspec.expand(archspec.loads(f"network t\ninput x: 4x8\n{call}\n"))
