"""Nothing of the host reaches Lua through printing or iteration: objects print with per-process
sequence numbers, host objects print host-free, and `pairs` order does not depend on addresses."""

import re
import subprocess
import sys

from weavedrive.store import WeaveStore
from test_aos import Aos
from test_weavedrive_lua import DATA, SIGNER, make_vm

# builds objects, shows them and iterates tables keyed by them, in one Eval
PROGRAM = """
local shown = {}
local function show(v) shown[#shown + 1] = tostring(v) end
local a, b, f = { name = 'b' }, { name = 'a' }, function() end
show(a); show(f); show(coroutine.create(f)); show(setmetatable({}, { __name = 'Thing' }))
shown[#shown + 1] = string.format('%s and %s', b, {})
local keyed = { [{ n = 3 }] = 'three', [{ n = 1 }] = 'one', [{ n = 2 }] = 'two', [print] = 'print', x = 'x', [1] = 'first' }
for _, v in pairs(keyed) do shown[#shown + 1] = v end
local set = {}
for i = 1, 50 do set[{ i = i }] = i end
local total = 0
for k, v in pairs(set) do total = total * 7 % 1000003 + v end
shown[#shown + 1] = tostring(total)
Kept = keyed
return table.concat(shown, '|')
"""


def run_program() -> str:
    result = Aos().eval(PROGRAM)
    assert "Error" not in result, result
    return result["Output"]["data"]


def test_objects_print_with_sequence_numbers_not_addresses():
    shown = run_program().split("|")
    assert all(re.fullmatch(r"(table|function|thread|Thing): 0x[0-9a-f]{8}", s) for s in shown[:4]), shown
    assert int(shown[0][-8:], 16) < int(shown[1][-8:], 16) < int(shown[2][-8:], 16)


def test_not_a_number_prints_one_way_whatever_its_sign_bit():
    result = Aos().eval("return tostring(0/0) .. ' ' .. tostring(-(0/0)) .. ' ' .. tostring(math.huge - math.huge)")
    assert result["Output"]["data"] == "nan nan nan"


def test_pairs_visits_plain_keys_sorted_then_table_keys_by_content_when_first_met():
    words = run_program().split("|")
    assert words[words.index("first"):words.index("first") + 6] == ["first", "x", "one", "two", "three", "print"]


def test_a_second_traversal_keeps_the_first_order():
    session = Aos()
    session.eval(PROGRAM)
    code = ("for k in pairs(Kept) do if type(k) == 'table' then k.n = -k.n end end "
            "local out = {} for _, v in pairs(Kept) do out[#out + 1] = v end return table.concat(out, ' ')")
    assert session.eval(code)["Output"]["data"] == "first x one two three print"


def test_same_log_in_fresh_os_processes_gives_byte_identical_results():
    # separate interpreters: different heap addresses and Lua string-hash seeds
    script = ("import sys; sys.path.insert(0, 'tests'); from test_aos_determinism import run_program; "
              "print(repr(run_program()))")
    outputs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
               for _ in range(3)}
    assert len(outputs) == 1, outputs


def test_host_objects_print_a_fixed_host_free_form(tmp_path):
    store = WeaveStore(tmp_path)
    item = store.add_bytes(DATA, SIGNER, [("Name", "blob")])
    store.add_bytes(b"", SIGNER, [("Data-Protocol", "ao"), ("Type", "Attestation"), ("Message", item.id)])
    vm, _ = make_vm(store, ("Extension", "WeaveDrive"))
    shown = vm.execute(f'local r = require("weavedrive").ref("{item.id}"); '
                       'return tostring(r) .. " " .. string.format("%s", r)').decode()
    assert re.fullmatch(r"userdata: 0x[0-9a-f]{8} userdata: 0x[0-9a-f]{8}", shown), shown
    assert str(tmp_path) not in shown


def test_tostring_honours_a_table_metatable_but_never_a_host_one():
    session = Aos()
    code = ("return tostring(setmetatable({}, { __tostring = function() return 'mine' end })) .. ' ' .. "
            "tostring(require('.bint')(256)(42))")
    assert session.eval(code)["Output"]["data"] == "mine 42"
    bad = session.eval("return tostring(setmetatable({}, { __tostring = function() return 1 end }))")
    assert "'__tostring' must return a string" in bad["Error"]


# shows what the state holds: the numbers of the objects built before, and the order pairs gives them
SHOW_STATE = ("local out = {} for k, v in pairs(Kept) do out[#out + 1] = tostring(k) .. '=' .. v end "
              "return table.concat(out, ' ')")


def test_a_restarted_node_sees_the_same_numbers_and_order(tmp_path):
    from tfao.node.node import Node
    from weavedrive.wallet import premade_wallets

    owner, node_wallet = premade_wallets()[0], premade_wallets()[3]
    with Node(tmp_path, wallet=node_wallet) as node:
        process = node.spawn(wallet=owner)
        first = process.eval(PROGRAM, wallet=owner)["Output"]["data"]
        before = process.eval(SHOW_STATE, wallet=owner)["Output"]["data"]
        pid = process.id
    with Node(tmp_path, wallet=node_wallet) as node:  # replays the log in a new OS process
        process = node.process(pid)
        assert process.eval(SHOW_STATE, wallet=owner)["Output"]["data"] == before
        assert process.eval(PROGRAM, wallet=owner)["Output"]["data"] != first  # new objects, new numbers
    assert re.search(r"table: 0x[0-9a-f]{8}=one", before), before
