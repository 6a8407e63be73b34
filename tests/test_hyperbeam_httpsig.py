"""HTTP Message Signatures (RFC 9421) on the mainnet routes, signed here as aoconnect's ``request()`` signs.

Each field is a lowercased header; ``Signature-Input`` covers every header, sorted, with
``alg="rsa-pss-sha512"`` and ``keyid`` = the base64url RSA modulus; values that travel in the body
are covered by ``Content-Digest``.
"""

import base64
import functools
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from test_hyperbeam import mainnet, pid  # noqa: F401 (fixtures)
from test_server import OWNER, STRANGER, served  # noqa: F401 (fixture)
from weavedrive.ans104 import b64url_decode, b64url_encode


@functools.cache  # building a 4096-bit key from its numbers checks it, which takes a while
def private_key(wallet) -> rsa.RSAPrivateKey:
    jwk = {name: int.from_bytes(b64url_decode(value), "big") for name, value in wallet.jwk.items() if name != "kty"}
    public = rsa.RSAPublicNumbers(jwk["e"], jwk["n"])
    return rsa.RSAPrivateNumbers(jwk["p"], jwk["q"], jwk["d"], jwk["dp"], jwk["dq"], jwk["qi"], public).private_key()


def signed_headers(wallet, fields: dict, body: bytes = b"", *, alg="rsa-pss-sha512", components=None) -> dict:
    headers = {name.lower(): value for name, value in fields.items()}
    if body:
        digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode()
        headers["content-digest"] = f"sha-256=:{digest}:"
    names = components or sorted(headers)
    params = f'({" ".join(f"{chr(34)}{n}{chr(34)}" for n in names)});alg="{alg}";keyid="{b64url_encode(wallet.owner)}"'
    derived = {"@method": "POST"}
    base = "\n".join([*(f'"{n}": {headers.get(n) or derived[n]}' for n in names), f'"@signature-params": {params}'])
    signature = private_key(wallet).sign(base.encode(), padding.PSS(mgf=padding.MGF1(hashes.SHA512()),
                                                                     salt_length=padding.PSS.MAX_LENGTH),
                                          hashes.SHA512())
    label = "http-sig-" + wallet.owner[1:9].hex()
    return {**headers, "signature-input": f"{label}={params}",
            "signature": f"{label}=:{base64.b64encode(signature).decode()}:"}


def push_fields(pid, code):
    return {"target": pid, "type": "Message", "action": "Eval", "data": code, "signing-format": "httpsig"}


def push(mainnet, pid, headers, body=b""):  # noqa: F811
    return mainnet.http.post(f"/{pid}~process@1.0/push", headers=headers, content=body)


def dry(mainnet, pid, code):  # noqa: F811
    return mainnet.dryrun(pid, [("Action", "Eval")], code)["Output"]["data"]


def test_a_signed_push_is_a_message_from_the_signer(mainnet, pid):  # noqa: F811
    response = push(mainnet, pid, signed_headers(OWNER, push_fields(pid, "Signed = 'owner'")))
    assert response.status_code == 200, response.text
    raw = mainnet.result(pid, response.json()["slot"])
    assert "Error" not in raw
    assert dry(mainnet, pid, "return Signed") == "owner"


def test_a_strangers_signed_eval_does_not_run(mainnet, pid):  # noqa: F811
    mainnet.eval(pid, "Signed = 'owner'")
    response = push(mainnet, pid, signed_headers(STRANGER, push_fields(pid, "Signed = 'stranger'")))
    assert response.status_code == 200
    mainnet.result(pid, response.json()["slot"])
    assert dry(mainnet, pid, "return Signed") == "owner"


def test_the_process_sees_the_signer_as_from_and_the_node_as_owner(mainnet, pid):  # noqa: F811
    mainnet.eval(pid, 'Handlers.add("Who", "Who", function (msg) Seen = msg.From .. " " .. msg.Owner end)')
    fields = {"target": pid, "action": "Who"}
    mainnet.result(pid, push(mainnet, pid, signed_headers(STRANGER, fields)).json()["slot"])
    assert dry(mainnet, pid, "return Seen") == f"{STRANGER.address} {mainnet.node.address}"


def test_values_in_the_body_are_covered_by_content_digest(mainnet, pid):  # noqa: F811
    code = b"Lines = 1\nLines = Lines + 1"
    fields = {k: v for k, v in push_fields(pid, "").items() if k != "data"}
    headers = signed_headers(OWNER, {**fields, "inline-body-key": "data"}, code)
    response = push(mainnet, pid, headers, code)
    assert response.status_code == 200, response.text
    mainnet.result(pid, response.json()["slot"])
    assert dry(mainnet, pid, "return Lines") == "2"
    altered = push(mainnet, pid, headers, code.replace(b"1", b"9"))
    assert altered.status_code == 400 and "Content-Digest" in altered.json()["error"]


def test_multipart_bodies_carry_several_fields(mainnet, pid):  # noqa: F811
    boundary = "b0undary"
    body = (f'--{boundary}\r\ncontent-disposition: form-data; name="data"\r\n\r\nParts = Note\r\n'
            f'--{boundary}\r\ncontent-disposition: form-data; name="note"\r\n\r\nslash/ed\r\n'
            f"--{boundary}--").encode()
    mainnet.eval(pid, 'Handlers.add("Note", "Note", function (msg) Note = msg.Note end)')
    fields = {"target": pid, "action": "Note", "content-type": f'multipart/form-data; boundary="{boundary}"'}
    response = push(mainnet, pid, signed_headers(OWNER, fields, body), body)
    assert response.status_code == 200, response.text
    mainnet.result(pid, response.json()["slot"])
    assert dry(mainnet, pid, "return Note") == "slash/ed"


def test_an_unsigned_header_does_not_reach_the_process(mainnet, pid):  # noqa: F811
    fields = push_fields(pid, "Forged = true")
    headers = signed_headers(OWNER, fields, components=sorted(set(fields) - {"data"}))
    response = push(mainnet, pid, headers)
    assert response.status_code == 200, response.text
    mainnet.result(pid, response.json()["slot"])
    assert dry(mainnet, pid, "return tostring(Forged)") == "nil"


def test_a_dropped_body_is_refused_with_the_reason(mainnet, pid):  # noqa: F811
    headers = signed_headers(OWNER, {"target": pid, "action": "Eval", "inline-body-key": "data"}, b"A = 1\nB = 2")
    response = push(mainnet, pid, headers)  # what aoconnect's request() sends: the digest, no body
    assert response.status_code == 400 and "did not arrive" in response.json()["error"]


def test_a_replayed_signed_push_is_scheduled_once(mainnet, pid):  # noqa: F811
    headers = signed_headers(OWNER, push_fields(pid, "Replayed = (Replayed or 0) + 1"))
    slots = {push(mainnet, pid, headers).json()["slot"] for _ in range(3)}
    assert len(slots) == 1
    mainnet.result(pid, slots.pop())
    assert dry(mainnet, pid, "return Replayed") == "1"


@pytest.mark.parametrize("forge", [
    "altered value", "other key", "wrong algorithm", "derived component",
    "no target", "other target", "label mismatch", "garbled",
])
def test_forged_signatures_are_refused(mainnet, pid, forge):  # noqa: F811
    slot = mainnet.node.current_slot(pid)
    fields = push_fields(pid, "Forged = true")
    headers = signed_headers(OWNER, fields)
    if forge == "altered value":
        headers["data"] = "Forged = 'twice'"
    elif forge == "other key":
        headers["signature-input"] = headers["signature-input"].replace(b64url_encode(OWNER.owner),
                                                                        b64url_encode(STRANGER.owner))
    elif forge == "wrong algorithm":
        headers = signed_headers(OWNER, fields, alg="rsa-v1_5-sha256")
    elif forge == "derived component":
        headers = signed_headers(OWNER, fields, components=["@method", *sorted(fields)])
    elif forge == "no target":
        headers = signed_headers(OWNER, {k: v for k, v in fields.items() if k != "target"})
    elif forge == "other target":
        headers = signed_headers(OWNER, {**fields, "target": mainnet.spawn()})
    elif forge == "label mismatch":
        headers["signature"] = headers["signature"].replace("http-sig-", "other-")
    elif forge == "garbled":
        headers["signature"] = headers["signature"][:-10] + "!!:"
    response = push(mainnet, pid, headers)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]
    assert mainnet.node.current_slot(pid) == slot


def test_signed_reads_are_verified_too(mainnet, pid):  # noqa: F811
    headers = signed_headers(OWNER, {"accept": "application/json", "action": "Eval"})
    assert mainnet.http.get(f"/{pid}~process@1.0/now", headers=headers).status_code == 200
    headers["action"] = "Other"
    assert mainnet.http.get(f"/{pid}~process@1.0/now", headers=headers).status_code == 400


def test_a_signed_dry_run_is_from_the_signer(mainnet, pid):  # noqa: F811
    mainnet.eval(pid, "Secret = 'kept'")
    path = f"/{pid}~process@1.0/as=execution/compute&Action=Eval"
    owner = mainnet.http.post(path, headers=signed_headers(OWNER, {"data": "return Secret"})).json()
    assert owner["raw"]["Output"]["data"] == "kept"
    stranger = mainnet.http.post(path, headers=signed_headers(STRANGER, {"data": "return Secret"})).json()
    assert "kept" not in json.dumps(stranger["raw"])


def test_a_spawn_must_be_an_ans104_item(mainnet):  # noqa: F811
    fields = {"device": "process@1.0", "type": "Process", "module": mainnet.node.module_id}
    response = mainnet.http.post("/push", headers=signed_headers(OWNER, fields))
    assert response.status_code == 400 and "ANS-104" in response.json()["error"]


def test_fields_that_cannot_be_tags_are_refused(mainnet, pid):  # noqa: F811
    response = push(mainnet, pid, signed_headers(OWNER, {"target": pid, "action": "Eval", "note": "n" * 3500}))
    assert response.status_code == 400 and "tag value too long" in response.json()["error"]
