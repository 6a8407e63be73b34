"""What the aos 2 CLI sends (legacy mode, pointed at a local node), replayed against ``tfao serve``.

aos looks its process up by name over GraphQL (with ``owners: [ADDRESS, ""]``), spawns it if
missing, Evals ``require('.process')._version`` until a prompt comes back, runs commands as Eval
messages, and polls results (``sort=DESC&limit=5``, then ``from=<cursor>&sort=ASC&limit=1000``),
printing the nodes with ``Output.print == true`` in cursor-ordinate order.
"""

import base64
import json

import httpx
import pytest

from test_server import OWNER, STRANGER, message_item, process_item
from tfao.http.server import ServerProcess

AOS_AUTHORITY = "fcoN_xJeisVsPXA-trzVAuIiqO3ydLQxM-L4XbrQKzY"
BY_NAME = (
    'query ($owners: [String!]!) { transactions(first: 10, owners: $owners, tags: [{ name: "Data-Protocol", '
    'values: ["ao"] }, { name: "Type", values: ["Process"]}, { name: "Name", values: ["NAME"]}]) '
    "{ edges { node { id tags { name value } } } } }"
)


class Aos:
    def __init__(self, server: ServerProcess, http: httpx.Client, name: str):
        self.server, self.http, self.name = server, http, name
        self.pid = None

    def lookup(self) -> list[dict]:
        query = BY_NAME.replace("NAME", self.name)
        answer = self.http.post("/graphql", json={"query": query, "variables": {"owners": [OWNER.address, ""]}})
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]["transactions"]["edges"]

    def spawn(self) -> str:
        item = process_item(self.server.module_id, self.server.address, name=self.name, tags=[
            ("App-Name", "aos"), ("Authority", AOS_AUTHORITY), ("aos-Version", "2.0.16")])
        assert self.http.post("/", content=item.to_bytes(), headers={
            "Content-Type": "application/octet-stream", "Accept": "application/json"}).status_code == 202
        self.pid = item.id
        return item.id

    def send(self, code: str = "", *, action: str = "Eval", wallet=OWNER) -> dict:
        item = message_item(self.pid, code, action=action, wallet=wallet)
        assert self.http.post("/", content=item.to_bytes()).status_code == 202
        return self.http.get(f"/result/{item.id}", params={"process-id": self.pid}).json()

    def results(self, **params) -> list[dict]:
        answer = self.http.get(f"/results/{self.pid}", params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()["edges"]


def ordinate(cursor: str) -> int:
    return int(json.loads(base64.b64decode(cursor))["ordinate"])


@pytest.fixture(scope="module")
def aos(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("aos-home")) as server, \
            httpx.Client(base_url=server.url, timeout=60) as http:
        yield Aos(server, http, "aos-wire")


def test_process_by_name_then_spawn(aos):
    assert aos.lookup() == []  # nothing yet: aos spawns
    pid = aos.spawn()
    edges = aos.lookup()
    assert [e["node"]["id"] for e in edges] == [pid]
    tags = {t["name"]: t["value"] for t in edges[0]["node"]["tags"]}
    assert tags["Variant"] == "ao.TN.1"  # aos picks legacy mode from this tag
    assert tags["Authority"] == AOS_AUTHORITY and tags["Name"] == "aos-wire"


def test_startup_eval_gives_a_prompt(aos):
    result = aos.send("require('.process')._version")
    output = result["Output"]
    prompt = output.get("prompt") or (output.get("data") or {}).get("prompt")
    assert isinstance(prompt, str) and prompt.endswith("> ") and "aos-wire" in prompt


def test_run_prints_output_data(aos):
    assert aos.send("return 1+41")["Output"]["data"] == "42"


def test_errors_are_strings_with_the_aos_chunk_name(aos):
    error = aos.send('error("boom")')["Error"]
    assert isinstance(error, str) and '[string "aos"]:1: boom' in error


def test_live_output_polling(aos):
    aos.send('Handlers.add("Ping", "Ping", function (msg) print("pinged by " .. msg.From) end)')
    latest = aos.results(sort="DESC", limit=5)
    assert 1 <= len(latest) <= 5
    assert [ordinate(e["cursor"]) for e in latest] == sorted((ordinate(e["cursor"]) for e in latest), reverse=True)
    cursor = latest[0]["cursor"]
    assert aos.results(**{"from": cursor, "sort": "ASC", "limit": 1000}) == []
    aos.send(action="Ping", wallet=STRANGER)
    aos.send(action="Ping", wallet=OWNER)
    fresh = aos.results(**{"from": cursor, "sort": "ASC", "limit": 1000})
    assert [ordinate(e["cursor"]) for e in fresh] == [ordinate(cursor) + 1, ordinate(cursor) + 2]
    printed = [e["node"]["Output"]["data"] for e in sorted(fresh, key=lambda e: ordinate(e["cursor"]))
               if e["node"]["Output"].get("print") is True]
    assert printed == [f"pinged by {STRANGER.address}", f"pinged by {OWNER.address}"]
    assert aos.results(**{"from": fresh[-1]["cursor"], "sort": "ASC", "limit": 1000}) == []
