"""What aos shows: print, Eval values, stringify, Dump, error reports, the default handler's notice,
and the Handlers API's return values and boot behaviour."""

import json

import pytest

from test_aos import BLUE, GRAY, GREEN, HANDLERS_LINE, OWNER, RED, RESET, STRANGER, Aos


@pytest.fixture
def aos():
    return Aos()


def data(aos: Aos, code: str) -> str:
    result = aos.eval(code)
    assert "Error" not in result, result
    return result["Output"]["data"]


def test_print_takes_one_value_and_colours_it(aos):
    assert data(aos, "print('a', 'b'); print(1); print(true); print(nil); print('plain')") == (
        f"a\n{GREEN}1{RESET}\n{BLUE}true{RESET}\n{RED}nil{RESET}\nplain")


def test_eval_of_false_or_nil_prints_nothing(aos):
    assert data(aos, "return false") == ""
    assert data(aos, "return nil") == ""
    assert data(aos, "return 0") == "0"


def test_eval_test_field_is_the_dump_of_the_printed_lines(aos):
    assert aos.eval("print('x'); return 2")["Output"]["test"] == '{\n    [1] = "x",\n    [2] = "2"\n}'


@pytest.mark.parametrize("lua, text", [
    ("{}", "{  }"),
    ("{ 1, 'a' }", f"{{ {BLUE}1{RESET}, {GREEN}\"a\"{RESET} }}"),
    ("{ { 1 }, true }", f"{{\n  {{ {BLUE}1{RESET} }},\n  {BLUE}true{RESET}\n }}"),
    ("{ a = { b = {} } }", f"{{\n   {RED}a{RESET} = {{\n     {RED}b{RESET} = {{  }}\n  }}\n}}"),
])
def test_stringify_layout(aos, lua, text):
    assert data(aos, f"return {lua}") == text


def test_stringify_of_a_table_inside_itself(aos):
    assert data(aos, "local t = { n = 1 }; t.me = t; return t") == (
        f"{{\n   {RED}me{RESET} = <circular reference>,\n   {RED}n{RESET} = {BLUE}1{RESET}\n}}")


def test_functions_show_as_aos_shows_them(aos):
    shown = data(aos, "return print")
    assert shown.startswith("function: 0x")
    assert data(aos, "return { f = print }") == f"{{\n   {RED}f{RESET} = {BLUE}{shown}{RESET}\n}}"


def test_dump_format(aos):
    code = "return Dump({ 1, 'two', b = true, ['not id'] = 1.5, nested = { x = 1 }, [10] = 'ten' })"
    assert data(aos, code) == (
        '{\n    [1] = 1,\n    [2] = "two",\n    [10] = "ten",\n    ["not id"] = 1.5,\n    b = true,\n'
        '    nested = {\n        x = 1\n    }\n}')
    assert data(aos, "return Dump({})") == "{}"
    assert data(aos, "return Dump(5)") == '"5"'
    assert data(aos, "return Dump({ a = 1 }, 2)") == "{\n  a = 1\n}"


def test_dump_of_a_table_inside_itself(aos):
    assert data(aos, "local t = {}; t.me = t; return Dump(t):match('^{\\n    me = \"<Circular table: 0x%x+>\"\\n}$') ~= nil") == "true"


def test_handler_error_without_an_action(aos):
    aos.eval('Handlers.add("fail", function(m) return m.Data == "boom" end, function() error("bad") end)')
    error = aos.send(data="boom")["Error"]
    assert error.startswith(f"{RED}Error{GRAY} handling message {RESET}\n{GREEN}[string \".handlers\"]:{HANDLERS_LINE}:")


def test_eval_error_is_recorded_in_errors(aos):
    aos.eval("error('first')")
    # the Error rolls the process back on a real unit; this emulator call keeps the VM as it is
    assert '[string "aos"]:1: first' in aos.value("Errors[1]")


def test_default_handler_shows_json_data_as_json(aos):
    result = aos.send([("Content-Type", "application/json")], data=json.dumps({"a": [1, 2]}), owner=STRANGER)
    assert result["Output"]["data"].endswith(f"{GRAY}Data = {BLUE}{{\"a\":[1,2]}}{RESET}")


def test_handlers_api_return_values(aos):
    code = """local n = Handlers.add('one', 'One', function() end)
    local results = { n, Handlers.append('two', 'Two', function() end), Handlers.prepend('zero', 'Zero', function() end),
      Handlers.once('Once', function() end), #Handlers.list }
    return table.concat({ tostring(results[1]), tostring(results[2]), tostring(results[3]), tostring(results[4]), results[5] }, ' ')"""
    before = int(aos.value("#Handlers.list"))
    assert data(aos, code) == f"{before + 1} nil nil nil {before + 4}"


def test_before_and_after_an_unknown_handler_add_nothing(aos):
    count = aos.value("#Handlers.list")
    assert data(aos, "Handlers.before('missing').add('x', 'X', function() end); "
                     "Handlers.after('missing').add('y', 'Y', function() end); return #Handlers.list") == str(count)
    names = aos.value("Utils.map(function(h) return h.name end, Handlers.list)")
    assert "x" not in names and "y" not in names


def test_before_a_known_handler_goes_in_front_of_it(aos):
    aos.eval("Handlers.add('late', 'Late', function() end); Handlers.before('late').add('early', 'Early', function() end)")
    names = aos.value("Utils.map(function(h) return h.name end, Handlers.list)")
    assert names.index("early") == names.index("late") - 1


def test_the_spawn_message_is_in_the_inbox_after_boot(aos):
    first = aos.value("{ Inbox[1].Id, Inbox[1].Tags.Type, Inbox[1].From, #Inbox }")
    assert first == [aos.env["Process"]["Id"], "Process", OWNER, 1]


def test_a_handler_can_json_encode_its_message(aos):
    aos.eval('Handlers.add("echo", "Echo", function(msg) msg.reply({ Data = json.encode(msg) }) end)')
    result = aos.send([("Action", "Echo"), ("Color", "blue")], data="hello")
    assert "Error" not in result, result
    echoed = json.loads(result["Messages"][0]["Data"])
    assert echoed["Action"] == "Echo" and echoed["Tags"]["Color"] == "blue" and echoed["Data"] == "hello"
    assert {"name": "Color", "value": "blue"} in echoed["TagArray"] and "reply" not in echoed
