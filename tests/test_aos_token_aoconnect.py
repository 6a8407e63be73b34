"""The token blueprint end to end through the real aoconnect against ``tfao serve``
(tests/node/token-blueprint.mjs; skipped like tests/test_aoconnect.py when node/npm are missing)."""

import importlib.resources
import json
import os
import subprocess

from tfao.http.server import ServerProcess
from weavedrive.wallet import premade_wallets
from test_aoconnect import aoconnect_installed  # noqa: F401  (a fixture)


def test_token_blueprint_through_aoconnect(aoconnect_installed, tmp_path):  # noqa: F811
    owner, stranger = premade_wallets()[:2]
    wallets = tmp_path / "wallets.json"
    wallets.write_text(json.dumps([owner.jwk, stranger.jwk]))
    token = importlib.resources.files("tfao.sandbox") / "blueprints" / "token.lua"
    with ServerProcess(tmp_path / "home") as server:
        env = {
            **os.environ,
            "MU_URL": server.url, "CU_URL": server.url, "GATEWAY_URL": server.url,
            "TFAO_MODULE": server.module_id, "TFAO_SCHEDULER": server.address, "TFAO_WALLETS": str(wallets),
            "TFAO_OWNER": owner.address, "TFAO_STRANGER": stranger.address, "TFAO_TOKEN_LUA": str(token),
        }
        done = subprocess.run(["node", "--test", "token-blueprint.mjs"], cwd=aoconnect_installed, env=env,
                              capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "# fail 0" in done.stdout and "# pass 1" in done.stdout, done.stdout[-6000:]
