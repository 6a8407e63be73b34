"""Whole-network helpers for models built from nested layer objects (CLIP, UNet, VAE): their linear layers
(convolutions included), the bytes those reference, and sharing prepared exact-mode weights."""

from __future__ import annotations

from . import ops


def linear_layers(network) -> list[ops.Linear]:
    """Every ``ops.Linear`` reachable through the attributes, lists and tuples of ``network``, once each."""
    found, seen, pending = [], set(), [network]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ops.Linear):
            found.append(item)
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
        elif hasattr(item, "__dict__") and type(item).__module__.startswith("tfao.kernels"):
            pending.extend(vars(item).values())
    return found


def share_prepared(network, prepared: ops.PreparedStore | None) -> None:
    """Let every linear layer take its exact-mode integers from ``prepared`` (before its first exact call)."""
    if prepared is not None:
        for linear in linear_layers(network):
            linear.prepared = prepared


def nbytes(network) -> int:
    """Bytes the network's layers reference (for a model cache's budget)."""
    return sum(linear.nbytes() for linear in linear_layers(network))
