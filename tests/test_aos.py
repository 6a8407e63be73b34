"""The aos process library (tfao/sandbox/lua: process.lua and friends), driven with CU-shaped messages."""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import json

import pytest

from tfao.bridges.context import bridge_sources
from tfao.sandbox.aos import AosProcess


def tx_id(label: str) -> str:
    """A 43-character base64url id, stable for a label."""
    return base64.urlsafe_b64encode(hashlib.sha256(label.encode()).digest()).decode().rstrip("=")


PROCESS_ID = tx_id("process")
OWNER = tx_id("owner wallet")
MODULE_ID = tx_id("aos module")
SCHEDULER = tx_id("scheduler")
AUTHORITY = tx_id("authority (MU wallet)")
STRANGER = tx_id("someone else")
OTHER_PROCESS = tx_id("another process")

GREEN, GRAY, BLUE, RED, RESET = "\x1b[32m", "\x1b[90m", "\x1b[34m", "\x1b[31m", "\x1b[0m"


def _handlers_rethrow_line() -> int:
    """The line of handlers.lua that re-raises a handler's error (its errors carry it)."""
    source = (importlib.resources.files("tfao.sandbox") / "lua" / "handlers.lua").read_text().splitlines()
    return next(i for i, line in enumerate(source, 1) if "if not ok then error(err) end" in line)


HANDLERS_LINE = _handlers_rethrow_line()


def tags(pairs) -> list[dict]:
    return [{"name": name, "value": value} for name, value in pairs]


def aoconnect_tags(extra=(), type_="Message") -> list[dict]:
    """Tags in aoconnect's order: caller tags, SDK, then the ao protocol tags."""
    return tags([*extra, ("SDK", "aoconnect"), ("Data-Protocol", "ao"), ("Variant", "ao.TN.1"), ("Type", type_)])


class Aos:
    """One aos process fed one message at a time, as a compute unit would."""

    def __init__(self, process_tags=(), data: str = "", bridges=None, block_height: int = 1_500_000):
        self.process = AosProcess(bridges=bridges, bridge_sources=bridge_sources())
        self.block_height = block_height
        self.timestamp = 1_700_000_000_000
        self.nonce = 0
        process_tag_list = aoconnect_tags(
            [("App-Name", "aos"), ("Name", "tester"), ("Authority", AUTHORITY), *process_tags], type_="Process"
        ) + tags([("Module", MODULE_ID), ("Scheduler", SCHEDULER), ("Timestamp", str(self.timestamp))])
        self.env = {
            "Process": {"Id": PROCESS_ID, "Owner": OWNER, "Tags": process_tag_list},
            "Module": {"Id": MODULE_ID, "Owner": OWNER, "Tags": tags([("Module-Format", "wasm64-unknown-emscripten-draft_2024_02_15")])},
        }
        self.boot = self.process.handle(
            {
                "Id": PROCESS_ID, "Owner": OWNER, "From": OWNER, "Target": PROCESS_ID, "Anchor": None,
                "Tags": process_tag_list, "Data": data, "Timestamp": self.timestamp,
                "Block-Height": self.block_height, "Cron": False, "Signature": "sig",
            },
            self.env,
        )

    def message(self, tag_pairs=(), data: str = " ", owner: str = OWNER, from_process: str | None = None,
                target: str = PROCESS_ID, raw_tags: list[dict] | None = None, **fields) -> dict:
        """A scheduled message as the CU hands it over (From = From-Process tag, else Owner)."""
        self.nonce += 1
        self.timestamp += 1000
        self.block_height += 1
        extra = list(tag_pairs)
        if from_process:
            extra.append(("From-Process", from_process))
        msg = {
            "Id": tx_id(f"message {self.nonce}"), "Owner": owner, "From": from_process or owner,
            "Target": target, "Anchor": None, "Tags": raw_tags if raw_tags is not None else aoconnect_tags(extra),
            "Data": data, "Timestamp": self.timestamp, "Block-Height": self.block_height,
            "Nonce": self.nonce, "Epoch": 0, "Hash-Chain": tx_id(f"chain {self.nonce}"), "Cron": False,
            "Signature": "sig", "Module": MODULE_ID,
        }
        if from_process:
            msg["Forwarded-By"] = owner
        msg.update(fields)
        return msg

    def send(self, tag_pairs=(), data: str = " ", **kwargs) -> dict:
        return self.process.handle(self.message(tag_pairs, data, **kwargs), self.env)

    def eval(self, code: str, owner: str = OWNER) -> dict:
        return self.send([("Action", "Eval")], code, owner=owner)

    def value(self, expression: str):
        """The JSON value of a Lua expression evaluated in the process."""
        result = self.eval(f"require('json').encode({expression})")
        assert "Error" not in result, result
        return json.loads(result["Output"]["data"])


@pytest.fixture
def aos():
    return Aos()


def install_probe(aos: Aos, action: str = "Probe") -> None:
    """A handler that keeps the last message it saw in the global `Seen`."""
    aos.eval(f'Handlers.add("probe", "{action}", function(msg) Seen = msg end)')


# ------------------------------------------------------------------------------ normalisation


def test_tag_names_and_root_keys_are_title_cased(aos):
    install_probe(aos)
    aos.send(raw_tags=tags([
        ("ACTION", "Probe"), ("data-PROTOCOL", "ao"), ("x_custom_tag", "1"), ("SDK", "aoconnect"),
        ("aos-Version", "2.0.4"), ("Type", "Message"),
    ]), **{"pushed_FOR": "origin"})
    seen = aos.value("{ names = Utils.map(function(t) return t.name end, Seen.TagArray),"
                     " action = Seen.Action, custom = Seen['X-Custom-Tag'], sdk = Seen.Sdk,"
                     " version = Seen['Aos-Version'], height = Seen['Block-Height'],"
                     " pushed = Seen['Pushed-For'] }")
    assert seen["names"] == ["Action", "Data-Protocol", "X-Custom-Tag", "Sdk", "Aos-Version", "Type"]
    assert seen["action"] == "Probe" and seen["custom"] == "1" and seen["sdk"] == "aoconnect"
    assert seen["version"] == "2.0.4" and seen["height"] == aos.block_height - 1
    assert seen["pushed"] == "origin"


def test_non_extractable_tags_stay_off_the_root(aos):
    install_probe(aos)
    aos.send([("Action", "Probe"), ("Read-Only", "yes"), ("Anchor", "tag-anchor")], from_process=AUTHORITY)
    seen = aos.value("{ dp = Seen['Data-Protocol'] or 'absent', variant = Seen.Variant or 'absent',"
                     " type = Seen.Type or 'absent', fp = Seen['From-Process'] or 'absent',"
                     " ro = Seen['Read-Only'] or 'absent', anchor = Seen.Anchor or 'absent',"
                     " tagType = Seen.Tags.Type, tagFp = Seen.Tags['From-Process'] }")
    assert seen == {"dp": "absent", "variant": "absent", "type": "absent", "fp": "absent", "ro": "absent",
                    "anchor": "absent", "tagType": "Message", "tagFp": AUTHORITY}


def test_duplicate_tags_first_wins_in_tags_last_wins_on_root(aos):
    install_probe(aos)
    aos.send([("Action", "Probe"), ("Color", "red"), ("Color", "blue")])
    seen = aos.value("{ map = Seen.Tags.Color, root = Seen.Color, count = #Seen.TagArray }")
    assert seen == {"map": "red", "root": "blue", "count": 7}


def test_json_content_type_decodes_data(aos):
    install_probe(aos)
    aos.send([("Action", "Probe"), ("Content-Type", "application/json")], data='{"n": 3, "list": [1, 2.5]}')
    assert aos.value("{ n = Seen.Data.n, second = Seen.Data.list[2] }") == {"n": 3, "second": 2.5}
    aos.send([("Action", "Probe")], data='{"n": 3}')
    assert aos.value("type(Seen.Data)") == "string"


def test_bad_json_data_is_an_error(aos):
    result = aos.send([("Action", "Probe"), ("Content-Type", "application/json")], data="{not json")
    assert "expected string for key at line 1 col 2" in result["Error"]


# ------------------------------------------------------------------------------------- Eval


def test_eval_expression_value(aos):
    result = aos.eval("1 + 1")
    assert result["Output"]["data"] == "2"
    assert "print" not in result["Output"]
    assert result["Messages"] == [] and result["Spawns"] == [] and result["Assignments"] == []


def test_eval_print_lines_then_value(aos):
    result = aos.eval('print("one")\nprint(2)\nreturn "three"')
    assert result["Output"]["data"] == f"one\n{GREEN}2{RESET}\nthree"
    assert result["Output"]["test"].startswith("{")


def test_eval_table_value_is_stringified(aos):
    data = aos.eval("{ b = 'x', a = 1, list = { 1, 2 } }")["Output"]["data"]
    # aos's layout: map entries indented three spaces, a simple array on one line
    assert data == (f"{{\n   {RED}a{RESET} = {BLUE}1{RESET},\n   {RED}b{RESET} = {GREEN}\"x\"{RESET},\n"
                    f"   {RED}list{RESET} = {{ {BLUE}1{RESET}, {BLUE}2{RESET} }}\n}}")


def test_eval_statements_keep_globals(aos):
    assert aos.eval("Counter = 41")["Output"]["data"] == ""
    assert aos.eval("Counter + 1")["Output"]["data"] == "42"


def test_eval_error_has_aos_line_number(aos):
    result = aos.eval('print("before")\nlocal x = 1\nerror("boom")')
    assert set(result) >= {"Error"} and "Output" not in result
    # the Eval handler's error, re-raised by Handlers.evaluate as aos does
    assert result["Error"] == f'before\n\n{RED}error:\n{RESET}[string ".handlers"]:{HANDLERS_LINE}: [string "aos"]:3: boom'
    assert aos.value("#Errors") == 1


def test_binary_output_stays_valid_json(aos):
    assert aos.eval("string.char(104, 105, 255)")["Output"]["data"] == "hi\ufffd"


def test_eval_compile_error(aos):
    assert aos.eval("x = = 1")["Error"] == "[string \"aos\"]:1: unexpected symbol near '='"


def test_eval_second_return_value_is_an_error(aos):
    assert aos.eval("return nil, 'not allowed'")["Error"] == "not allowed"


def test_eval_of_process_version_for_the_aos_cli(aos):
    result = aos.eval("require('.process')._version")
    assert result["Output"]["data"] == "2.0.4-tfao"
    assert result["Output"]["prompt"].endswith("> ")


def test_eval_only_from_the_owner(aos):
    result = aos.eval("Hacked = true", owner=STRANGER)
    assert "Error" not in result
    assert aos.value("Hacked == nil") is True
    assert aos.value("#Inbox") == 2  # after the process's own spawn message
    assert aos.value("Inbox[2].From") == STRANGER


def test_handler_error_is_an_error_result(aos):
    aos.eval('Handlers.add("fail", "Fail", function(msg) print("working") error("broken handler") end)')
    result = aos.send([("Action", "Fail")])
    error = f'[string ".handlers"]:{HANDLERS_LINE}: [string "aos"]:1: broken handler'
    assert result["Error"].startswith(
        f"working\n{RED}Error{GRAY} handling message with Action = Fail{RESET}\n{GREEN}{error}{RESET}\n\n"
        f"{GRAY}stack traceback:\n")
    assert result["Error"].endswith(f"{RESET}\n\n{RED}error:\n{RESET}{error}")
    assert result["Messages"] == []


def test_error_with_a_table_value_is_still_a_string(aos):
    aos.eval('Handlers.add("fail", "Fail", function() error({ code = 7 }) end)')
    error = aos.send([("Action", "Fail")])["Error"]
    assert isinstance(error, str) and "code" in error


# ----------------------------------------------------------------------- normal messages, Inbox


def test_normal_message_output_shape_and_inbox_notice(aos):
    result = aos.send([("Action", "Hello")], owner=STRANGER)
    output = result["Output"]
    assert output["print"] is True
    assert output["data"] == (f"{GRAY}New Message From {GREEN}{STRANGER[:3]}...{STRANGER[-3:]}{GRAY}: "
                              f"{GRAY}Action = {BLUE}Hello{RESET}")
    assert output["prompt"] == f"{GREEN}tester{GRAY}@{BLUE}aos-2.0.4-tfao{GRAY}[Inbox:{RED}2{GRAY}]{RESET}> "


def test_prompt_counts_inbox_and_uses_name(aos):
    for _ in range(3):
        aos.send(data="hello")
    assert aos.value("Prompt()") == f"{GREEN}tester{GRAY}@{BLUE}aos-2.0.4-tfao{GRAY}[Inbox:{RED}4{GRAY}]{RESET}> "
    assert Aos(process_tags=()).value("Name") == "tester"


def test_name_defaults_to_aos():
    session = Aos()
    session.env["Process"]["Tags"] = [t for t in session.env["Process"]["Tags"] if t["name"] != "Name"]
    fresh = AosProcess()
    fresh.handle(dict(session.message(), Id=PROCESS_ID, Tags=session.env["Process"]["Tags"]), session.env)
    reply = fresh.handle(session.message([("Action", "Eval")], "Name"), session.env)
    assert reply["Output"]["data"] == "aos"


def test_first_message_sets_owner_and_prints(aos):
    assert aos.boot["Output"]["print"] is True
    assert aos.value("Owner") == OWNER
    aos.send(owner=STRANGER)
    assert aos.value("Owner") == OWNER


def test_owner_from_the_from_process_tag():
    session = Aos(process_tags=[("From-Process", OTHER_PROCESS)])
    assert session.process.handle(
        session.message([("Action", "Eval")], "Owner", owner=AUTHORITY, from_process=OTHER_PROCESS), session.env
    )["Output"]["data"] == OTHER_PROCESS


def test_inbox_is_capped_oldest_dropped(aos):
    aos.eval("for i = 1, 10005 do table.insert(Inbox, { Data = tostring(i) }) end")
    aos.send(data="newest")
    assert aos.value("{ #Inbox, Inbox[1].Data, Inbox[#Inbox].Data }") == [10000, "7", "newest"]


def test_boot_evaluates_process_data():
    session = Aos(process_tags=[("On-Boot", "Data")], data="Booted = 'yes'\nprint('booting')")
    assert session.boot["Output"]["data"] == "booting"
    assert session.value("Booted") == "yes"


def test_boot_reads_code_through_weavedrive():
    code_id = tx_id("boot code")
    bridges = {"weavedrive": {"data": lambda id: b"Booted = 'from the weave'" if id == code_id.encode() else None}}
    session = Aos(process_tags=[("On-Boot", code_id)], bridges=bridges)
    assert "Error" not in session.boot
    assert session.value("Booted") == "from the weave"


def test_boot_failure_is_an_error():
    session = Aos(process_tags=[("On-Boot", "Data")], data="error('cannot boot')")
    assert "cannot boot" in session.boot["Error"]


# ------------------------------------------------------------------------------- the outbox


def test_send_outbox_shape(aos):
    result = aos.eval("Send({ Target = 'T1', Action = 'Transfer', Quantity = 100, Data = 'payload',"
                      " Tags = { { name = 'Extra', value = 'x' } } })")
    [message] = result["Messages"]
    assert message == {
        "Target": "T1", "Data": "payload", "Anchor": "0" * 31 + "1",
        "Tags": tags([("Data-Protocol", "ao"), ("Variant", "ao.TN.1"), ("Type", "Message"), ("Reference", "1"),
                      ("Action", "Transfer"), ("Quantity", "100"), ("Extra", "x")]),
    }
    second = aos.eval("Send({ Target = 'T1', Tags = { B = '2', A = '1' } })")["Messages"][0]
    assert second["Anchor"] == "0" * 31 + "2"
    assert second["Tags"][4:] == tags([("A", "1"), ("B", "2")])


def test_send_table_data_is_json(aos):
    [message] = aos.eval("Send({ Target = 'T1', Data = { b = { 1, 2 }, a = 'x' } })")["Messages"]
    assert message["Data"] == '{"a":"x","b":[1,2]}'
    assert {"name": "Content-Type", "value": "application/json"} in message["Tags"]


def test_send_without_target_warns(aos):
    assert aos.eval("Send({ Data = 'x' }).output")["Output"]["data"].startswith("WARN: No target")


def test_reply_carries_x_reference(aos):
    aos.eval('Handlers.add("ping", "Ping", function(msg) msg.reply({ Data = "pong", Action = "Pong" }) end)')
    result = aos.send([("Action", "Ping"), ("Reference", "7"), ("X-Origin", "origin")], owner=STRANGER)
    [reply] = result["Messages"]
    assert reply["Target"] == STRANGER and reply["Data"] == "pong"
    tag_map = {t["name"]: t["value"] for t in reply["Tags"]}
    assert tag_map["X-Reference"] == "7" and tag_map["X-Origin"] == "origin" and tag_map["Action"] == "Pong"
    assert [t["name"] for t in reply["Tags"]].count("Reference") == 1


def test_reply_goes_to_reply_to(aos):
    aos.eval('Handlers.add("ping", "Ping", Handlers.utils.reply("pong"))')
    [reply] = aos.send([("Action", "Ping"), ("Reply-To", OTHER_PROCESS)])["Messages"]
    assert reply["Target"] == OTHER_PROCESS and reply["Data"] == "pong"


def test_forward(aos):
    aos.eval('Handlers.add("fwd", "Relay", function(msg) msg.forward("NEXT", { Note = "via" }) end)')
    [forwarded] = aos.send([("Action", "Relay"), ("Reference", "3"), ("Custom", "c")], data="body",
                           owner=STRANGER)["Messages"]
    tag_map = {t["name"]: t["value"] for t in forwarded["Tags"]}
    assert forwarded["Target"] == "NEXT" and forwarded["Data"] == "body"
    assert tag_map["Reply-To"] == STRANGER and tag_map["X-Origin"] == STRANGER
    assert tag_map["X-Reference"] == "3" and tag_map["Custom"] == "c" and tag_map["Note"] == "via"
    assert tag_map["Reference"] == "1"  # this process's own reference, not the incoming one
    for dropped in ("Owner", "Id", "Timestamp", "Block-Height", "Hash-Chain", "Nonce", "TagArray", "reply"):
        assert dropped not in tag_map


def test_spawn_shape(aos):
    result = aos.eval("Spawn({ Data = 'init', Name = 'child' })")
    [spawn] = result["Spawns"]
    assert spawn["Data"] == "init" and spawn["Anchor"] == "0" * 31 + "1"
    assert spawn["Tags"] == tags([
        ("Data-Protocol", "ao"), ("Variant", "ao.TN.1"), ("Type", "Process"), ("From-Process", PROCESS_ID),
        ("From-Module", MODULE_ID), ("Module", MODULE_ID), ("Reference", "1"), ("Name", "child"),
    ])
    other = aos.eval("Spawn('OTHER-MODULE', {})")["Spawns"][0]
    assert other["Data"] == "NODATA" and {"name": "Module", "value": "OTHER-MODULE"} in other["Tags"]


def test_assign_shape(aos):
    result = aos.eval("Assign({ Processes = { 'A', 'B' }, Message = 'MSG' })")
    assert result["Assignments"] == [{"Processes": ["A", "B"], "Message": "MSG"}]
    assert aos.eval("Assign({ Processes = 'A', Message = 'MSG' })")["Error"]


def test_ao_log_goes_to_the_outbox(aos):
    assert aos.value("(function() ao.log('a'); ao.log('b'); return ao.outbox.Output end)()") == ["a", "b"]


def test_on_reply_runs_on_the_matching_reply(aos):
    aos.eval("Send({ Target = 'T1', Action = 'Ask' }).onReply(function(msg) Answer = msg.Data end)")
    aos.send([("X-Reference", "2")], data="wrong ref", from_process="T1", owner=AUTHORITY)
    aos.send([("X-Reference", "1")], data="42", from_process="T1", owner=AUTHORITY)
    assert aos.value("{ Answer, #Inbox }") == ["42", 2]


def test_receive_global_waits_for_a_pattern(aos):
    aos.eval("local m = Receive({ Action = 'Go' })\nWent = m.Data")
    assert aos.send([("Action", "Other")])["Output"]["print"] is True
    aos.send([("Action", "Go")], data="now")
    assert aos.value("{ Went, #Inbox }") == ["now", 2]


def test_error_after_resuming_fails_the_resuming_message(aos):
    aos.eval("local m = Receive({ Action = 'Go' })\nerror('failed after ' .. m.Data)")
    result = aos.send([("Action", "Go")], data="waiting")
    assert '[string "aos"]:2: failed after waiting' in result["Error"]


def test_receive_resumes_on_a_later_message(aos):
    started = aos.eval("local reply = Send({ Target = 'T1', Action = 'Ask' }).receive()\n"
                       "Got = reply.Data\nprint('resumed with ' .. reply.Data)\nreturn 'done'")
    assert started["Output"]["data"] == "" and len(started["Messages"]) == 1
    assert aos.value("Got == nil") is True
    resumed = aos.send([("X-Reference", "1")], data="the answer", from_process="T1", owner=AUTHORITY)
    assert resumed["Output"]["data"] == "resumed with the answer\ndone"
    assert aos.value("{ Got, #Handlers.coroutines, #Inbox }") == ["the answer", 0, 1]


# ----------------------------------------------------------------------------------- trust


def test_forwarded_message_without_authority_is_ignored(aos):
    install_probe(aos)
    result = aos.send([("Action", "Probe")], from_process=OTHER_PROCESS, owner=STRANGER)
    assert result["Messages"] == []
    assert result["Output"]["data"] == f"Message is not trusted! From: {OTHER_PROCESS} - Owner: {STRANGER}"
    assert aos.value("Seen == nil") is True


def test_forwarded_message_from_an_authority_is_trusted(aos):
    install_probe(aos)
    aos.send([("Action", "Probe")], from_process=OTHER_PROCESS, owner=AUTHORITY)
    assert aos.value("Seen.From") == OTHER_PROCESS
    assert aos.value("ao.authorities") == [AUTHORITY]


def test_comma_separated_authorities():
    session = Aos(process_tags=[("Authority", f"{STRANGER}, {OTHER_PROCESS}")])
    assert session.value("ao.authorities") == [AUTHORITY, STRANGER, OTHER_PROCESS]


def test_assignment_needs_an_assignable(aos):
    install_probe(aos)
    assigned = dict(target=OTHER_PROCESS)
    assert aos.send([("Action", "Probe")], **assigned)["Messages"][0]["Data"] == (
        "Assignment is not trusted by this process!")
    assert aos.value("Seen == nil") is True
    aos.eval("ao.addAssignable('probes', { Action = 'Probe' })")
    assert aos.send([("Action", "Probe")], **assigned)["Messages"] == []
    assert aos.value("Seen.Target") == OTHER_PROCESS
    aos.eval("ao.removeAssignable('probes')")
    assert aos.value("{ ao.isAssignable({ Action = 'Probe' }), #ao.assignables }") == [False, 0]


# ---------------------------------------------------------------------------------- loader


def test_loader_reports_failures_as_not_ok():
    from tfao.sandbox.luavm import LuaVM

    handle = LuaVM().require("loader")
    reply = json.loads(handle(b"{broken", b"{}"))
    assert reply["ok"] is False and reply["response"].endswith("expected string for key at line 1 col 2")


# ------------------------------------------------------------------------------ determinism


def random_draws(block_height: int) -> list:
    session = Aos(block_height=block_height)
    return session.value("{ math.random(), math.random(10), math.random(5, 7), math.random(1000000) }")


def test_random_is_deterministic_and_seeded_by_the_message():
    first, again = random_draws(1_500_000), random_draws(1_500_000)
    assert first == again
    assert 0 <= first[0] < 1 and 1 <= first[1] <= 10 and 5 <= first[2] <= 7
    assert random_draws(1_500_001) != first


def test_random_seed_follows_aos_rule(aos):
    """seed = tonumber(Block-Height .. byte sum of Owner .. Module .. Id) of the first message."""
    seed = int(f"{1_500_000}{sum((OWNER + MODULE_ID + PROCESS_ID).encode())}")
    expected = aos.value(f"(function() local c = require('.chance'); c.seed({seed}); return c.random() end)()")
    fresh = Aos()
    assert fresh.value("math.random()") == expected


def test_os_time_is_the_message_timestamp(aos):
    result = aos.eval("os.time()")
    assert result["Output"]["data"] == str(aos.timestamp)
