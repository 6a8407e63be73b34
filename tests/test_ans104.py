import hashlib
import os
import struct
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weavedrive.ans104 import (
    MAX_HEADER_SIZE,
    SIGNATURE_TYPES,
    DataItem,
    InvalidDataItem,
    b64url_decode,
    b64url_encode,
    decode_tags,
    deep_hash,
    deep_hash_stream,
    encode_tags,
    make_bundle,
    parse_bundle,
    parse_header,
    sign_data_item,
    sign_stream,
    verify_stream,
)
from weavedrive.wallet import Ed25519Signer, premade_wallets

SU_MESSAGE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ans104" / "su-message.bin"
PROCESS_ID = "Krim6GbXWi6x1eP1eEvEqX6z1Pnl0uGqr0ULKhErNVQ"
AOCONNECT_TAGS = [
    ("Action", "Info"),
    ("Content-Type", "text/plain"),
    ("SDK", "aoconnect"),
    ("Data-Protocol", "ao"),
    ("Variant", "ao.TN.1"),
    ("Type", "Message"),
]


def sha384(b: bytes) -> bytes:
    return hashlib.sha384(b).digest()


@pytest.fixture(scope="module")
def su_bundle() -> bytes:
    if not SU_MESSAGE.exists():
        pytest.skip(f"real ANS-104 bundle fixture not found at {SU_MESSAGE}")
    return SU_MESSAGE.read_bytes()


@pytest.fixture(scope="module")
def aoconnect_item_bytes(su_bundle) -> bytes:
    return parse_bundle(su_bundle)[1].to_bytes()


@pytest.fixture(scope="module")
def wallet():
    return premade_wallets()[0]


def pss_verifies(item: DataItem, salt_length: int) -> bool:
    public_key = rsa.RSAPublicNumbers(65537, int.from_bytes(item.owner, "big")).public_key()
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt_length)
    try:
        public_key.verify(item.signature, item.signature_message(), pss, hashes.SHA256())
    except InvalidSignature:
        return False
    return True


# --- base64url and deep hash -------------------------------------------------------------------


def test_b64url_round_trip_without_padding():
    for size in range(8):
        raw = os.urandom(size)
        text = b64url_encode(raw)
        assert "=" not in text
        assert b64url_decode(text) == raw
        assert b64url_decode(text.encode()) == raw
    assert b64url_decode("_-8") == b"\xff\xef"
    assert b64url_decode("AQAB==") == b"\x01\x00\x01"


@pytest.mark.parametrize("bad", ["a", "ab$d", "+/+/", "é", "abcde"])
def test_b64url_decode_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        b64url_decode(bad)


def test_deep_hash_vectors():
    assert deep_hash(b"\x01\x02\x03").hex() == (
        "41300af79285f856e833164518c7ec4974f5869ec77ca3458113fe6c587680d0"
        "50f9f6864fd77f9eb62bd4e2faea9ae8"
    )
    assert deep_hash(b"").hex() == (
        "fbf00cc444f5fea9dc3bedf62a13fba8ae87e7445fc910567a23bec4eb82fadb"
        "1143c433069314d8362983dc3c2e4a38"
    )
    assert deep_hash([b"\x01\x02\x03", b"\x04\x05\x06"]).hex() == (
        "4dacdcc81acd09f38c77a07a2a7ae81f77c61e6b97ee5cc7b92f3a7f258e8d5b"
        "a69d14d7d66070797b083873717c9896"
    )


def test_deep_hash_nested_list_follows_definition():
    inner = sha384(sha384(b"list1") + deep_hash(b"b"))
    expected = sha384(sha384(sha384(b"list2") + deep_hash(b"a")) + inner)
    assert deep_hash([b"a", [b"b"]]) == expected
    assert len(expected) == 48


def test_deep_hash_stream_matches_deep_hash():
    blob = os.urandom(100_000)
    chunks = [blob[i : i + 4096] for i in range(0, len(blob), 4096)]
    assert deep_hash_stream(iter(chunks), len(blob)) == deep_hash(blob)
    assert deep_hash_stream([], 0) == deep_hash(b"")
    with pytest.raises(ValueError):
        deep_hash_stream(chunks, len(blob) + 1)


# --- Avro tags ---------------------------------------------------------------------------------


def test_encode_tags_matches_avro_examples():
    action_eval = bytes.fromhex("020c416374696f6e084576616c00")
    tag1 = bytes.fromhex("0208746167310c76616c75653100")
    assert encode_tags([("Action", "Eval")]) == action_eval
    assert encode_tags([("tag1", "value1")]) == tag1
    assert decode_tags(action_eval) == [("Action", "Eval")]
    assert decode_tags(tag1) == [("tag1", "value1")]
    assert encode_tags([]) == b"" and decode_tags(b"") == []


def test_tags_round_trip_with_unicode_and_long_values():
    tags = [("Name", "wëird ✓"), ("Long", "x" * 3000), ("Empty-Value", "")]
    assert decode_tags(encode_tags(tags)) == tags


def test_decode_tags_accepts_several_blocks_and_negative_counts():
    first_tag = b"\x02a\x02b"
    # block of -1 items followed by its byte size, then a plain block of 1 item, then the end.
    raw = b"\x01" + bytes([len(first_tag) * 2]) + first_tag + b"\x02\x02c\x02d" + b"\x00"
    assert decode_tags(raw) == [("a", "b"), ("c", "d")]


def test_decode_tags_is_strict():
    raw = encode_tags([("Action", "Eval"), ("Name", "x")])
    for cut in range(1, len(raw)):
        with pytest.raises(InvalidDataItem, match="truncated"):
            decode_tags(raw[:cut])
    with pytest.raises(InvalidDataItem, match="after the end"):
        decode_tags(raw + b"\x00")
    with pytest.raises(InvalidDataItem, match="empty tag name"):
        decode_tags(b"\x02\x00\x02v\x00")
    with pytest.raises(InvalidDataItem, match="negative"):
        decode_tags(b"\x02\x01")
    with pytest.raises(InvalidDataItem, match="64 bits"):
        decode_tags(b"\xff" * 11)


# --- the real bundle ---------------------------------------------------------------------------


def test_real_bundle_parses_with_the_listed_ids_tags_and_signers(su_bundle):
    assignment, message = parse_bundle(su_bundle)

    assert assignment.id == "qAxRmlZZTnQDKNqYTB5_8u8Cmk9J9-aVVee_bDZMlr0"
    assert len(assignment.to_bytes()) == 1357
    assert assignment.signature_type == 1
    assert assignment.owner_address == "fcoN_xJeisVsPXA-trzVAuIiqO3ydLQxM-L4XbrQKzY"
    assert assignment.target == b"" and assignment.target_id is None
    assert len(assignment.anchor) == 32
    assert len(assignment.raw_tags) == 281
    assert assignment.tags == [
        ("Process", PROCESS_ID),
        ("Epoch", "0"),
        ("Nonce", "247050"),
        ("Hash-Chain", "OgKFCi0cOIeuZMadzvxXtzbobNFGsOiJkR6tZJS7DXM"),
        ("Block-Height", "000001736676"),
        ("Timestamp", "1755708950818"),
        ("Data-Protocol", "ao"),
        ("Type", "Assignment"),
        ("Variant", "ao.TN.1"),
        ("Message", "XxAng_IUpIPBuk35-jNWuN2eBPVytruzobiFwmSTt4I"),
    ]
    assert assignment.data == b""

    assert message.id == "XxAng_IUpIPBuk35-jNWuN2eBPVytruzobiFwmSTt4I"
    assert len(message.to_bytes()) == 1175
    assert message.owner_address == "vziwVZ_C5sdB1ko6t0lneCNfa3Rq8ZeLQHhSZkRTMds"
    assert message.target_id == PROCESS_ID
    assert message.anchor == b""
    assert message.tags == AOCONNECT_TAGS
    assert len(message.raw_tags) == 98
    assert message.data == b" "
    assert message.tag("Action") == "Info" and message.tag("Missing", "-") == "-"


def test_real_bundle_signatures_verify_with_both_salt_lengths(su_bundle):
    assignment, message = parse_bundle(su_bundle)
    assert assignment.verify() and message.verify()
    assert pss_verifies(assignment, 478) and not pss_verifies(assignment, 32)
    assert pss_verifies(message, 32) and not pss_verifies(message, 478)


def test_make_bundle_reproduces_the_real_bundle(su_bundle):
    assert make_bundle(parse_bundle(su_bundle)) == su_bundle


def test_parse_bundle_rejects_bad_bundles(su_bundle):
    with pytest.raises(InvalidDataItem, match="bytes after"):
        parse_bundle(su_bundle + b"\x00")
    with pytest.raises(InvalidDataItem, match="truncated"):
        parse_bundle(su_bundle[:-1])
    wrong_id = bytearray(su_bundle)
    wrong_id[32 + 32] ^= 1  # first byte of item 0's id in the header
    with pytest.raises(InvalidDataItem, match="id"):
        parse_bundle(bytes(wrong_id))
    assert parse_bundle(bytes(32)) == []


def test_unsigned_ethereum_item_id_vector():
    item = DataItem(3, bytes(65), bytes(65), b"", b"", [], b"")
    assert item.id == "mM5C3u9R1AJp1UL1MUvvLHRo1AGtXYUWi_q0wBCPdfc"
    assert DataItem.parse(item.to_bytes()) == item
    assert not item.verify()  # Ethereum signatures are not supported


# --- tampering ---------------------------------------------------------------------------------


def flipped(raw: bytes, index: int) -> bytes:
    out = bytearray(raw)
    out[index] ^= 0x01
    return bytes(out)


def verifies(raw: bytes) -> bool:
    try:
        return DataItem.parse(raw).verify()
    except InvalidDataItem:
        return False


def test_any_flipped_byte_in_signature_owner_tags_or_data_fails(aoconnect_item_bytes):
    item, data_offset = parse_header(aoconnect_item_bytes)
    tags_start = data_offset - len(item.raw_tags)
    assert verifies(aoconnect_item_bytes)
    regions = [range(2, 2 + 512 + 512), range(tags_start, len(aoconnect_item_bytes))]
    for region in regions:
        for index in region:
            assert not verifies(flipped(aoconnect_item_bytes, index)), index


def test_bad_presence_bytes_and_truncation_raise(aoconnect_item_bytes):
    target_presence = 2 + 512 + 512
    anchor_presence = target_presence + 33
    for index in (target_presence, anchor_presence):
        for value in (2, 0x80, 0xFF):
            raw = bytearray(aoconnect_item_bytes)
            raw[index] = value
            with pytest.raises(InvalidDataItem, match="presence byte"):
                DataItem.parse(bytes(raw))
    _, data_offset = parse_header(aoconnect_item_bytes)
    for cut in range(data_offset):
        with pytest.raises(InvalidDataItem):
            DataItem.parse(aoconnect_item_bytes[:cut])


def test_bad_signature_type_raises(aoconnect_item_bytes):
    with pytest.raises(InvalidDataItem, match="bad signature type 9"):
        DataItem.parse(struct.pack("<H", 9) + aoconnect_item_bytes[2:])


def unchecked_item(raw_tags: bytes, tag_count: int) -> bytes:
    """An Ed25519-shaped item with arbitrary tag bytes (to_bytes does not check tags)."""
    item = DataItem(2, bytes(64), bytes(32), b"", b"", [], b"data", raw_tags)
    head = item.to_bytes()
    counts_at = 2 + 64 + 32 + 2
    return head[:counts_at] + struct.pack("<Q", tag_count) + head[counts_at + 8 :]


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ([("a", "")] * 129, "too many tags"),
        ([("n" * 1025, "v")], "tag name too long"),
        ([("n", "v" * 3073)], "tag value too long"),
        ([("", "v")], "empty tag name"),
        ([("n", "v" * 3000), ("m", "v" * 1200)], "tags too large"),
    ],
)
def test_tag_limits_are_enforced_by_parse_and_sign(tags, message):
    with pytest.raises(InvalidDataItem, match=message):
        DataItem.parse(unchecked_item(encode_tags(tags), len(tags)))
    with pytest.raises(InvalidDataItem, match=message):
        sign_data_item(Ed25519Signer.generate(), b"x", tags=tags)


def test_tag_count_must_match_tag_bytes():
    raw_tags = encode_tags([("a", "b")])
    with pytest.raises(InvalidDataItem, match="tag count mismatch"):
        DataItem.parse(unchecked_item(raw_tags, 2))
    with pytest.raises(InvalidDataItem, match="tag count mismatch"):
        DataItem.parse(unchecked_item(b"", 1))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=3000))
def test_parse_raises_only_invalid_data_item_on_random_bytes(raw):
    for parse in (DataItem.parse, parse_bundle):
        try:
            parse(raw)
        except InvalidDataItem:
            pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_parse_raises_only_invalid_data_item_on_mutated_items(aoconnect_item_bytes, data):
    raw = bytearray(aoconnect_item_bytes)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] = data.draw(st.integers(0, 255))
    raw = raw[: data.draw(st.integers(0, len(raw)))]
    try:
        DataItem.parse(bytes(raw)).verify()
    except InvalidDataItem:
        pass


# --- signing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("signer_kind", ["rsa", "ed25519"])
def test_sign_to_bytes_parse_verify_round_trip(signer_kind, wallet):
    signer = wallet if signer_kind == "rsa" else Ed25519Signer.generate()
    anchor = os.urandom(32)
    item = sign_data_item(
        signer, "hello ✓", target=PROCESS_ID, anchor=anchor, tags=[("Action", "Eval"), ("Action", "Two")]
    )
    parsed = DataItem.parse(item.to_bytes())
    assert parsed == item
    assert parsed.verify()
    assert parsed.signature_type == signer.signature_type
    assert len(parsed.signature) == SIGNATURE_TYPES[signer.signature_type][0]
    assert parsed.owner_address == signer.address
    assert parsed.target_id == PROCESS_ID and parsed.anchor == anchor
    assert parsed.data == "hello ✓".encode()
    assert parsed.tags_dict() == {"Action": "Eval"}
    assert parsed.id == b64url_encode(hashlib.sha256(parsed.signature).digest())
    parsed.data = b"hello!"
    assert not parsed.verify()


def test_sign_without_optional_fields(wallet):
    item = sign_data_item(wallet, b"")
    raw = item.to_bytes()
    assert len(raw) == 2 + 512 + 512 + 1 + 1 + 16
    assert DataItem.parse(raw).verify()


def test_sign_rejects_malformed_target_and_anchor(wallet):
    with pytest.raises(ValueError):
        sign_data_item(wallet, b"x", target="short")
    with pytest.raises(ValueError):
        sign_data_item(wallet, b"x", target=bytes(31))
    with pytest.raises(ValueError):
        sign_data_item(wallet, b"x", anchor=bytes(33))


def test_aoconnect_style_item_signed_with_salt_478_verifies(wallet):
    """Assembles the bytes field by field, as aoconnect's signer does, and signs with max salt."""
    jwk = {name: int.from_bytes(b64url_decode(v), "big") for name, v in wallet.jwk.items() if name != "kty"}
    numbers = rsa.RSAPrivateNumbers(
        p=jwk["p"],
        q=jwk["q"],
        d=jwk["d"],
        dmp1=jwk["dp"],
        dmq1=jwk["dq"],
        iqmp=jwk["qi"],
        public_numbers=rsa.RSAPublicNumbers(jwk["e"], jwk["n"]),
    )
    private_key = numbers.private_key(unsafe_skip_rsa_key_validation=True)
    target = b64url_decode(PROCESS_ID)
    raw_tags = encode_tags(AOCONNECT_TAGS)
    message = deep_hash([b"dataitem", b"1", b"1", wallet.owner, target, b"", raw_tags, b" "])
    max_salt = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
    signature = private_key.sign(message, max_salt, hashes.SHA256())
    tag_counts = struct.pack("<QQ", len(AOCONNECT_TAGS), len(raw_tags))
    # type, signature, owner, target present + target, anchor absent, tag counts, tags, data
    raw = (
        struct.pack("<H", 1) + signature + wallet.owner
        + b"\x01" + target + b"\x00" + tag_counts + raw_tags + b" "
    )
    item = DataItem.parse(raw)
    assert item.signature_message() == message
    assert pss_verifies(item, 478) and not pss_verifies(item, 32)
    assert item.verify()
    assert item.owner_address == wallet.address
    assert item.to_bytes() == raw


# --- streaming ---------------------------------------------------------------------------------


def file_chunks(path: Path, chunk_size: int = 1 << 16):
    with path.open("rb") as f:
        while chunk := f.read(chunk_size):
            yield chunk


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stream") / "weights.bin"
    path.write_bytes(os.urandom(5 * 1024 * 1024 + 123))
    return path


def test_sign_stream_matches_sign_data_item(big_file, wallet):
    tags = [("Content-Type", "application/octet-stream")]
    length = big_file.stat().st_size
    streamed, header = sign_stream(
        wallet, lambda: file_chunks(big_file), length, target=PROCESS_ID, tags=tags
    )
    assert streamed.data == b""
    whole = sign_data_item(wallet, big_file.read_bytes(), target=PROCESS_ID, tags=tags)
    full = DataItem.parse(header + big_file.read_bytes())
    assert full.signature_message() == whole.signature_message()
    assert full.id == streamed.id
    assert full.verify()


def test_sign_stream_ed25519_gives_the_same_item_bytes(big_file):
    signer = Ed25519Signer.from_private_bytes(bytes(range(32)))
    length = big_file.stat().st_size
    _, header = sign_stream(signer, lambda: file_chunks(big_file), length, tags=[("a", "b")])
    whole = sign_data_item(signer, big_file.read_bytes(), tags=[("a", "b")])
    assert header + big_file.read_bytes() == whole.to_bytes()


def test_parse_header_and_verify_stream(big_file, wallet):
    length = big_file.stat().st_size
    _, header = sign_stream(wallet, lambda: file_chunks(big_file), length, tags=[("k", "v")])
    with big_file.open("rb") as f:
        head = header + f.read(MAX_HEADER_SIZE - len(header))
    item, data_offset = parse_header(head)
    assert data_offset == len(header) and item.data == b""
    assert item.tags == [("k", "v")]
    assert verify_stream(item, file_chunks(big_file), length)
    assert not verify_stream(item, file_chunks(big_file), length + 1)
    tampered = (flipped(c, 0) if i == 3 else c for i, c in enumerate(file_chunks(big_file)))
    assert not verify_stream(item, tampered, length)
