"""Transformers-AO: a Lua-scriptable, deterministic inference runtime for AO processes."""

from tfao.node import Node, ProcessHandle
from tfao.pipelines import pipeline

__version__ = "0.1.0"
__all__ = ["Node", "ProcessHandle", "pipeline"]
