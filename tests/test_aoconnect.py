"""The real @permaweb/aoconnect (npm, pinned in tests/node/package.json) against ``tfao serve``.

Runs ``node --test aoconnect.test.mjs`` in tests/node with MU_URL, CU_URL and GATEWAY_URL pointing
at a node started on a free loopback port with a temporary home. Without node/npm or the npm registry
the test is skipped, unless CI=true, where it fails instead.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tfao.http.server import ServerProcess
from weavedrive.wallet import premade_wallets

NODE_TESTS = Path(__file__).parent / "node"


def unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the aoconnect test must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def aoconnect_installed() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        unavailable("node and npm are needed to run the aoconnect test")
    if not (NODE_TESTS / "node_modules" / "@permaweb" / "aoconnect").is_dir():
        install = ["npm", "ci"] if (NODE_TESTS / "package-lock.json").exists() else ["npm", "install"]
        try:
            done = subprocess.run(install + ["--no-audit", "--no-fund"], cwd=NODE_TESTS, capture_output=True,
                                  text=True, timeout=600)
        except subprocess.TimeoutExpired:
            unavailable(f"{' '.join(install)} timed out (is the npm registry reachable?)")
        if done.returncode != 0:
            unavailable(f"{' '.join(install)} failed (is the npm registry reachable?): {done.stderr[-2000:]}")
    return NODE_TESTS


def test_aoconnect_drives_the_node(aoconnect_installed, tmp_path):
    owner, stranger = premade_wallets()[:2]
    wallets = tmp_path / "wallets.json"
    wallets.write_text(json.dumps([owner.jwk, stranger.jwk]))
    with ServerProcess(tmp_path / "home") as server:
        env = {
            **os.environ,
            "MU_URL": server.url, "CU_URL": server.url, "GATEWAY_URL": server.url,
            "TFAO_MODULE": server.module_id, "TFAO_SCHEDULER": server.address,
            "TFAO_WALLETS": str(wallets), "TFAO_OWNER": owner.address,
        }
        done = subprocess.run(["node", "--test", "aoconnect.test.mjs"], cwd=aoconnect_installed, env=env, capture_output=True,
                              text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "# fail 0" in done.stdout and "# pass 6" in done.stdout, done.stdout[-6000:]
