"""Transformers-AO: a Lua-scriptable, deterministic inference runtime for AO processes."""

__version__ = "0.1.0"
