"""The node: messenger, scheduler and compute unit over a durable log."""

from tfao.node.node import Node, NodeError, NotFound, ProcessHandle

__all__ = ["Node", "NodeError", "NotFound", "ProcessHandle"]
