"""HyperBEAM's mainnet API on ``tfao serve``: the routes aoconnect's ``MODE: 'mainnet'`` uses, over real HTTP.

Items are signed here as aoconnect mainnet signs them: no anchor, data "1984" by default, the call's
fixed tags, the user's tags, the transport tags, then Data-Protocol, Type and Variant=ao.N.1.
"""

import pytest

from test_server import OWNER, STRANGER, Served, message_item, served  # noqa: F401 (fixture)
from weavedrive.ans104 import b64url_encode, sign_data_item

ANS104 = {"Content-Type": "application/ans104", "codec-device": "ans104@1.0"}
JSON_CODEC = [("signing-format", "ans104"), ("accept-bundle", "true"), ("require-codec", "application/json")]
HTTPSIG_CODEC = [("signing-format", "ans104"), ("accept-bundle", "true"), ("accept-codec", "httpsig@1.0")]


def mainnet_tags(tags, codec, kind):
    return [*tags, *codec, ("Data-Protocol", "ao"), ("Type", kind), ("Variant", "ao.N.1")]


def spawn_item(node, *, wallet=OWNER, device="genesis-wasm@1.0", tags=()):
    fixed = [("device", "process@1.0"), ("scheduler-device", "scheduler@1.0"), ("push-device", "push@1.0"),
             ("execution-device", device), ("Authority", node.address), ("Scheduler", node.address),
             ("Module", node.module_id)]
    return sign_data_item(wallet, b"1984", tags=mainnet_tags([*fixed, *tags], HTTPSIG_CODEC, "Process"))


def mainnet_message(pid, data="1984", *, wallet=OWNER, tags=()):
    return sign_data_item(wallet, data.encode(), target=pid, tags=mainnet_tags(tags, JSON_CODEC, "Message"))


def read_item(pid, wallet=OWNER):
    return sign_data_item(wallet, b"1984", target=pid, tags=mainnet_tags([], JSON_CODEC, "Message"))


class Mainnet:
    def __init__(self, served: Served):
        self.served, self.http, self.node = served, served.http, served.node

    def post(self, path, item):
        return self.http.post(path, content=item.to_bytes(), headers=ANS104)

    def spawn(self, **kwargs) -> str:
        item = spawn_item(self.node, **kwargs)
        response = self.post("/push", item)
        assert response.status_code == 200, response.text
        assert response.headers["process"] == item.id
        return item.id

    def push(self, pid, data="1984", **kwargs) -> int:
        response = self.post(f"/{pid}~process@1.0/push", mainnet_message(pid, data, **kwargs))
        assert response.status_code == 200, response.text
        return response.json()["slot"]

    def result(self, pid, slot):
        response = self.post(f"/{pid}~process@1.0/compute/results={slot}", read_item(pid))
        assert response.status_code == 200, response.text
        return response.json()["raw"]

    def eval(self, pid, code, wallet=OWNER):
        return self.result(pid, self.push(pid, code, wallet=wallet, tags=[("Action", "Eval")]))

    def dryrun(self, pid, tags, data="1984", wallet=OWNER):
        path = f"/{pid}~process@1.0/as=execution/compute" + "".join(f"&{k}={v}" for k, v in tags)
        response = self.post(path, mainnet_message(pid, data, wallet=wallet))
        assert response.status_code == 200, response.text
        return response.json()["raw"]


@pytest.fixture(scope="module")
def mainnet(served):  # noqa: F811
    return Mainnet(served)


@pytest.fixture(scope="module")
def pid(mainnet):
    return mainnet.spawn()


def test_meta_info_names_the_node(mainnet):
    info = mainnet.http.get("/~meta@1.0/info")
    assert info.status_code == 200 and info.json()["address"] == mainnet.node.address
    address = mainnet.http.get("/~meta@1.0/info/address")
    assert address.status_code == 200 and address.text == mainnet.node.address
    assert mainnet.http.get("/~meta@1.0/info/no-such-key").status_code == 404


def test_spawn_answers_the_process_id_in_a_header(mainnet, pid):
    assert mainnet.node.process(pid).id == pid
    assert mainnet.http.post(f"/{pid}/slot/current", headers=ANS104).text == str(
        mainnet.node.current_slot(pid))


def test_messages_get_consecutive_slots_and_results(mainnet, pid):
    first = mainnet.push(pid, "return 1 + 41", tags=[("Action", "Eval")])
    second = mainnet.push(pid, "return 2 + 40", tags=[("Action", "Eval")])
    assert second == first + 1
    for slot in (first, second):
        raw = mainnet.result(pid, slot)
        assert raw["Output"]["data"] == "42" and raw["Messages"] == [] and "Error" not in raw
    assert mainnet.http.post(f"/{pid}~process@1.0/compute={second}").json()["raw"]["Output"]["data"] == "42"
    assert mainnet.http.get(f"/{pid}~process@1.0/compute&slot={first}").json()["slot"] == first


def test_results_by_message_id(mainnet, pid):
    item = mainnet_message(pid, "return 'by id'", tags=[("Action", "Eval")])
    assert mainnet.post(f"/{pid}~process@1.0/push", item).status_code == 200
    for path in (f"compute/results={item.id}", f"compute={item.id}", f"compute/{item.id}"):
        assert mainnet.http.get(f"/{pid}~process@1.0/{path}").json()["raw"]["Output"]["data"] == "by id"


def test_the_bridges_load_in_mainnet_processes(mainnet, pid):
    raw = mainnet.eval(pid, 'return type(require("transformers").bert.encode_text) .. " " .. '
                            'type(require("weavedrive").getData)')
    assert "Error" not in raw and raw["Output"]["data"] == "function function"


def test_now_and_slot_report_the_current_state(mainnet, pid):
    slot = mainnet.push(pid, "return 'latest'", tags=[("Action", "Eval")])
    assert mainnet.http.get(f"/{pid}~process@1.0/now").json()["raw"]["Output"]["data"] == "latest"
    assert mainnet.http.get(f"/{pid}~process@1.0/slot").json() == {"process": pid, "current": slot}
    assert mainnet.http.get(f"/{pid}~process@1.0/slot/current").text == str(slot)


def test_a_message_pushed_to_push_goes_to_its_target(mainnet, pid):
    response = mainnet.post("/push", mainnet_message(pid, "return 'via /push'", tags=[("Action", "Eval")]))
    assert response.status_code == 200, response.text
    assert mainnet.result(pid, response.json()["slot"])["Output"]["data"] == "via /push"


def test_schedule_lists_the_messages_with_their_assignments(mainnet, pid):
    for _ in range(2):
        mainnet.push(pid, "return 1", tags=[("Action", "Eval")])
    page = mainnet.http.get(f"/{pid}~process@1.0/schedule", params={"limit": 2}).json()
    assert [edge["cursor"] for edge in page["edges"]] == ["0", "1"] and page["page_info"]["has_next_page"]
    first = page["edges"][0]["node"]
    assert first["message"]["id"] == pid
    assert {t["name"]: t["value"] for t in first["assignment"]["tags"]}["Nonce"] == "0"


def test_a_ping_handler_replies_to_the_sender(mainnet, pid):
    added = mainnet.eval(pid, 'Handlers.add("Ping", "Ping", function (msg) msg.reply({ Data = "Pong" }) end)')
    assert "Error" not in added
    raw = mainnet.result(pid, mainnet.push(pid, tags=[("Action", "Ping")]))
    assert [(m["Target"], m["Data"]) for m in raw["Messages"]] == [(OWNER.address, "Pong")]


def test_dry_run_reads_state_from_path_tags_and_keeps_nothing(mainnet, pid):
    mainnet.eval(pid, "Counter = 7")
    slot = mainnet.node.current_slot(pid)
    assert mainnet.dryrun(pid, [("Action", "Eval")], "return Counter")["Output"]["data"] == "7"
    assert mainnet.dryrun(pid, [("Action", "Eval")], "Counter = 100; return Counter")["Output"]["data"] == "100"
    assert mainnet.dryrun(pid, [("Action", "Eval")], "return Counter")["Output"]["data"] == "7"
    assert mainnet.node.current_slot(pid) == slot


def test_a_dry_run_item_for_another_process_is_refused(mainnet, pid):
    other = mainnet.post(f"/{pid}~process@1.0/as=execution/compute&Action=Eval",
                         mainnet_message(mainnet.spawn(), "return 1"))
    assert other.status_code == 400 and "targets" in other.json()["error"]


def test_dry_run_tags_reach_the_handlers_with_spaces_decoded(mainnet, pid):
    mainnet.eval(pid, 'Handlers.add("Echo", "Echo", function (msg) msg.reply({ Data = msg.Greeting }) end)')
    raw = mainnet.dryrun(pid, [("Action", "Echo"), ("Greeting", "hello%20there")])
    assert raw["Messages"][0]["Data"] == "hello there"


def test_an_eval_from_a_stranger_does_not_run(mainnet, pid):
    mainnet.eval(pid, "Stolen = nil", wallet=OWNER)
    mainnet.eval(pid, "Stolen = true; return 'stolen'", wallet=STRANGER)
    assert mainnet.dryrun(pid, [("Action", "Eval")], "return tostring(Stolen)")["Output"]["data"] == "nil"


def test_a_syntax_error_is_an_error_and_the_process_goes_on(mainnet, pid):
    raw = mainnet.eval(pid, "return (")
    assert isinstance(raw["Error"], str) and raw["Error"]
    assert mainnet.eval(pid, "return 'still here'")["Output"]["data"] == "still here"


def test_variant_ao_n_1_is_a_protocol_tag_like_ao_tn_1(mainnet, pid):
    raw = mainnet.eval(pid, "return tostring(Variant) .. ' ' .. tostring(ao.env.Process.Tags.Variant)")
    assert raw["Output"]["data"] == "nil ao.N.1"


def test_lua_execution_device_runs_aos_too(mainnet):
    pid = mainnet.spawn(device="lua@5.3a")
    assert mainnet.eval(pid, "return 6 * 7")["Output"]["data"] == "42"


def test_other_execution_devices_are_refused(mainnet):
    response = mainnet.post("/push", spawn_item(mainnet.node, device="wasm64@1.0"))
    assert response.status_code == 400 and "execution-device" in response.json()["error"]


def tampered(item):
    raw = bytearray(item.to_bytes())
    raw[-1] ^= 1  # the last data byte
    return bytes(raw)


def test_tampered_and_foreign_items_are_refused(mainnet, pid):
    spawn = mainnet.http.post("/push", content=tampered(spawn_item(mainnet.node)), headers=ANS104)
    assert spawn.status_code == 400 and "does not verify" in spawn.json()["error"]
    slot = mainnet.node.current_slot(pid)
    message = mainnet.http.post(f"/{pid}~process@1.0/push", content=tampered(mainnet_message(pid, "x = 1")),
                                headers=ANS104)
    assert message.status_code == 400
    read = mainnet.http.post(f"/{pid}~process@1.0/now", content=tampered(read_item(pid)), headers=ANS104)
    assert read.status_code == 400
    other = mainnet.post(f"/{pid}~process@1.0/push", mainnet_message(mainnet.spawn(), "x = 1"))
    assert other.status_code == 400 and "targets" in other.json()["error"]
    assert mainnet.http.post(f"/{pid}~process@1.0/push").status_code == 400  # unsigned
    assert mainnet.node.current_slot(pid) == slot


def test_unknown_processes_slots_and_routes(mainnet, pid):
    unknown = b64url_encode(bytes(32))
    assert mainnet.http.get(f"/{unknown}~process@1.0/now").status_code == 404
    assert mainnet.http.get(f"/{pid}~process@1.0/compute=999999").status_code == 404
    assert mainnet.http.get(f"/{pid}~process@1.0/compute=x").status_code == 400
    assert mainnet.http.get(f"/{pid}~process@1.0/compute=\u00b2").status_code == 400  # a digit, not ASCII
    assert mainnet.http.get(f"/{pid}~process@1.0/nothing-here").status_code == 404


def test_one_process_through_both_apis(mainnet, served):  # noqa: F811
    legacy_pid = served.spawn(name="both")
    mainnet.eval(legacy_pid, "Shared = 'from mainnet'")
    _, result = served.send(legacy_pid, "return Shared", action="Eval")
    assert result["Output"]["data"] == "from mainnet"
    mainnet_pid = mainnet.spawn()
    served.send(mainnet_pid, "Shared = 'from legacy'", action="Eval")
    assert mainnet.dryrun(mainnet_pid, [("Action", "Eval")], "return Shared")["Output"]["data"] == "from legacy"
    item = message_item(mainnet_pid, "return 1", action="Eval")
    assert served.post_item(item).status_code == 202
    assert mainnet.node.slot(mainnet_pid, item.id) == mainnet.node.current_slot(mainnet_pid)
