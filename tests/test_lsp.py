"""`archspec lsp` driven over stdio as an editor drives it (initialize, didOpen, didChange,
hover, inlayHint, definition, documentSymbol, completion, formatting, shutdown), each answer
checked against the spec's own `archspec check --format json` numbers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from conftest import ROOT, SPECS
from test_diagnostics_recovery import THREE

from archspec.lang.source import SourceFile
from archspec.lang.syntax.formatter import format_source

RESNET18 = SPECS / "resnet18.arch"
# Seconds an answer may take (a cold start imports and analyses; later ones are ~0.1 s).
TIMEOUT = 60


class Editor:
    """A minimal LSP client: JSON-RPC with Content-Length framing over the server's pipes."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "archspec", "lsp"], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.next_id = 0
        self.notifications: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        length = 0
        while True:
            line = self.proc.stdout.readline()
            assert line, "the server closed its output"
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return json.loads(self.proc.stdout.read(length))

    def request(self, method: str, params: Any) -> Any:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        while True:
            message = self.read()
            if message.get("id") == self.next_id and "method" not in message:
                assert "error" not in message, message
                return message.get("result")
            if "method" in message:
                self.notifications.append(message)

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def diagnostics(self, uri: str) -> list[dict[str, Any]]:
        """The next diagnostics published for ``uri``."""
        while True:
            for i, note in enumerate(self.notifications):
                if (note["method"] == "textDocument/publishDiagnostics"
                        and note["params"]["uri"] == uri):
                    del self.notifications[: i + 1]
                    return note["params"]["diagnostics"]
            message = self.read()
            if "method" in message:
                self.notifications.append(message)


def check_json(path: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "archspec", "check", str(path), "--format",
                          "json"], cwd=ROOT, capture_output=True, text=True, check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {"stderr": out.stderr}


def position(text: str, line: int, word: str) -> dict[str, int]:
    """The LSP position of ``word`` on 1-based ``line`` of ``text``."""
    return {"line": line - 1, "character": text.split("\n")[line - 1].index(word)}


@pytest.fixture(scope="module")
def editor():
    pytest.importorskip("pygls")
    ed = Editor()
    result = ed.request("initialize", {"processId": None, "rootUri": ROOT.as_uri(),
                                       "capabilities": {}})
    caps = result["capabilities"]
    for feature in ("hoverProvider", "inlayHintProvider", "definitionProvider",
                    "documentSymbolProvider", "completionProvider",
                    "documentFormattingProvider"):
        assert caps.get(feature), feature
    ed.notify("initialized", {})
    yield ed
    assert ed.request("shutdown", None) is None
    ed.notify("exit", None)
    assert ed.proc.wait(TIMEOUT) == 0


@pytest.fixture(scope="module")
def opened(editor):
    text = RESNET18.read_text()
    uri = RESNET18.as_uri()
    editor.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "archspec", "version": 1, "text": text}})
    assert editor.diagnostics(uri) == []
    rows = {r["name"]: r for r in [*check_json(RESNET18)["layers"],
                                   *check_json(RESNET18)["blocks"]]}
    return uri, text, rows


def shape(row: dict[str, Any]) -> str:
    return "[" + ", ".join(map(str, row["output_shape"])) + "]"


def test_hover_on_a_layer_and_a_block_call(editor, opened) -> None:
    uri, text, rows = opened
    hover = editor.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                  "position": position(text, 8, "conv2d")})
    value = hover["contents"]["value"]
    conv1 = rows["conv1"]
    assert "`conv2d(out, kernel, stride=1" in value and "2-D convolution." in value
    assert f"output `{shape(conv1)}`" in value
    assert f"params {conv1['params']:,}" in value and f"MACs {conv1['macs']:,}" in value
    hover = editor.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                  "position": position(text, 13, "basic")})
    value = hover["contents"]["value"]
    block = rows["layer2.0"]
    assert "block basic(planes: int, stride: int = ...)" in value
    assert f"params {block['params']:,}" in value and f"MACs {block['macs']:,}" in value


def test_inlay_hints_are_the_output_shapes(editor, opened) -> None:
    uri, text, rows = opened
    hints = editor.request("textDocument/inlayHint", {"textDocument": {"uri": uri}, "range": {
        "start": {"line": 0, "character": 0}, "end": {"line": 20, "character": 0}}})
    by_line = {h["position"]["line"] + 1: h["label"] for h in hints}
    assert by_line[8] == f"-> {shape(rows['conv1'])}"
    assert by_line[11] == f"-> {shape(rows['maxpool'])}"
    assert by_line[18] == f"-> {shape(rows['fc'])}"
    assert hints[0]["position"]["character"] == len(text.split("\n")[7])


def test_definition_of_blocks_imports_and_names(editor, opened, tmp_path) -> None:
    uri, text, _ = opened
    found = editor.request("textDocument/definition", {"textDocument": {"uri": uri},
                                                       "position": position(text, 12, "basic")})
    blocks = SPECS / "blocks" / "resnet.arch"
    assert found["uri"] == blocks.resolve().as_uri()
    assert found["range"]["start"]["line"] + 1 == next(
        i for i, line in enumerate(blocks.read_text().split("\n"), 1)
        if line.startswith("block basic("))
    found = editor.request("textDocument/definition", {"textDocument": {"uri": uri},
                                                       "position": position(text, 3, "blocks")})
    assert found["uri"] == blocks.resolve().as_uri()
    dag = ("network d\ninput image: 3x8x8\na = conv2d(4, 3)(image)\nb = relu()(a)\n"
           "c = add(a, b)\n")
    dag_uri = (tmp_path / "dag.arch").as_uri()
    editor.notify("textDocument/didOpen", {"textDocument": {
        "uri": dag_uri, "languageId": "archspec", "version": 1, "text": dag}})
    assert editor.diagnostics(dag_uri) == []
    found = editor.request("textDocument/definition", {"textDocument": {"uri": dag_uri},
                                                       "position": {"line": 4, "character": 8}})
    assert found["range"]["start"] == {"line": 2, "character": 0}
    found = editor.request("textDocument/definition", {"textDocument": {"uri": dag_uri},
                                                       "position": {"line": 2, "character": 18}})
    assert found["range"]["start"] == {"line": 1, "character": 6}


def test_document_symbols(editor, opened) -> None:
    uri, _, _ = opened
    symbols = editor.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
    (network,) = symbols
    assert network["name"] == "resnet18"
    names = [c["name"] for c in network["children"]]
    assert names[:2] == ["x", "num_classes"] and {"conv1", "layer1", "fc"} <= set(names)


def test_completion(editor, opened) -> None:
    uri, text, _ = opened
    line = text.split("\n")[7]
    at = {"line": 7, "character": line.index("stride")}
    items = editor.request("textDocument/completion", {"textDocument": {"uri": uri},
                                                       "position": at})["items"]
    stride = next(i for i in items if i["label"] == "stride")
    assert stride["insertText"] == "stride=" and "default 1" in stride["detail"]
    assert "num_classes" in [i["label"] for i in items]
    at = {"line": 16, "character": 0}
    labels = [i["label"] for i in editor.request("textDocument/completion", {
        "textDocument": {"uri": uri}, "position": at})["items"]]
    assert {"conv2d", "batchnorm2d", "basic", "bottleneck", "residual", "x"} <= set(labels)


def test_did_change_reports_every_error(editor, tmp_path) -> None:
    path = tmp_path / "three.arch"
    path.write_text(THREE)
    uri = path.as_uri()
    editor.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "archspec", "version": 1,
        "text": THREE.replace("conv2x", "conv2d").replace("poolde", "pooled")}})
    first = editor.diagnostics(uri)
    assert [d["code"] for d in first] == ["E301"]
    started = time.perf_counter()
    editor.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                             "contentChanges": [{"text": THREE}]})
    found = editor.diagnostics(uri)
    assert time.perf_counter() - started < 5
    stderr = check_json(path)["stderr"]
    located = [line.split(": error[")[0].rsplit(":", 2)[1:] for line in stderr.split("\n")
               if ": error[" in line]
    assert [(d["code"], [str(d["range"]["start"]["line"] + 1),
                         str(d["range"]["start"]["character"] + 1)]) for d in found] == [
        (code, where) for code, where in zip(["E201", "E301", "E212"], located)]
    assert all(d["severity"] == 1 and d["source"] == "archspec" for d in found)
    assert "hint: did you mean `conv2d`?" in found[0]["message"]
    assert found[0]["relatedInformation"][0]["message"].startswith("in block `unit`")


def test_warnings_are_warnings(editor, tmp_path) -> None:
    uri = (tmp_path / "warn.arch").as_uri()
    text = "network w\ninput x: 3x8x8\nunused = relu()(x)\ny = conv2d(4, 3)(x)\n"
    editor.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "archspec", "version": 1, "text": text}})
    (warning,) = editor.diagnostics(uri)
    assert warning["code"] == "W201" and warning["severity"] == 2
    assert warning["range"]["start"] == {"line": 2, "character": 0}


def test_formatting(editor, tmp_path) -> None:
    uri = (tmp_path / "messy.arch").as_uri()
    text = "network m\ninput x:3x8x8\nconv2d( 4,3 ,padding = 1)->relu   # c\n"
    editor.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "archspec", "version": 1, "text": text}})
    editor.diagnostics(uri)
    (edit,) = editor.request("textDocument/formatting", {"textDocument": {"uri": uri},
                                                         "options": {"tabSize": 4,
                                                                     "insertSpaces": True}})
    assert edit["range"]["start"] == {"line": 0, "character": 0}
    assert edit["newText"] == format_source(SourceFile("m", text))
    # the trailing comment keeps its column: there is room for it after the code
    assert edit["newText"].split("\n")[2] == "conv2d(4, 3, padding=1) -> relu   # c"


def test_yaml_spec_diagnostics(editor, tmp_path) -> None:
    uri = (tmp_path / "net.yaml").as_uri()
    text = "network: y\ninputs: {x: 3x8x8}\nbody:\n  - conv2d(4, 3)\n  - relux\n"
    editor.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "yaml", "version": 1, "text": text}})
    (error,) = editor.diagnostics(uri)
    assert error["code"] == "E201" and error["range"]["start"]["line"] == 4


UNIT = "block unit(c: int) {\n    conv: conv2d(c, 3, padding=1)\n    relu\n}\n"
BROKEN_UNIT = UNIT.replace("padding=1", "padding=1, groups=3")  # 6 -> 4 channels: E301


def open_doc(editor: Editor, path: Path, text: str) -> str:
    """Open ``path`` with ``text`` (its diagnostics read); returns its URI."""
    uri = path.as_uri()
    editor.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "archspec", "version": 1, "text": text}})
    editor.diagnostics(uri)
    return uri


def change(editor: Editor, uri: str, version: int, text: str) -> None:
    editor.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                             "contentChanges": [{"text": text}]})


def as_check_reports(path: Path) -> list[tuple[str, str, list[str]]]:
    """The errors `archspec check` reports for ``path`` on disk as the server shows them in an
    importing document: code, first message line (``file:line:col: message``), and the
    ``file:line:col`` of each note."""
    found: list[tuple[str, str, list[str]]] = []
    for line in check_json(path)["stderr"].split("\n"):
        if ": error[" in line:
            where, rest = line.split(": error[", 1)
            code, message = rest.split("]: ", 1)
            found.append((code, f"{where}: {message}", []))
        elif ": note: " in line:
            found[-1][2].append(line.split(": note: ")[0])
    return found


def as_published(found: list[dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
    def at(info: dict[str, Any]) -> str:
        start = info["location"]["range"]["start"]
        path = unquote(urlparse(info["location"]["uri"]).path)
        return f"{path}:{start['line'] + 1}:{start['character'] + 1}"

    return [(d["code"], d["message"].split("\n")[0],
             [at(r) for r in d.get("relatedInformation") or []]) for d in found]


def test_an_edit_of_an_open_import_rechecks_its_importer(editor, tmp_path) -> None:
    """main.arch calls a block of blocks.arch, both open: breaking the block in the editor
    shows the error in main.arch (as `check` reports it for the same files on disk), fixing it
    clears it, a hover shows the new numbers, and closing the edited import reads its file."""
    main, blocks = tmp_path / "main.arch", tmp_path / "blocks.arch"
    text = 'import "blocks.arch"\nnetwork main\ninput x: 3x8x8\nb1: unit(6)\nb2: unit(4)\n'
    main.write_text(text)
    blocks.write_text(UNIT)
    before = {r["name"]: r for r in check_json(main)["blocks"]}["b1"]["params"]
    main_uri, blocks_uri = open_doc(editor, main, text), open_doc(editor, blocks, UNIT)
    change(editor, blocks_uri, 2, BROKEN_UNIT)
    editor.diagnostics(blocks_uri)  # its own first
    found = editor.diagnostics(main_uri)
    blocks.write_text(BROKEN_UNIT)
    assert as_published(found) == as_check_reports(main) and found[0]["code"] == "E301"
    assert found[0]["range"]["start"] == {"line": 0, "character": 0}
    wider = UNIT.replace("conv2d(c,", "conv2d(2 * c,")
    change(editor, blocks_uri, 3, wider)
    editor.diagnostics(blocks_uri)
    assert editor.diagnostics(main_uri) == []
    blocks.write_text(wider)
    b1 = {r["name"]: r for r in check_json(main)["blocks"]}["b1"]
    hover = editor.request("textDocument/hover", {"textDocument": {"uri": main_uri},
                                                  "position": position(text, 4, "unit")})
    assert f"params {b1['params']:,}" in hover["contents"]["value"] and b1["params"] != before
    change(editor, blocks_uri, 4, BROKEN_UNIT)
    editor.diagnostics(blocks_uri)
    assert editor.diagnostics(main_uri)
    editor.notify("textDocument/didClose", {"textDocument": {"uri": blocks_uri}})
    assert editor.diagnostics(blocks_uri) == []
    assert editor.diagnostics(main_uri) == []  # the file on disk is the fixed one


def test_a_change_on_disk_rechecks_the_documents_that_import_it(editor, tmp_path) -> None:
    """m.arch (open) imports mid.arch, which imports base.arch (neither open): base.arch
    changed on disk and reported by the editor re-checks m.arch."""
    (tmp_path / "mid.arch").write_text(
        'import "base.arch"\nblock pair(c: int) {\n    unit(c)\n    unit(c)\n}\n')
    base = tmp_path / "base.arch"
    base.write_text(UNIT)
    text = 'import "mid.arch"\nnetwork m\ninput x: 3x8x8\np: pair(4)\n'
    (tmp_path / "m.arch").write_text(text)
    uri = open_doc(editor, tmp_path / "m.arch", text)
    for body, expected in ((BROKEN_UNIT, "E301"), (UNIT, None)):
        base.write_text(body)
        editor.notify("workspace/didChangeWatchedFiles",
                      {"changes": [{"uri": base.as_uri(), "type": 2}]})
        found = editor.diagnostics(uri)
        assert [d["code"] for d in found][:1] == ([expected] if expected else [])
        if expected:
            assert as_published(found) == as_check_reports(tmp_path / "m.arch")


def test_the_server_asks_to_watch_spec_files() -> None:
    pytest.importorskip("pygls")
    ed = Editor()
    try:
        ed.request("initialize", {"processId": None, "rootUri": ROOT.as_uri(), "capabilities": {
            "workspace": {"didChangeWatchedFiles": {"dynamicRegistration": True}}}})
        ed.notify("initialized", {})
        while (message := ed.read()).get("method") != "client/registerCapability":
            pass
        (registration,) = message["params"]["registrations"]
        assert registration["method"] == "workspace/didChangeWatchedFiles"
        globs = [w["globPattern"] for w in registration["registerOptions"]["watchers"]]
        assert globs == ["**/*.arch", "**/*.yaml", "**/*.yml"]
        ed.send({"id": message["id"], "result": None})
        assert ed.request("shutdown", None) is None
        ed.notify("exit", None)
    finally:
        assert ed.proc.wait(TIMEOUT) == 0


def test_without_pygls_the_extra_is_named(capsys, monkeypatch) -> None:
    import importlib.util

    from test_errors import run_cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pygls" else real(name, *a))
    code, _, err = run_cli(["lsp"], capsys)
    assert code == 2 and "error[E010]" in err and "pip install 'archspec[lsp]'" in err
