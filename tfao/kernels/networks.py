"""Whole-network helpers for models built from nested layer objects (CLIP, UNet, VAE): their linear layers
(convolutions included), the bytes those reference, and sharing prepared weights."""

from __future__ import annotations

from . import ops
from .winograd import Winograd3x3


def layers(network, kinds) -> list:
    """Every instance of ``kinds`` reachable through the attributes, lists and tuples of ``network``, once each."""
    found, seen, pending = [], set(), [network]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, kinds):
            found.append(item)
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
        elif hasattr(item, "__dict__") and type(item).__module__.startswith("tfao.kernels"):
            pending.extend(vars(item).values())
    return found


def linear_layers(network) -> list[ops.Linear]:
    """Every ``ops.Linear`` of ``network`` (convolutions' GEMM weights included)."""
    return layers(network, ops.Linear)


def share_prepared(network, prepared: ops.PreparedStore | None) -> None:
    """Let every linear layer take its exact-mode integers from ``prepared`` (before its first exact call)."""
    if prepared is not None:
        for linear in linear_layers(network):
            linear.prepared = prepared


def nbytes(network) -> int:
    """Bytes the network's layers reference, prepared forms included (for a model cache's budget); a
    Winograd convolution counts its own forms in place of its GEMM weight's."""
    winograds = layers(network, Winograd3x3)
    owned = {id(winograd.linear) for winograd in winograds}
    linears = [linear for linear in linear_layers(network) if id(linear) not in owned]
    return sum(winograd.nbytes() for winograd in winograds) + sum(linear.nbytes() for linear in linears)
