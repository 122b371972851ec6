"""Views: numbers and networks turned into something to look at: tables, Markdown, CSV, DOT,
Mermaid, the HTML page, SVG/PNG and plots, and the public Report. No torch here."""
