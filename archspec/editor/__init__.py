"""The editor: ``archspec lsp``, a Language Server for ``.arch`` and archspec YAML specs.

- ``snapshot.py``: one document parsed, expanded and analysed, with all its diagnostics, and
  the lookups the features share (no pygls).
- ``features.py``: diagnostics, hover, inlay hints, definition and symbols as LSP types.
- ``completion.py``: completion of ops, blocks, attributes, names and keywords.
- ``server.py``: the pygls server (imported only by ``archspec lsp``; pygls is the ``lsp``
  extra).

It may use views, analysis and lang, never torch or onnx.
"""
