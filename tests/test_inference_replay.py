"""A restart replays the log but never recomputes inference: results come from the inference cache."""

import sqlite3

import numpy as np

from tfao.bridges.transformers import encode_result
from tfao.cli.demo import import_minilm
from tfao.node.node import Node


def test_replay_reuses_cached_inference(tmp_path, wallets):
    owner = wallets[0]
    with Node(tmp_path, wallet=wallets[3]) as node:
        model = import_minilm(node)
        p = node.spawn(wallet=owner)
        result = p.eval(f'V = require("transformers").bert.encode_text({{model = "{model}", prompt = "hi"}}) '
                        "return #V", wallet=owner)
        assert result["Output"]["data"] == "384"
        pid = p.id
    # swap the cached result for a marker: if the replay recomputed, the marker would not show
    with sqlite3.connect(tmp_path / "inference.sqlite") as db:
        (count,) = db.execute("SELECT COUNT(*) FROM results").fetchone()
        assert count == 1
        db.execute("UPDATE results SET value = ?", (encode_result(np.full(384, 7.0, np.float32), cost=1),))
    with Node(tmp_path, wallet=wallets[3]) as node:
        assert node.process(pid).eval("V[1] + V[384]", wallet=owner)["Output"]["data"] == "14.0"
