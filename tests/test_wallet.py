import hashlib
import json
import stat

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from weavedrive.ans104 import b64url_decode, b64url_encode
from weavedrive.wallet import (
    Ed25519Signer,
    Wallet,
    address_of,
    default_wallet,
    deterministic_item,
    home_dir,
    premade_wallets,
    verify_signature,
)

MESSAGE = hashlib.sha384(b"a message").digest()

# RFC 8032, section 7.1, test 1 (empty message).
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46b"
    "d25bf5f0595bbe24655141438e7a100b"
)


@pytest.fixture
def wallet() -> Wallet:
    return premade_wallets()[0]


def file_mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_premade_wallets_are_four_distinct_rsa_4096_wallets():
    wallets = premade_wallets()
    assert len(wallets) == 4
    assert len({w.address for w in wallets}) == 4
    for w in wallets:
        assert len(w.owner) == 512 and w.owner[0] & 0x80
        assert w.address == b64url_encode(hashlib.sha256(w.owner).digest())
        assert w.jwk["e"] == "AQAB"
        n, p, q = (int.from_bytes(b64url_decode(w.jwk[k]), "big") for k in "npq")
        assert n == p * q
    assert premade_wallets()[0] is wallets[0]  # loaded once


def test_wallet_signs_rsa_pss_sha256_with_salt_32(wallet):
    signature = wallet.sign(MESSAGE)
    assert len(signature) == 512
    assert verify_signature(1, wallet.owner, MESSAGE, signature)
    public_key = rsa.RSAPublicNumbers(65537, int.from_bytes(wallet.owner, "big")).public_key()
    salt_32 = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    public_key.verify(signature, MESSAGE, salt_32, hashes.SHA256())
    salt_478 = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=478)
    with pytest.raises(InvalidSignature):
        public_key.verify(signature, MESSAGE, salt_478, hashes.SHA256())


def test_verify_signature_rejects_without_raising(wallet):
    signature = wallet.sign(MESSAGE)
    other = premade_wallets()[1]
    assert not verify_signature(1, wallet.owner, MESSAGE[:-1] + b"\x00", signature)
    assert not verify_signature(1, other.owner, MESSAGE, signature)
    assert not verify_signature(1, wallet.owner, MESSAGE, signature[:-1])
    assert not verify_signature(1, wallet.owner[:-1], MESSAGE, signature)
    assert not verify_signature(1, bytes(512), MESSAGE, signature)
    assert not verify_signature(1, b"\xff" * 512, MESSAGE, signature)
    assert not verify_signature(1, wallet.owner, MESSAGE, b"\xff" * 512)
    for unsupported in (0, 3, 4, 5, 6, 7, 9):
        assert not verify_signature(unsupported, wallet.owner, MESSAGE, signature)


def test_jwk_round_trip(wallet):
    jwk = wallet.jwk
    assert set(jwk) == {"kty", "n", "e", "d", "p", "q", "dp", "dq", "qi"}
    assert jwk["kty"] == "RSA" and b64url_decode(jwk["n"]) == wallet.owner
    assert all("=" not in v for v in jwk.values())
    loaded = Wallet.from_jwk(jwk)
    assert loaded.owner == wallet.owner and loaded.jwk == jwk
    assert verify_signature(1, wallet.owner, MESSAGE, loaded.sign(MESSAGE))


def test_jwk_without_crt_fields_loads(wallet):
    minimal = {k: v for k, v in wallet.jwk.items() if k not in ("dp", "dq", "qi")}
    assert Wallet.from_jwk(minimal).jwk == wallet.jwk


def test_from_jwk_rejects_non_wallets(wallet):
    with pytest.raises(ValueError, match="RSA"):
        Wallet.from_jwk({**wallet.jwk, "kty": "EC"})
    public_only = {k: wallet.jwk[k] for k in ("kty", "n", "e")}
    with pytest.raises(ValueError, match="private"):
        Wallet.from_jwk(public_only)


def test_save_and_load_round_trip_with_mode_0600(wallet, tmp_path):
    path = tmp_path / "wallet.json"
    path.write_text("old")
    path.chmod(0o644)
    wallet.save(path)
    assert file_mode(path) == 0o600
    assert json.loads(path.read_text()) == wallet.jwk
    assert Wallet.load(path).address == wallet.address
    assert [p.name for p in tmp_path.iterdir()] == ["wallet.json"]  # no temporary left behind


def test_generate_makes_a_fresh_rsa_4096_wallet():
    wallet = Wallet.generate()
    assert len(wallet.owner) == 512
    assert wallet.jwk["e"] == "AQAB"
    assert len(wallet.address) == 43
    assert wallet.address not in {w.address for w in premade_wallets()}
    assert verify_signature(1, wallet.owner, MESSAGE, wallet.sign(MESSAGE))


def test_ed25519_signer_matches_rfc8032():
    signer = Ed25519Signer.from_private_bytes(RFC8032_SECRET)
    assert signer.signature_type == 2
    assert signer.owner == RFC8032_PUBLIC
    assert signer.sign(b"") == RFC8032_SIGNATURE
    assert signer.address == address_of(RFC8032_PUBLIC)
    assert verify_signature(2, RFC8032_PUBLIC, b"", RFC8032_SIGNATURE)
    assert not verify_signature(2, RFC8032_PUBLIC, b"x", RFC8032_SIGNATURE)


def test_ed25519_generate_signs_and_verifies():
    signer = Ed25519Signer.generate()
    assert len(signer.owner) == 32
    assert signer.owner != Ed25519Signer.generate().owner
    assert verify_signature(2, signer.owner, MESSAGE, signer.sign(MESSAGE))


def test_deterministic_items_are_the_same_bytes_for_the_same_seed_data_and_tags():
    tags = [("Content-Type", "text/plain")]
    item = deterministic_item(RFC8032_SECRET, b"hello", tags)
    assert item.signature_type == 2 and item.owner == RFC8032_PUBLIC and item.anchor == b""
    assert item.verify()
    assert deterministic_item(RFC8032_SECRET, b"hello", tags).to_bytes() == item.to_bytes()
    assert deterministic_item(RFC8032_SECRET, b"hellO", tags).id != item.id
    assert deterministic_item(RFC8032_SECRET, b"hello", [("Content-Type", "text/html")]).id != item.id
    assert deterministic_item(bytes(32), b"hello", tags).id != item.id
    with pytest.raises(ValueError, match="32 bytes"):
        deterministic_item(b"short", b"hello", tags)


def test_address_of_is_sha256_base64url():
    assert address_of(b"") == "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"


def test_home_dir_respects_tfao_home(monkeypatch, tmp_path):
    home = tmp_path / "nested" / "tfao-home"
    monkeypatch.setenv("TFAO_HOME", str(home))
    assert home_dir() == home and home.is_dir()


def test_home_dir_defaults_to_dot_tfao(monkeypatch, tmp_path):
    monkeypatch.delenv("TFAO_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert home_dir() == tmp_path / ".tfao"
    assert (tmp_path / ".tfao").is_dir()


def test_default_wallet_is_generated_once(monkeypatch, tmp_path):
    generated = []

    def fake_generate():
        generated.append(premade_wallets()[2])
        return generated[-1]

    monkeypatch.setattr(Wallet, "generate", staticmethod(fake_generate))
    monkeypatch.setenv("TFAO_HOME", str(tmp_path / "home"))
    first = default_wallet()
    path = tmp_path / "home" / "wallet.json"
    assert first.address == premade_wallets()[2].address
    assert file_mode(path) == 0o600
    content = path.read_bytes()
    assert default_wallet().address == first.address
    assert default_wallet(tmp_path / "home").address == first.address
    assert path.read_bytes() == content
    assert len(generated) == 1


def test_default_wallet_loads_an_existing_file(monkeypatch, tmp_path):
    monkeypatch.setattr(Wallet, "generate", staticmethod(lambda: pytest.fail("must not generate")))
    premade_wallets()[3].save(tmp_path / "wallet.json")
    assert default_wallet(tmp_path).address == premade_wallets()[3].address
