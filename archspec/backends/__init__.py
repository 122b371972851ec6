"""Backends lower an expanded graph to a framework. They import heavy libraries lazily."""
