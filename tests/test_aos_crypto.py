"""`.crypto` digests: the same bytes as hashlib (and as aos's own test vectors), in every output form."""

import base64
import hashlib

import pytest

from tfao.sandbox.luavm import LuaVM
from test_aos import Aos

HASHLIB_NAMES = {"md5": "md5", "sha1": "sha1", "sha2_256": "sha256", "sha2_512": "sha512",
                 "sha3_256": "sha3_256", "sha3_512": "sha3_512"}
# lengths around every block and padding boundary (64-byte, 128-byte, 72- and 136-byte rates)
LENGTHS = [0, 1, 3, 55, 56, 57, 63, 64, 65, 71, 72, 111, 112, 127, 128, 135, 136, 137, 1000]


@pytest.fixture(scope="module")
def digest():
    return LuaVM().require(".crypto")[b"digest"]


@pytest.mark.parametrize("name", HASHLIB_NAMES)
def test_digests_match_hashlib_across_block_boundaries(digest, name):
    for length in LENGTHS:
        data = bytes((i * 7 + 3) % 256 for i in range(length))
        assert digest[name.encode()](data)[b"asHex"]().decode() == hashlib.new(HASHLIB_NAMES[name], data).hexdigest()


def test_keccak_is_the_original_padding(digest):
    empty = "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"  # Ethereum's keccak256("")
    assert digest[b"keccak256"](b"")[b"asHex"]().decode() == empty


def test_aos_test_vectors_and_output_forms():
    aos = Aos()
    code = """local crypto = require('.crypto')
    local d = crypto.digest
    local stream = crypto.utils.stream.fromString('ao')
    return table.concat({ d.md5(stream).asHex(), d.sha1('ao').asHex(), d.sha3_256('ao').asHex(),
      d.keccak256('ao').asHex(), d.keccak512('ao').asHex(), d.sha3_512('ao').asHex(),
      table.concat(d.sha1('ao').asBytes(), ','), d.sha1('ao').asBase64(), crypto.utils.hex.stringToHex(d.sha1('ao').asString()),
      tostring(require('.crypto.init') == crypto) }, ' ')"""
    result = aos.eval(code)
    assert "Error" not in result, result
    sha1 = hashlib.sha1(b"ao").digest()
    assert result["Output"]["data"].split(" ") == [
        "adac5e63f80f8629e9573527b25891d3", "c29dd6c83b67a1d6d3b28588a1f068b68689aa1d",
        "1bbe785577db997a394d5b4555eec9159cb51f235aec07514872d2d436c6e985",
        "76da52eec05b749b99d6e62bb52333c1569fe75284e6c82f3de12a4618be00d6",
        "046fbfad009a12cef9ff00c2aac361d004347b2991c1fa80fba5582251b8e0be8def0283f45f020d4b04ff03ead9f6e7c43cc3920810c05b33b4873b99affdea",
        "0c29f053400cb1764ce2ec555f598f497e6fcd1d304ce0125faa03bb724f63f213538f41103072ff62ddee701b52c73e621ed4d2254a3e5e9a803d83435b704d",
        ",".join(str(b) for b in sha1), base64.b64encode(sha1).decode(), sha1.hex(), "true"]


def test_a_digest_of_something_else_is_an_error():
    result = Aos().eval("return require('.crypto').digest.sha1({})")
    assert "a digest takes a string or a byte stream, not a table" in result["Error"]


def test_blake2b_matches_hashlib_with_lengths_and_keys(digest):
    for length in [0, 1, 127, 128, 129, 300]:
        data = bytes((i * 5 + 1) % 256 for i in range(length))
        for outlen, key in [(64, b""), (32, b"k"), (1, b"x" * 64)]:
            expected = hashlib.blake2b(data, digest_size=outlen, key=key).hexdigest()
            assert digest[b"blake2b"](data, outlen, key)[b"asHex"]().decode() == expected
    # aos's documented vector
    assert digest[b"blake2b"](b"ao", 32)[b"asHex"]().decode() == (
        "7050811afc947ba7190bb3c0a7b79b4fba304a0de61d529c8a35bdcbbb5544f4")


def hmac_with_block(algorithm: str, key: bytes, message: bytes, block: int) -> str:
    """The HMAC construction with a chosen key block size (RFC 2104 uses the digest's, 64)."""
    if len(key) > block:
        key = hashlib.new(algorithm, key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.new(algorithm, bytes(b ^ 0x36 for b in key) + message).digest()
    return hashlib.new(algorithm, bytes(b ^ 0x5C for b in key) + inner).hexdigest()


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_hmac_is_aos_s_32_byte_block_construction(algorithm):
    crypto = LuaVM().require(".crypto")
    for key in [b"super_secret_key", b"k" * 200]:
        got = crypto[b"mac"][b"createHmac"](b"ao", key, algorithm.encode())[b"asHex"]().decode()
        assert got == hmac_with_block(algorithm, key, b"ao", 32)


def test_hmac_matches_aos_test_vectors():
    # aos's mac/hmac.test.js: the second call gets the stream the first one already read
    code = """local crypto = require('.crypto')
    local data = crypto.utils.stream.fromString('ao')
    local key = crypto.utils.array.fromString('super_secret_key')
    return crypto.mac.createHmac(data, key).asHex() .. ', ' .. crypto.mac.createHmac(data, key, 'sha256').asHex()"""
    assert Aos().eval(code)["Output"]["data"] == (
        "3966f45acb53f7a1a493bae15afecb1a204fa32d, 542da02a324155d688c7689669ff94c6a5f906892aa8eccd7284f210ac66e2a7")
    assert "Unsupported algorithm: md5" in Aos().eval("return require('.crypto').mac.createHmac('a', 'b', 'md5')")["Error"]


def test_pbkdf2_matches_hashlib_and_the_aos_vector():
    kdf = LuaVM().require(".crypto")[b"kdf"]
    assert kdf[b"pbkdf2"](b"password", b"salt", 4, 16)[b"asHex"]().decode() == "c4c21bf2bbf61541408ec2a49c89b9c6"
    expected = hashlib.pbkdf2_hmac("sha256", b"password", b"salt", 3, 50).hex()
    assert kdf[b"pbkdf2"](b"password", b"salt", 3, 50, b"sha256")[b"asHex"]().decode() == expected


def test_mac_and_kdf_take_streams_and_arrays():
    code = """local c = require('.crypto')
    local a = c.mac.createHmac(c.utils.stream.fromString('ao'), c.utils.array.fromString('key')).asHex()
    return tostring(a == c.mac.createHmac('ao', 'key').asHex()) .. ' ' ..
      c.kdf.pbkdf2(c.utils.array.fromString('password'), c.utils.array.fromString('salt'), 4, 16).asHex()"""
    assert Aos().eval(code)["Output"]["data"] == "true c4c21bf2bbf61541408ec2a49c89b9c6"
