"""``archspec lsp``: the Language Server, over stdio, built on pygls.

Each open document (``.arch`` or archspec YAML) is analysed when it is opened and at every
change; the :class:`~archspec.editor.snapshot.Snapshot` of its latest version answers hover,
inlay hints, definition, symbols and completion, and its diagnostics are published at once.
Formatting is ``archspec fmt``'s layout, as one edit of the whole document.
"""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as lsp
from pygls.server import LanguageServer

from archspec.editor import completion, features
from archspec.editor.snapshot import Snapshot, take
from archspec.lang.diagnostics import ArchspecError
from archspec.lang.source import SourceFile
from archspec.lang.syntax.formatter import format_source
from archspec.lang.syntax.loader import ImportCache
from archspec.lang.version import __version__


class ArchServer(LanguageServer):
    """The server, with the latest snapshot of each open document by URI."""

    def __init__(self) -> None:
        super().__init__("archspec", __version__,
                         text_document_sync_kind=lsp.TextDocumentSyncKind.Full)
        self.snapshots: dict[str, tuple[int | None, Snapshot]] = {}
        self.imports = ImportCache(opened=self.opened)

    def opened(self, path: Path) -> str | None:
        """The text of the open document at ``path`` (resolved), None if it is not open: an
        imported file being edited is read from its document, saved or not."""
        for doc in self.workspace.text_documents.values():
            if doc.path and Path(doc.path).resolve() == path:
                return doc.source
        return None

    def snapshot(self, uri: str) -> Snapshot:
        """The snapshot of the document's current text (analysed again only if it changed)."""
        doc = self.workspace.get_text_document(uri)
        kept = self.snapshots.get(uri)
        if kept is not None and kept[0] == doc.version and kept[1].source.text == doc.source:
            return kept[1]
        snap = take(doc.source, Path(doc.path), self.imports)
        self.snapshots[uri] = (doc.version, snap)
        return snap

    def refresh(self, uri: str) -> None:
        """Analyse the document again and publish its diagnostics."""
        snap = self.snapshot(uri)
        self.publish_diagnostics(uri, features.diagnostics(snap))


def build() -> ArchServer:
    """The server with every feature registered."""
    server = ArchServer()

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: ArchServer, params: lsp.DidOpenTextDocumentParams) -> None:
        ls.refresh(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: ArchServer, params: lsp.DidChangeTextDocumentParams) -> None:
        ls.refresh(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: ArchServer, params: lsp.DidCloseTextDocumentParams) -> None:
        ls.snapshots.pop(params.text_document.uri, None)
        ls.publish_diagnostics(params.text_document.uri, [])

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def hover(ls: ArchServer, params: lsp.HoverParams) -> lsp.Hover | None:
        return features.hover(ls.snapshot(params.text_document.uri), params.position)

    @server.feature(lsp.TEXT_DOCUMENT_INLAY_HINT)
    def inlay_hint(ls: ArchServer, params: lsp.InlayHintParams) -> list[lsp.InlayHint]:
        where = params.range
        return features.inlay_hints(ls.snapshot(params.text_document.uri), where.start.line,
                                    where.end.line)

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: ArchServer, params: lsp.DefinitionParams) -> lsp.Location | None:
        return features.definition(ls.snapshot(params.text_document.uri), params.position)

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def symbols(ls: ArchServer,
                params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
        return features.symbols(ls.snapshot(params.text_document.uri))

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION,
                    lsp.CompletionOptions(trigger_characters=["(", ",", " ", "="]))
    def complete(ls: ArchServer, params: lsp.CompletionParams) -> lsp.CompletionList:
        uri = params.text_document.uri
        doc = ls.workspace.get_text_document(uri)
        before = doc.source[:doc.offset_at_position(params.position)]
        return lsp.CompletionList(is_incomplete=False,
                                  items=completion.completions(ls.snapshot(uri), before))

    @server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls: ArchServer,
                   params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
        doc = ls.workspace.get_text_document(params.text_document.uri)
        if not doc.path.endswith(".arch"):
            return None
        try:
            text = format_source(SourceFile(doc.path, doc.source))
        except ArchspecError:  # shown as diagnostics already; nothing to lay out
            return None
        if text == doc.source:
            return []
        end = lsp.Position(len(doc.lines), 0)
        return [lsp.TextEdit(lsp.Range(lsp.Position(0, 0), end), text)]

    return server


def serve() -> None:
    """Run the server on standard input and output until the editor shuts it down."""
    build().start_io()
