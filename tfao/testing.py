"""pytest plugin: a local AO node and pre-made wallets as fixtures, for testing your own processes.

Installed with the package (entry point ``pytest11``), so a project that depends on
transformers-ao can write::

    def test_ping(ao_node, wallets):
        p = ao_node.spawn(wallet=wallets[0])
        p.eval('Handlers.add("Ping", function(msg) msg.reply({Data = "Pong"}) end)', wallet=wallets[0])
        assert p.send("Ping", wallet=wallets[0])["Messages"][0]["Data"] == "Pong"
"""

from __future__ import annotations

import pytest

from tfao.node.node import Node
from weavedrive.wallet import premade_wallets


@pytest.fixture(scope="session")
def wallets():
    """Four pre-made RSA wallets (public test keys: never use them for anything real)."""
    return premade_wallets()


@pytest.fixture
def ao_node(wallets):
    """A fresh, temporary local node whose own wallet is ``wallets[3]``; closed after the test."""
    with Node(wallet=wallets[3]) as node:
        yield node


@pytest.fixture
def ao_process(ao_node, wallets):
    """A fresh aos process on ``ao_node``, owned by ``wallets[0]``."""
    return ao_node.spawn(wallet=wallets[0])
