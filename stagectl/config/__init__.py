"""Strict, line-numbered YAML configuration reading shared by stage files and lens files."""

from stagectl.config.reader import INVALID, Context, MapReader, load_document

__all__ = ["INVALID", "Context", "MapReader", "load_document"]
