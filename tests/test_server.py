"""``tfao serve`` over real HTTP: uvicorn on a loopback port, driven with httpx.

Items are signed here the way aoconnect signs them (tag order, data " " when empty, no anchor).
"""

import base64
import json
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tfao.node.node import Node
from tfao.http.server import ServerProcess, bind, uvicorn_server
from weavedrive.ans104 import sign_data_item
from weavedrive.gateway import Gateway
from weavedrive.store import WeaveStore
from weavedrive.wallet import premade_wallets

MAX_BODY = 64 * 1024
OWNER, STRANGER = premade_wallets()[:2]


def aoconnect_tags(tags, data, protocol):
    extra = [("Content-Type", "text/plain")] if not data else []
    return list(tags) + extra + [("SDK", "aoconnect"), ("Data-Protocol", "ao"), ("Variant", "ao.TN.1")] + protocol


def process_item(module, scheduler, *, name="test", wallet=OWNER, tags=()):
    tags = aoconnect_tags([("Name", name), *tags], "", [("Type", "Process"), ("Module", module),
                                                        ("Scheduler", scheduler), ("Timestamp", "1700000000000")])
    return sign_data_item(wallet, b" ", tags=tags)


def message_item(pid, data="", *, action=None, wallet=OWNER, tags=()):
    tags = ([("Action", action)] if action else []) + list(tags)
    return sign_data_item(wallet, data.encode() or b" ", target=pid,
                          tags=aoconnect_tags(tags, data, [("Type", "Message")]))


class Served:
    def __init__(self, node, server, url):
        self.node, self.server, self.url = node, server, url
        self.http = httpx.Client(base_url=url, timeout=60)

    def post_item(self, item):
        return self.http.post("/", content=item.to_bytes(),
                              headers={"Content-Type": "application/octet-stream", "Accept": "application/json"})

    def spawn(self, **kwargs):
        item = process_item(self.node.module_id, self.node.address, **kwargs)
        assert self.post_item(item).status_code == 202
        return item.id

    def send(self, pid, data="", **kwargs):
        item = message_item(pid, data, **kwargs)
        response = self.post_item(item)
        assert response.status_code == 202, response.text
        return item.id, self.http.get(f"/result/{item.id}", params={"process-id": pid}).json()

    def dry_eval(self, pid, code, owner=OWNER.address):
        body = {"Id": "1234", "Target": pid, "Owner": owner, "Anchor": "0", "Data": code,
                "Tags": [{"name": "Action", "value": "Eval"}, {"name": "Data-Protocol", "value": "ao"},
                         {"name": "Type", "value": "Message"}, {"name": "Variant", "value": "ao.TN.1"}]}
        return self.http.post("/dry-run", params={"process-id": pid}, json=body)


@pytest.fixture(scope="module")
def served():
    node = Node()
    server = uvicorn_server(node, max_body=MAX_BODY)
    listener = bind("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    served = Served(node, server, f"http://127.0.0.1:{listener.getsockname()[1]}")
    yield served
    served.http.close()
    server.should_exit = True
    thread.join(10)
    node.close()


@pytest.fixture(scope="module")
def pid(served):
    return served.spawn(name="main")


def test_info_and_timestamp(served):
    info = served.http.get("/").json()
    assert info["address"] == served.node.address and isinstance(info["timestamp"], int)
    stamp = served.http.get("/timestamp").json()
    assert len(stamp["block_height"]) == 12 and int(stamp["block_height"]) == served.node.weave.current_height()


def test_message_result_round_trip(served, pid):
    item = message_item(pid, "return 1 + 41", action="Eval")
    response = served.post_item(item)
    assert response.status_code == 202
    assert response.json() == {"message": "Processing DataItem", "id": item.id}
    result = served.http.get(f"/result/{item.id}", params={"process-id": pid}).json()
    assert result["Output"]["data"] == "42"
    assert result["Messages"] == [] and "Error" not in result


def test_resubmitted_item_is_acknowledged_once(served, pid):
    item = message_item(pid, "Twice = (Twice or 0) + 1", action="Eval")
    before = served.node.store.message_count(pid)
    assert served.post_item(item).status_code == 202
    assert served.post_item(item).status_code == 202
    assert served.node.store.message_count(pid) == before + 1


def test_results_paging(served):
    pid = served.spawn(name="paging")
    ids = [served.send(pid, f"return {n}", action="Eval")[0] for n in range(4)]
    page = served.http.get(f"/results/{pid}", params={"sort": "ASC", "limit": 2}).json()
    assert page["pageInfo"]["hasNextPage"] is True and len(page["edges"]) == 2
    ordinates = [json.loads(base64.b64decode(e["cursor"]))["ordinate"] for e in page["edges"]]
    assert ordinates == ["0", "1"]  # the process message, then the first Eval
    rest = served.http.get(f"/results/{pid}", params={"from": page["edges"][1]["cursor"], "limit": 10}).json()
    assert [e["node"]["Output"]["data"] for e in rest["edges"]] == ["1", "2", "3"]
    assert rest["pageInfo"]["hasNextPage"] is False
    upto = served.http.get(f"/results/{pid}", params={"to": rest["edges"][0]["cursor"]}).json()
    assert len(upto["edges"]) == 3  # to is inclusive
    latest = served.http.get(f"/results/{pid}", params={"sort": "DESC", "limit": 1}).json()
    assert latest["edges"][0]["node"]["Output"]["data"] == "3"
    assert len(ids) == 4


def test_dry_run_sees_state_and_keeps_nothing(served, pid):
    served.send(pid, "Counter = 7", action="Eval")
    count = served.node.store.message_count(pid)
    assert served.dry_eval(pid, "return Counter").json()["Output"]["data"] == "7"
    assert served.dry_eval(pid, "Counter = 100; return Counter").json()["Output"]["data"] == "100"
    assert served.dry_eval(pid, "return Counter").json()["Output"]["data"] == "7"
    assert served.node.store.message_count(pid) == count


def test_a_repeated_dry_run_answers_from_the_latest_state(served, pid):
    served.send(pid, "Repeated = 1", action="Eval")
    first = served.dry_eval(pid, "return Repeated")
    again = served.dry_eval(pid, "return Repeated")  # from the node's cache
    assert first.json() == again.json() and again.json()["Output"]["data"] == "1"
    assert again.headers["content-type"] == "application/json"
    served.send(pid, "Repeated = 2", action="Eval")
    assert served.dry_eval(pid, "return Repeated").json()["Output"]["data"] == "2"


def test_dry_run_to_waits_for_that_message(served, pid):
    item = message_item(pid, "Reached = true", action="Eval")
    assert served.post_item(item).status_code == 202
    body = {"Owner": OWNER.address, "Data": "return tostring(Reached)", "Tags": [{"name": "Action", "value": "Eval"}]}
    answer = served.http.post("/dry-run", params={"process-id": pid, "to": item.id}, json=body).json()
    assert answer["Output"]["data"] == "true"


def test_eval_from_a_stranger_does_nothing(served, pid):
    served.send(pid, "Stolen = true", action="Eval", wallet=STRANGER)
    assert served.dry_eval(pid, "return tostring(Stolen)").json()["Output"]["data"] == "nil"


def test_dry_runs_and_info_answer_while_a_message_evaluates(served):
    pid = served.spawn(name="busy")
    slow = message_item(pid, "local t = 0; for i = 1, 2e8 do t = t + i end; return 'done'", action="Eval")
    assert served.post_item(slow).status_code == 202
    with ThreadPoolExecutor(2) as pool:
        waiting = pool.submit(served.http.get, f"/result/{slow.id}", params={"process-id": pid})
        time.sleep(0.1)
        started = time.monotonic()
        assert served.http.get("/").status_code == 200
        assert served.dry_eval(pid, "return 1 + 1").json()["Output"]["data"] == "2"
        answered_in = time.monotonic() - started
        assert not waiting.done(), "the slow message should still be evaluating"
        assert waiting.result().json()["Output"]["data"] == "done"
    assert answered_in < 2.0


def test_scheduler_routes(served):
    pid = served.spawn(name="scheduled")
    first, _ = served.send(pid, "return 1", action="Eval")
    second, _ = served.send(pid, "return 2", action="Eval")
    page = served.http.get(f"/{pid}", params={"limit": 2}).json()
    assert page["page_info"]["has_next_page"] is True
    assert [e["cursor"] for e in page["edges"]] == ["0", "1"]
    node = page["edges"][1]["node"]
    assert node["message"]["id"] == first and node["message"]["data"] == "return 1"
    assert node["message"]["owner"]["address"] == OWNER.address and node["message"]["target"] == pid
    assignment_tags = {t["name"]: t["value"] for t in node["assignment"]["tags"]}
    assert assignment_tags["Nonce"] == "1" and assignment_tags["Message"] == first
    assert node["assignment"]["owner"]["address"] == served.node.assignment_signer.address
    rest = served.http.get(f"/{pid}", params={"from-nonce": 2}).json()
    assert [e["node"]["message"]["id"] for e in rest["edges"]] == [second]
    assert rest["page_info"]["has_next_page"] is False
    one = served.http.get(f"/{first}", params={"process-id": pid}).json()
    assert one["message"]["id"] == first and one["assignment"]["tags"] == node["assignment"]["tags"]
    latest = served.http.get(f"/{pid}/latest").json()
    assert latest["message"]["id"] == second
    process = served.http.get(f"/processes/{pid}").json()
    assert process["process_id"] == pid and process["owner"]["address"] == OWNER.address
    assert {"name": "Name", "value": "scheduled"} in process["tags"] and process["data"] == " "
    assert len(process["block"]) == 12 and isinstance(process["timestamp"], int)


def test_get_id_serves_data_without_scheduler_parameters(served, pid):
    data = served.http.get(f"/{pid}")
    assert data.status_code == 200 and data.content == b" " and data.headers["content-type"].startswith("text/plain")
    assert "page_info" in served.http.get(f"/{pid}", params={"limit": 1}).json()


def test_graphql_queries_of_aoconnect_and_aos(served, pid):
    module_query = """query GetTransactions ($transactionIds: [ID!]!) {
      transactions(ids: $transactionIds) {
        edges { node { owner { address } tags { name value } block { id height timestamp } } }
      } }"""
    answer = served.http.post("/graphql", json={"query": module_query,
                                                "variables": {"transactionIds": [served.node.module_id]}}).json()
    node = answer["data"]["transactions"]["edges"][0]["node"]
    assert node["owner"]["address"] == served.node.address
    assert {"name": "Module-Format", "value": "tfao-lua-5.3"} in node["tags"]
    assert node["block"]["height"] >= 1 and len(node["block"]["id"]) == 64
    by_name = """query ($owners: [String!]!) { transactions(first: 10, owners: $owners, tags: [{ name: "Data-Protocol", values: ["ao"] }, { name: "Type", values: ["Process"]}, { name: "Name", values: ["main"]}]) { edges { node { id tags { name value } } } } }"""  # noqa: E501
    answer = served.http.post("/graphql", json={"query": by_name, "variables": {"owners": [OWNER.address, ""]}})
    assert [e["node"]["id"] for e in answer.json()["data"]["transactions"]["edges"]] == [pid]


def test_graphql_pages_with_cursors(served):
    for name in ("page-a", "page-b", "page-c"):
        served.spawn(name=name)
    query = """query ($after: String) { transactions(first: 2, after: $after, sort: HEIGHT_ASC,
      tags: [{name: "Name", values: ["page-a", "page-b", "page-c"]}]) {
      pageInfo { hasNextPage } edges { cursor node { tags { name value } } } } }"""
    first = served.http.post("/graphql", json={"query": query}).json()["data"]["transactions"]
    assert first["pageInfo"]["hasNextPage"] is True and len(first["edges"]) == 2
    second = served.http.post("/graphql", json={"query": query, "variables": {"after": first["edges"][-1]["cursor"]}})
    rest = second.json()["data"]["transactions"]
    names = [dict((t["name"], t["value"]) for t in e["node"]["tags"])["Name"] for e in first["edges"] + rest["edges"]]
    assert names == ["page-a", "page-b", "page-c"] and rest["pageInfo"]["hasNextPage"] is False


def test_gateway_data_routes(served):
    data = bytes(range(256)) * 40
    item = served.node.weave.add_bytes(data, OWNER, [("Content-Type", "application/x-test")])
    raw = served.http.get(f"/raw/{item.id}")
    assert raw.content == data and raw.headers["content-type"] == "application/x-test"
    head = served.http.head(f"/{item.id}")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(data)) and head.content == b""
    part = served.http.get(f"/{item.id}", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(data)}"
    tail = served.http.get(f"/raw/{item.id}", headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == data[-5:]
    beyond = served.http.get(f"/raw/{item.id}", headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"
    tx = served.http.get(f"/tx/{item.id}").json()
    assert tx["id"] == item.id and tx["data_size"] == str(len(data)) and tx["ownerAddress"] == OWNER.address
    block = served.http.get(f"/block/height/{tx['block_height']}").json()
    assert item.id in block["txs"]


def test_weavedrive_gateway_client_fetches_from_the_node(served, tmp_path):
    data = b"model bytes " * 1000
    item = served.node.weave.add_bytes(data, OWNER, [("Content-Type", "application/octet-stream")])
    elsewhere = WeaveStore(tmp_path)
    fetched = Gateway(served.url, range_size=4096).fetch(item.id, elsewhere)
    assert fetched.id == item.id and elsewhere.read_data(item.id) == data


def test_monitor_is_recorded(served):
    pid = served.spawn(name="cron", tags=[("Cron-Interval", "1-hour")])
    item = sign_data_item(OWNER, b" ", target=pid, tags=[("Content-Type", "text/plain"), ("SDK", "aoconnect")])
    assert served.http.post(f"/monitor/{pid}", content=item.to_bytes()).json()["ok"] is True
    assert served.node.store.setting(f"monitor:{pid}") == "on"
    assert served.http.request("DELETE", f"/monitor/{pid}", content=item.to_bytes()).status_code == 200
    assert served.node.store.setting(f"monitor:{pid}") == "off"
    other = served.spawn(name="other")
    assert served.http.post(f"/monitor/{other}", content=item.to_bytes()).status_code == 400
    no_interval = sign_data_item(OWNER, b" ", target=other, tags=[("SDK", "aoconnect")])
    refused = served.http.post(f"/monitor/{other}", content=no_interval.to_bytes())
    assert refused.status_code == 400 and "Cron-Interval" in refused.json()["error"]


@pytest.mark.parametrize("make_body, status, says", [
    (lambda pid: b"garbage", 400, "invalid ANS-104"),
    (lambda pid: message_item(pid, "return 1").to_bytes()[:600], 400, "invalid ANS-104"),
    (lambda pid: message_item(pid, "return 1").to_bytes()[:-1] + b"2", 400, "signature"),
    (lambda pid: message_item("A" * 43, "return 1").to_bytes(), 404, "not found"),
    (lambda pid: sign_data_item(OWNER, b"x", tags=[("Type", "Other")]).to_bytes(), 400, "Type"),
    (lambda pid: b"", 400, "empty body"),
    (lambda pid: b"\x01\x00" + b"x" * MAX_BODY, 413, "larger"),
])
def test_bad_items_are_refused(served, pid, make_body, status, says):
    response = served.http.post("/", content=make_body(pid))
    assert response.status_code == status and says in response.json()["error"]
    assert served.http.get("/").status_code == 200


def test_an_oversized_body_without_length_is_cut_at_the_limit(served):
    def chunks():
        for _ in range(3):
            yield b"\x01\x00" + b"x" * (MAX_BODY // 2)

    response = served.http.post("/", content=chunks())
    assert response.status_code == 413 and "larger" in response.json()["error"]


@pytest.mark.parametrize("method, path, params, body, status", [
    ("POST", "/dry-run", {"process-id": "{pid}"}, b"{not json", 400),
    ("POST", "/dry-run", {"process-id": "{pid}"}, b"[1, 2]", 400),
    ("POST", "/dry-run", {"process-id": "{pid}"}, b'{"Data": NaN}', 400),
    ("POST", "/dry-run", {"process-id": "{pid}"}, b'{"Tags": [{"name": 1}]}', 400),
    ("POST", "/dry-run", {}, b"{}", 400),
    ("POST", "/dry-run", {"process-id": "B" * 43}, b"{}", 404),
    ("POST", "/graphql", {}, b'{"query": "{ nope }"}', 400),
    ("POST", "/graphql", {}, b'{"query": "{"}', 400),
    ("POST", "/graphql", {}, b"null", 400),
    ("GET", "/result/{pid}", {}, None, 400),
    ("GET", "/result/" + "C" * 43, {"process-id": "{pid}"}, None, 404),
    ("GET", "/results/{pid}", {"sort": "SIDEWAYS"}, None, 400),
    ("GET", "/results/{pid}", {"limit": "-1"}, None, 400),
    ("GET", "/results/{pid}", {"from": "not-a-cursor"}, None, 400),
    ("GET", "/results/" + "D" * 43, {}, None, 404),
    ("GET", "/state/{pid}", {}, None, 501),
    ("POST", "/", {"process-id": "{pid}", "assign": "E" * 43}, None, 404),
    ("GET", "/" + "F" * 43, {}, None, 404),
    ("GET", "/not-an-id", {}, None, 400),
    ("GET", "/block/height/x", {}, None, 400),
    ("GET", "/block/height/999999", {}, None, 404),
    ("GET", "/tx/" + "G" * 43, {}, None, 404),
    ("GET", "/no/such/route", {}, None, 404),
    ("PUT", "/", {}, None, 405),
])
def test_bad_requests_get_a_clear_4xx(served, pid, method, path, params, body, status):
    params = {k: v.replace("{pid}", pid) for k, v in params.items()}
    response = served.http.request(method, path.replace("{pid}", pid), params=params, content=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]
    assert "Traceback" not in response.text


def test_connections_use_tcp_nodelay(served):
    with httpx.Client(base_url=served.url) as client:
        assert client.get("/").status_code == 200
        sockets = [c.transport.get_extra_info("socket") for c in served.server.server_state.connections]
        assert sockets and all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets)


def test_acknowledged_messages_survive_kill_9(tmp_path):
    """Every 202 is durable: after SIGKILL and a restart, all acknowledged messages are evaluated in order
    with the results of an uninterrupted run."""
    count = 12
    template = tmp_path / "template"
    with ServerProcess(template) as server:  # both runs start from this home: same wallet, same module
        spawn = process_item(server.module_id, server.address, name="crash")
    items = [message_item(spawn.id, f"Total = (Total or 0) + {n}; return Total", action="Eval")
             for n in range(count)]

    def run(home, crash):
        shutil.copytree(template, home)
        with ServerProcess(home) as server, httpx.Client(base_url=server.url, timeout=60) as http:
            assert http.post("/", content=spawn.to_bytes()).status_code == 202
            assert all(http.post("/", content=item.to_bytes()).status_code == 202 for item in items)
            if crash:
                server.kill()
        with ServerProcess(home) as server, httpx.Client(base_url=server.url, timeout=60) as http:
            return [http.get(f"/result/{item.id}", params={"process-id": spawn.id}).json() for item in items]

    interrupted = run(tmp_path / "crashed", crash=True)
    uninterrupted = run(tmp_path / "calm", crash=False)
    assert [r["Output"]["data"] for r in interrupted] == [str(sum(range(n + 1))) for n in range(count)]
    assert interrupted == uninterrupted
