"""Hostile input for the mainnet routes: every answer is a 4xx (or a success), never a 5xx, and the
node keeps serving. Paths are random HyperPATH segments, bodies random bytes or mutated signed
items, signature headers random text."""

from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from test_hyperbeam import ANS104, mainnet, mainnet_message, pid  # noqa: F401 (fixtures)
from test_server import served  # noqa: F401 (fixture)
from test_server_fuzz import FUZZ, refused_or_accepted, still_serving

words = st.sampled_from(["push", "schedule", "compute", "now", "slot", "current", "results", "as", "execution",
                         "slot=1", "results=1", "results=x", "compute=0", "as=execution", "Action=Eval", "&", "=",
                         "?", "", "~process@1.0", "%3F"]) | st.text(max_size=12)
segments = st.lists(st.lists(words, min_size=1, max_size=3).map("&".join), min_size=1, max_size=4).map("/".join)
header_text = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=120)  # h11 refuses edge spaces


@FUZZ
@given(rest=segments, bare=st.booleans(), method=st.sampled_from(["GET", "POST"]), body=st.binary(max_size=256))
def test_random_process_paths(mainnet, pid, rest, bare, method, body):  # noqa: F811
    path = f"/{pid}/{quote(rest, safe='/&=~@')}" if bare else f"/{pid}~process@1.0/{quote(rest, safe='/&=~@')}"
    refused_or_accepted(mainnet.http.request(method, path, content=body if method == "POST" else None,
                                             headers=ANS104))
    still_serving(mainnet.served)


@FUZZ
@given(data=st.data())
def test_mutated_pushes(mainnet, pid, data):  # noqa: F811
    raw = bytearray(mainnet_message(pid, "return 1", tags=[("Action", "Eval")]).to_bytes())
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= data.draw(st.integers(1, 255))
    response = mainnet.http.post(data.draw(st.sampled_from(["/push", f"/{pid}~process@1.0/push"])),
                                 content=bytes(raw), headers=ANS104)
    assert 400 <= response.status_code < 500 and response.json()["error"], response.text
    still_serving(mainnet.served)


@FUZZ
@given(signature=header_text, signature_input=header_text, digest=st.none() | header_text,
       body=st.binary(max_size=64))
def test_random_signature_headers(mainnet, pid, signature, signature_input, digest, body):  # noqa: F811
    headers = {"signature": signature, "signature-input": signature_input, "target": pid}
    if digest is not None:
        headers["content-digest"] = digest
    response = mainnet.http.post(f"/{pid}~process@1.0/push", headers=headers, content=body)
    assert 400 <= response.status_code < 500 and response.json()["error"], response.text
    still_serving(mainnet.served)
