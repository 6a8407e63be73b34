"""What the aos 2 CLI (2.0.16) sends in its default mainnet mode, replayed against ``tfao serve``; and
the legacy mode's trust of the messages the node pushes.

``aos NAME --url URL --scheduler ADDR --module MOD`` looks its process up by name over GraphQL, asks
``/~meta@1.0/info/address`` for the Authority, spawns through ``POST /push`` (tags ``App-Name=aos``,
``Name``, ``aos-version``, ``process-timestamp``; empty data), sends each command as an Eval through
``/PID~process@1.0/push`` (plus ``message-timestamp``) and reads ``compute/results=SLOT``; every 2 s it
polls ``/PID/slot/current`` and ``/PID/compute/results=N``, printing ``Output.data`` of a slot newer than
the last one it printed.
"""

import time

import httpx
import pytest

from test_aos_wire import AOS_AUTHORITY, BY_NAME
from test_hyperbeam import ANS104, HTTPSIG_CODEC, JSON_CODEC, mainnet_tags
from test_server import OWNER, message_item, process_item
from tfao.http.server import ServerProcess
from weavedrive.ans104 import sign_data_item

NAME = "aos-mainnet"
SELF_SEND = ('Handlers.add("Hello", "Hello", function (msg) print("hello from " .. msg.From) end)\n'
             'Send({ Target = ao.id, Action = "Hello" })')


class AosMainnet:
    def __init__(self, server: ServerProcess, http: httpx.Client):
        self.server, self.http = server, http
        self.pid = None

    def lookup(self) -> list[dict]:
        answer = self.http.post("/graphql", json={"query": BY_NAME.replace("NAME", NAME),
                                                  "variables": {"owners": [OWNER.address, ""]}})
        return answer.json()["data"]["transactions"]["edges"]

    def spawn(self) -> str:
        authority = self.http.get("/~meta@1.0/info/address").text
        fixed = [("device", "process@1.0"), ("scheduler-device", "scheduler@1.0"), ("push-device", "push@1.0"),
                 ("execution-device", "genesis-wasm@1.0"), ("Authority", authority),
                 ("Scheduler", self.server.address), ("Module", self.server.module_id)]
        mine = [("App-Name", "aos"), ("Name", NAME), ("aos-version", "2.0.16"),
                ("process-timestamp", str(int(time.time() * 1000)))]
        item = sign_data_item(OWNER, b"", tags=mainnet_tags(fixed + mine, HTTPSIG_CODEC, "Process"))
        response = self.http.post("/push", content=item.to_bytes(), headers=ANS104)
        self.pid = response.headers["process"]
        assert self.pid == item.id
        return self.pid

    def eval(self, line: str) -> dict:
        tags = [("Action", "Eval"), ("message-timestamp", str(int(time.time() * 1000)))]
        item = sign_data_item(OWNER, line.encode(), target=self.pid, tags=mainnet_tags(tags, JSON_CODEC, "Message"))
        slot = self.http.post(f"/{self.pid}~process@1.0/push", content=item.to_bytes(), headers=ANS104).json()["slot"]
        return self.result(slot, f"/{self.pid}~process@1.0")

    def result(self, slot, prefix) -> dict:
        read = sign_data_item(OWNER, b"1984", target=self.pid, tags=mainnet_tags([], JSON_CODEC, "Message"))
        return self.http.post(f"{prefix}/compute/results={slot}", content=read.to_bytes(), headers=ANS104).json()["raw"]

    def poll(self) -> tuple[int, dict]:
        """One round of aos's live polling: the current slot and its result."""
        probe = sign_data_item(OWNER, b"1984", tags=mainnet_tags([], HTTPSIG_CODEC, "Message"))
        slot = int(self.http.post(f"/{self.pid}/slot/current", content=probe.to_bytes(), headers=ANS104).text)
        return slot, self.result(slot, f"/{self.pid}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("aos-mainnet-home")) as server:
        yield server


@pytest.fixture(scope="module")
def aos(server):
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield AosMainnet(server, http)


def test_spawn_by_name_then_found_by_name(aos):
    assert aos.lookup() == []
    pid = aos.spawn()
    edges = aos.lookup()
    assert [e["node"]["id"] for e in edges] == [pid]
    assert {t["name"]: t["value"] for t in edges[0]["node"]["tags"]}["Variant"] == "ao.N.1"


def test_startup_prompt_and_a_command(aos):
    output = aos.eval("require('.process')._version")["Output"]
    prompt = output.get("prompt") or (output.get("data") or {}).get("prompt")
    assert isinstance(prompt, str) and NAME in prompt
    assert aos.eval("return 1+41")["Output"]["data"] == "42"


def test_a_message_the_process_sends_itself_shows_up_in_live_polling(aos):
    last_printed, _ = aos.poll()
    sent = aos.eval(SELF_SEND)
    assert [m["Target"] for m in sent["Messages"]] == [aos.pid]
    slot, result = aos.poll()
    assert slot == last_printed + 2  # the Eval, then the message it sent
    assert result["Output"]["print"] is True and result["Output"]["data"] == f"hello from {aos.pid}"


def test_legacy_aos_trusts_what_the_node_pushes(server):
    """aos's legacy spawn names the public messenger's wallet as Authority; this node stands in for it."""
    with httpx.Client(base_url=server.url, timeout=60) as http:
        spawn = process_item(server.module_id, server.address, name="aos-legacy", tags=[
            ("App-Name", "aos"), ("Authority", AOS_AUTHORITY), ("aos-Version", "2.0.16")])
        assert http.post("/", content=spawn.to_bytes()).status_code == 202

        def send(code):
            item = message_item(spawn.id, code, action="Eval")
            assert http.post("/", content=item.to_bytes()).status_code == 202
            return item.id, http.get(f"/result/{item.id}", params={"process-id": spawn.id}).json()

        message_id, result = send(SELF_SEND)
        assert [m["Target"] for m in result["Messages"]] == [spawn.id]
        pushed = http.get(f"/{spawn.id}~process@1.0/now").json()["raw"]  # waits for the pushed message
        assert pushed["Output"]["data"] == f"hello from {spawn.id}"
        _, authorities = send("return table.concat(ao.authorities, ' ')")
        assert authorities["Output"]["data"] == f"{AOS_AUTHORITY} {server.address}"
