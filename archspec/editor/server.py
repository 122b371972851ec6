"""``archspec lsp``: the Language Server, over stdio, built on pygls.

Each open document (``.arch`` or archspec YAML) is analysed when it is opened and at every
change; the :class:`~archspec.editor.snapshot.Snapshot` of its latest version answers hover,
inlay hints, definition, symbols and completion, and its diagnostics are published at once.
A change, save or close of a document, or a change on disk that the editor reports
(``workspace/didChangeWatchedFiles``), then has every other open document that imports the
file, directly or not, analysed again and its diagnostics published. Formatting is
``archspec fmt``'s layout, as one edit of the whole document.
"""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as lsp
from pygls.server import LanguageServer
from pygls.uris import to_fs_path

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
        """The snapshot of the document's current text and of the files it imports (analysed
        again only if one of them changed)."""
        doc = self.workspace.get_text_document(uri)
        kept = self.snapshots.get(uri)
        if kept is not None and kept[0] == doc.version and kept[1].source.text == doc.source \
                and not kept[1].outdated(self.imports.stamp):
            return kept[1]
        snap = take(doc.source, Path(doc.path), self.imports)
        self.snapshots[uri] = (doc.version, snap)
        return snap

    def refresh(self, uri: str) -> None:
        """Analyse the document again (if it or an import changed); publish its diagnostics."""
        snap = self.snapshot(uri)
        self.publish_diagnostics(uri, features.diagnostics(snap))

    def dependents(self, paths: set[Path]) -> list[str]:
        """The open documents whose analysis read one of ``paths`` (resolved) for an import,
        directly or through other imports (a snapshot records every file read)."""
        return [uri for uri, (_, snap) in self.snapshots.items()
                if snap.path.resolve() not in paths and paths & snap.reads.keys()]

    def refresh_dependents(self, uris: list[str]) -> None:
        """Analyse again, and publish, the open documents that import the files ``uris``."""
        for uri in self.dependents({Path(to_fs_path(u) or u).resolve() for u in uris}):
            self.refresh(uri)

    def files_changed(self, params: lsp.DidChangeWatchedFilesParams) -> None:
        """Files changed on disk: the documents that import them are analysed again; a file
        created may be one that an import did not find, so every document is."""
        if any(c.type == lsp.FileChangeType.Created for c in params.changes):
            for uri in list(self.snapshots):
                self.snapshots.pop(uri)
                self.refresh(uri)
        else:
            self.refresh_dependents([c.uri for c in params.changes])

    def watch_files(self) -> None:
        """Ask the editor to report changes of spec files on disk, if it can be asked."""
        workspace = self.client_capabilities.workspace
        watched = workspace and workspace.did_change_watched_files
        if not (watched and watched.dynamic_registration):
            return
        watchers = [lsp.FileSystemWatcher(glob_pattern=f"**/*.{ext}")
                    for ext in ("arch", "yaml", "yml")]
        self.register_capability(lsp.RegistrationParams([lsp.Registration(
            "archspec-spec-files", lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES,
            lsp.DidChangeWatchedFilesRegistrationOptions(watchers))]))


def build() -> ArchServer:
    """The server with every feature registered."""
    server = ArchServer()

    @server.feature(lsp.INITIALIZED)
    def initialized(ls: ArchServer, _params: lsp.InitializedParams) -> None:
        ls.watch_files()

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: ArchServer, params: lsp.DidOpenTextDocumentParams) -> None:
        ls.refresh(params.text_document.uri)
        ls.refresh_dependents([params.text_document.uri])  # its text replaces the file's

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: ArchServer, params: lsp.DidChangeTextDocumentParams) -> None:
        ls.refresh(params.text_document.uri)  # its own diagnostics first, then its importers'
        ls.refresh_dependents([params.text_document.uri])

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: ArchServer, params: lsp.DidSaveTextDocumentParams) -> None:
        ls.refresh_dependents([params.text_document.uri])

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: ArchServer, params: lsp.DidCloseTextDocumentParams) -> None:
        ls.snapshots.pop(params.text_document.uri, None)
        ls.publish_diagnostics(params.text_document.uri, [])
        ls.refresh_dependents([params.text_document.uri])  # now read from disk

    @server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(ls: ArchServer,
                                 params: lsp.DidChangeWatchedFilesParams) -> None:
        ls.files_changed(params)

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
