"""pytest plugin: a local AO node and pre-made wallets as fixtures, for testing your own processes.

Installed with the package (entry point ``pytest11``), so a project that depends on
transformers-ao can write::

    def test_ping(ao_process):
        ao_process.eval('Handlers.add("Ping", function(msg) msg.reply({Data = "Pong"}) end)')
        assert ao_process.send("Ping")["Messages"][0]["Data"] == "Pong"

Every handle signs as its process's owner unless a call names another wallet, so ``eval`` runs
the code (aos lets only the owner Eval) and ``send(..., wallet=wallets[1])`` comes from a stranger.
"""

from __future__ import annotations

import pytest

from tfao.node.node import Node, ProcessHandle
from weavedrive.wallet import Wallet, premade_wallets


class OwnedProcess(ProcessHandle):
    """A process handle that signs as the process's owner unless told otherwise."""

    def __init__(self, node: Node, pid: str, owner: Wallet):
        super().__init__(node, pid)
        self.owner = owner

    def message(self, action=None, *, wallet: Wallet | None = None, **kwargs) -> str:
        return super().message(action, wallet=wallet or self.owner, **kwargs)


@pytest.fixture(scope="session")
def wallets():
    """Four pre-made RSA wallets (public test keys: never use them for anything real)."""
    return premade_wallets()


@pytest.fixture
def ao_node(wallets):
    """A fresh, temporary local node whose own wallet is ``wallets[3]``; closed after the test.

    ``ao_node.spawn()`` makes a process owned by the node's wallet, which its handle signs with."""
    with Node(wallet=wallets[3]) as node:
        yield node


@pytest.fixture
def ao_process(ao_node, wallets):
    """A fresh aos process on ``ao_node``, owned by ``wallets[0]``; its handle signs as ``wallets[0]``."""
    return OwnedProcess(ao_node, ao_node.spawn(wallet=wallets[0]).id, wallets[0])
