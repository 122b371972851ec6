"""Fast enough for every keystroke, and to start: three measurements of the static path.

1. In-process ``archspec.load`` + ``archspec.analyze`` of a generated ResNet of N basic blocks
   (4 stages of N/4, torchvision's layout: 7 layers a block), against torch constructing the
   same ResNet (``torchvision.models.resnet.ResNet(BasicBlock, [N/4] * 4)``) on the meta
   device, in the same process; median of --repeat after one warm-up run of each.
2. Cold start: ``archspec check specs/resnet50.arch`` as a whole process (median of
   --repeat, bytecode cached), against a bare ``python -c pass``.
3. The language server: ``archspec lsp`` over stdio, the time from a ``didChange`` of
   specs/resnet50.arch (its ``num_classes`` default edited) to the diagnostics it publishes,
   against an in-process ``archspec.load`` + ``archspec.analyze`` of the same file.

    python bench/bench_editor.py --repeat 5 --blocks 100 300 1000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESNET50 = ROOT / "specs" / "resnet50.arch"


def resnet_spec(blocks: int) -> str:
    """A ResNet of ``blocks`` basic blocks (a multiple of 4), ``blocks // 4`` per stage, as
    torchvision's ``ResNet(BasicBlock, [blocks // 4] * 4)`` lays it out."""
    per = blocks // 4
    lines = ['import "std/blocks/resnet.arch"', f"network resnet_{blocks}", "input x: 3x224x224",
             "conv1: conv2d(64, 7, stride=2, padding=3, bias=false)", "bn1: batchnorm2d",
             "relu: relu", "maxpool: maxpool2d(3, stride=2, padding=1)",
             f"layer1: repeat {per} basic(64)"]
    lines += [f"layer{i}: basic({planes}, stride=2) -> repeat {per - 1} basic({planes})"
              for i, planes in enumerate((128, 256, 512), 2)]
    lines += ["avgpool: adaptive_avgpool2d(1)", "flatten", "fc: linear(1000)"]
    return "\n".join(lines) + "\n"


def median_seconds(run: Callable[[], Any], repeat: int) -> float:
    """Median wall time of ``run()`` over ``repeat`` calls, after one warm-up call."""
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def check_in_process(path: Path) -> int:
    """``archspec.load`` + ``archspec.analyze`` of ``path``; returns the layer count."""
    import archspec

    return archspec.analyze(archspec.load(path)).totals["layers"]


def torch_meta(blocks: int) -> None:
    """torchvision's ResNet of ``blocks`` basic blocks, constructed on the meta device."""
    import torch
    from torchvision.models.resnet import BasicBlock, ResNet

    with torch.device("meta"):
        ResNet(BasicBlock, [blocks // 4] * 4)


def bench_blocks(sizes: list[int], repeat: int, tmp: Path) -> list[list[str]]:
    """Rows of measurement 1: layers, archspec ms, ms per 1,000 layers, torch ms, ratio."""
    rows = []
    for blocks in sizes:
        path = tmp / f"resnet_{blocks}.arch"
        path.write_text(resnet_spec(blocks))
        layers = check_in_process(path)
        ours = median_seconds(lambda p=path: check_in_process(p), repeat)
        theirs = median_seconds(lambda b=blocks: torch_meta(b), repeat)
        rows.append([f"load + analyze, {blocks:,} blocks", f"{layers:,} layers",
                     f"{1e3 * ours:.1f} ms ({1e6 * ours / layers:.1f} us/layer)",
                     f"torch meta {1e3 * theirs:.1f} ms", f"{ours / theirs:.3f}"])
    return rows


def process_seconds(cmd: list[str], repeat: int) -> float:
    """Median wall time of ``cmd`` as a process (output discarded), with Python's bytecode
    cache on as a user has it (the warm-up run writes it where PYTHONDONTWRITEBYTECODE had
    kept it from being written)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return median_seconds(lambda: subprocess.run(cmd, check=True, cwd=ROOT, env=env,
                                                 stdout=subprocess.DEVNULL), repeat)


def bench_start(repeat: int) -> list[str]:
    """The row of measurement 2."""
    check = process_seconds([sys.executable, "-m", "archspec", "check", str(RESNET50)], repeat)
    bare = process_seconds([sys.executable, "-c", "pass"], repeat)
    return ["`archspec check specs/resnet50.arch`", "process", f"{1e3 * check:.0f} ms",
            f"python -c pass {1e3 * bare:.0f} ms", f"{check / bare:.2f}"]


class Editor:
    """A minimal LSP client over the pipes of ``archspec lsp`` (Content-Length framing)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "archspec", "lsp"], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.next_id = 0

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        length = 0
        while (line := self.proc.stdout.readline()) not in (b"\r\n", b"\n"):
            if not line:
                raise RuntimeError("the language server closed its output")
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return json.loads(self.proc.stdout.read(length))

    def wait_for(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        while not match(message := self.read()):
            pass
        return message

    def request(self, method: str, params: Any) -> Any:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        wanted = self.next_id
        return self.wait_for(lambda m: m.get("id") == wanted and "method" not in m).get("result")

    def diagnostics(self, uri: str) -> list[Any]:
        """The next diagnostics published for ``uri``."""
        note = self.wait_for(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                             and m["params"]["uri"] == uri)
        return note["params"]["diagnostics"]

    def close(self) -> None:
        self.request("shutdown", None)
        self.send({"method": "exit"})
        self.proc.wait(30)


def bench_lsp(repeat: int) -> list[str]:
    """The row of measurement 3: each didChange sets another ``num_classes`` default."""
    text, uri = RESNET50.read_text(), RESNET50.as_uri()
    assert "num_classes: int = 1000" in text
    ed = Editor()
    try:
        ed.request("initialize", {"processId": None, "rootUri": ROOT.as_uri(),
                                  "capabilities": {}})
        ed.send({"method": "initialized", "params": {}})
        ed.send({"method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": uri, "languageId": "archspec", "version": 1, "text": text}}})
        if ed.diagnostics(uri):
            raise RuntimeError("specs/resnet50.arch has diagnostics")
        times = []
        for version in range(2, repeat + 3):
            changed = text.replace("num_classes: int = 1000", f"num_classes: int = {version}")
            start = time.perf_counter()
            ed.send({"method": "textDocument/didChange", "params": {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"text": changed}]}})
            if ed.diagnostics(uri):
                raise RuntimeError("the edited spec has diagnostics")
            times.append(time.perf_counter() - start)
    finally:
        ed.close()
    lsp_s = statistics.median(times[1:])  # the first change is the warm-up
    plain = median_seconds(lambda: check_in_process(RESNET50), repeat)
    return ["`archspec lsp`: didChange of resnet50 to diagnostics", "stdio",
            f"{1e3 * lsp_s:.1f} ms", f"load + analyze {1e3 * plain:.1f} ms",
            f"{lsp_s / plain:.2f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--blocks", type=int, nargs="+", default=[100, 300, 1000],
                        help="sizes of the generated ResNet, in basic blocks (multiples of 4)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["blocks", "start", "lsp"])
    args = parser.parse_args()
    rows = [["measure", "size", "archspec", "reference", "ratio"]]
    with tempfile.TemporaryDirectory() as tmp:
        if "blocks" not in args.skip:
            rows += bench_blocks(args.blocks, args.repeat, Path(tmp))
    if "start" not in args.skip:
        rows.append(bench_start(args.repeat))
    if "lsp" not in args.skip:
        rows.append(bench_lsp(args.repeat))
    print("| " + " | ".join(rows[0]) + " |")
    print("|---|---|---:|---:|---:|")
    for row in rows[1:]:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
