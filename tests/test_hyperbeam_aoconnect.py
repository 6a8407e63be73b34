"""The real @permaweb/aoconnect in ``MODE: 'mainnet'`` (HyperBEAM's API) against ``tfao serve``.

Runs ``node --test aoconnect-mainnet.test.mjs`` in tests/node against a node started on a free
loopback port with a temporary home (skipped without node/npm, failed instead under CI=true).
"""

import json
import os
import subprocess

from test_aoconnect import aoconnect_installed  # noqa: F401 (fixture)
from tfao.http.server import ServerProcess
from weavedrive.wallet import premade_wallets

TESTS = 12


def test_aoconnect_mainnet_drives_the_node(aoconnect_installed, tmp_path):  # noqa: F811
    owner, stranger = premade_wallets()[:2]
    wallets = tmp_path / "wallets.json"
    wallets.write_text(json.dumps([owner.jwk, stranger.jwk]))
    with ServerProcess(tmp_path / "home") as server:
        env = {
            **os.environ,
            "TFAO_MAINNET_URL": server.url, "TFAO_MODULE": server.module_id, "TFAO_SCHEDULER": server.address,
            "TFAO_WALLETS": str(wallets), "TFAO_OWNER": owner.address,
        }
        for name in ("MODULE", "AUTHORITY"):  # aoconnect lets these override spawn's arguments
            env.pop(name, None)
        done = subprocess.run(["node", "--test", "aoconnect-mainnet.test.mjs"], cwd=aoconnect_installed, env=env,
                              capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "# fail 0" in done.stdout and f"# pass {TESTS}" in done.stdout, done.stdout[-6000:]
