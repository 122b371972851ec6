"""The language: sources and spans, diagnostics, limits, the IR, the syntax (text and YAML),
expressions, expansion into the flat network, init schemes and plugins (docs/architecture.md)."""
