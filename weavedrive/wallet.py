"""Wallets that sign ANS-104 items: Arweave RSA-4096 JWKs (type 1) and Ed25519 keys (type 2)."""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from .ans104 import SIGNATURE_TYPES, DataItem, address_of, b64url_decode, b64url_encode, sign_data_item

__all__ = [
    "Ed25519Signer",
    "Wallet",
    "address_of",
    "default_wallet",
    "deterministic_item",
    "home_dir",
    "premade_wallets",
    "verify_signature",
]

RSA_BITS = 4096
RSA_PUBLIC_EXPONENT = 65537
_OWNER_BYTES = RSA_BITS // 8
# arweave-js (webcrypto) signs with a 32-byte salt; verification auto-detects the salt length.
_SIGN_PADDING = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
_VERIFY_PADDING = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
_JWK_PRIVATE_FIELDS = ("d", "p", "q", "dp", "dq", "qi")
_PREMADE_WALLETS_FILE = Path(__file__).with_name("premade-wallets.json")


def _int_to_b64url(n: int, size: int | None = None) -> str:
    return b64url_encode(n.to_bytes(size or (n.bit_length() + 7) // 8, "big"))


def _b64url_to_int(s: str) -> int:
    return int.from_bytes(b64url_decode(s), "big")


class Wallet:
    """An Arweave RSA-4096 wallet (JWK). Signs with RSASSA-PSS, SHA-256, salt 32."""

    signature_type = 1

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        if private_key.key_size != RSA_BITS:
            raise ValueError(f"Arweave wallets are RSA-{RSA_BITS}, got RSA-{private_key.key_size}")
        self._key = private_key
        numbers = private_key.private_numbers()
        self._numbers = numbers
        self.owner: bytes = numbers.public_numbers.n.to_bytes(_OWNER_BYTES, "big")
        """The 512-byte big-endian modulus, as carried in data items."""

    @classmethod
    def generate(cls) -> Wallet:
        """A new random wallet (takes about a second)."""
        return cls(rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=RSA_BITS))

    @classmethod
    def from_jwk(cls, jwk: dict, *, validate: bool = True) -> Wallet:
        """Load an RSA JWK as written by arweave-js (dp, dq and qi are derived if missing).

        ``validate=False`` skips OpenSSL's key checks (about 0.2 s per key): only for keys from
        a trusted source.
        """
        if jwk.get("kty") != "RSA":
            raise ValueError(f"not an RSA JWK (kty={jwk.get('kty')!r})")
        missing = [name for name in ("n", "e", "d", "p", "q") if name not in jwk]
        if missing:
            raise ValueError(f"JWK lacks private fields {missing}")
        n, e, d, p, q = (_b64url_to_int(jwk[name]) for name in ("n", "e", "d", "p", "q"))
        numbers = rsa.RSAPrivateNumbers(
            p=p,
            q=q,
            d=d,
            dmp1=_b64url_to_int(jwk["dp"]) if "dp" in jwk else rsa.rsa_crt_dmp1(d, p),
            dmq1=_b64url_to_int(jwk["dq"]) if "dq" in jwk else rsa.rsa_crt_dmq1(d, q),
            iqmp=_b64url_to_int(jwk["qi"]) if "qi" in jwk else rsa.rsa_crt_iqmp(p, q),
            public_numbers=rsa.RSAPublicNumbers(e, n),
        )
        return cls(numbers.private_key(unsafe_skip_rsa_key_validation=not validate))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Wallet:
        return cls.from_jwk(json.loads(Path(path).read_text()))

    def save(self, path: str | os.PathLike) -> None:
        """Write the JWK atomically, readable by the owner only (mode 0600)."""
        _write_private_file(Path(path), json.dumps(self.jwk).encode(), replace=True)

    @property
    def jwk(self) -> dict[str, str]:
        numbers = self._numbers
        return {
            "kty": "RSA",
            "n": b64url_encode(self.owner),
            "e": _int_to_b64url(numbers.public_numbers.e),
            "d": _int_to_b64url(numbers.d),
            "p": _int_to_b64url(numbers.p),
            "q": _int_to_b64url(numbers.q),
            "dp": _int_to_b64url(numbers.dmp1),
            "dq": _int_to_b64url(numbers.dmq1),
            "qi": _int_to_b64url(numbers.iqmp),
        }

    @property
    def address(self) -> str:
        return address_of(self.owner)

    def sign(self, message: bytes) -> bytes:
        """RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32) signature, 512 bytes."""
        return self._key.sign(message, _SIGN_PADDING, hashes.SHA256())

    def __repr__(self) -> str:
        return f"Wallet(address={self.address!r})"


class Ed25519Signer:
    """An Ed25519 signer (ANS-104 signature type 2)."""

    signature_type = 2

    def __init__(self, private_key: ed25519.Ed25519PrivateKey) -> None:
        self._key = private_key
        self.owner: bytes = private_key.public_key().public_bytes_raw()
        """The 32-byte raw public key."""

    @classmethod
    def generate(cls) -> Ed25519Signer:
        return cls(ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, b: bytes) -> Ed25519Signer:
        """From the 32-byte raw private key (seed)."""
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(b))

    @property
    def address(self) -> str:
        return address_of(self.owner)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"Ed25519Signer(address={self.address!r})"


def deterministic_item(seed: bytes, data: bytes, tags: Sequence[tuple[str, str]]) -> DataItem:
    """An item of ``data`` and ``tags`` signed with the Ed25519 key whose private key is the 32-byte ``seed``.

    Ed25519 signatures are deterministic (RFC 8032) and the item has no anchor, so the same seed, data and
    tags give the same bytes and id on every machine: a seed derived from public facts makes an id that
    anyone can recompute. Such a key is public by construction, so the signature only binds the content
    to its id; it proves nothing about who made the item.
    """
    if len(seed) != 32:
        raise ValueError(f"an Ed25519 seed is 32 bytes, got {len(seed)}")
    return sign_data_item(Ed25519Signer.from_private_bytes(seed), data, tags=tags)


@functools.lru_cache(maxsize=256)
def _rsa_public_key(owner: bytes) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(RSA_PUBLIC_EXPONENT, int.from_bytes(owner, "big")).public_key()


@functools.lru_cache(maxsize=256)
def _ed25519_public_key(owner: bytes) -> ed25519.Ed25519PublicKey:
    return ed25519.Ed25519PublicKey.from_public_bytes(owner)


def verify_signature(signature_type: int, owner: bytes, message: bytes, signature: bytes) -> bool:
    """True if ``signature`` by ``owner`` over ``message`` is valid; never raises.

    Type 1: RSA-PSS SHA-256 with any salt length (aoconnect and the SU sign with 478,
    arweave-js with 32); the owner is the modulus, the exponent 65537. Type 2: Ed25519.
    Other types are not supported and give False.
    """
    if signature_type not in (1, 2):
        return False
    sig_len, owner_len = SIGNATURE_TYPES[signature_type]
    if len(owner) != owner_len or len(signature) != sig_len:
        return False
    owner, signature = bytes(owner), bytes(signature)
    try:
        if signature_type == 1:
            _rsa_public_key(owner).verify(signature, message, _VERIFY_PADDING, hashes.SHA256())
        else:
            _ed25519_public_key(owner).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def home_dir() -> Path:
    """``$TFAO_HOME`` or ``~/.tfao``, created (mode 0700) if missing."""
    home = Path(os.environ.get("TFAO_HOME") or Path.home() / ".tfao").expanduser()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return home


def default_wallet(home: Path | None = None) -> Wallet:
    """The wallet at ``<home>/wallet.json``, generated and saved on first use."""
    path = (Path(home) if home is not None else home_dir()) / "wallet.json"
    return _wallet_at(path.resolve())


def home_ed25519_signer(home: Path, name: str) -> Ed25519Signer:
    """The Ed25519 key at ``<home>/<name>`` (its 32-byte seed), generated and saved on first use."""
    path = Path(home).resolve() / name
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_private_file(path, ed25519.Ed25519PrivateKey.generate().private_bytes_raw(), replace=False)
    seed = path.read_bytes()
    if len(seed) != 32:
        raise ValueError(f"{path} is not an Ed25519 key (expected its 32-byte seed, found {len(seed)} bytes)")
    return Ed25519Signer.from_private_bytes(seed)


@functools.lru_cache(maxsize=8)
def _wallet_at(path: Path) -> Wallet:
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # replace=False: if another process created it first, keep (and load) theirs.
        _write_private_file(path, json.dumps(Wallet.generate().jwk).encode(), replace=False)
    return Wallet.load(path)


def _write_private_file(path: Path, content: bytes, *, replace: bool) -> None:
    """Write ``content`` to ``path`` with mode 0600 via a temporary file, so readers never see a
    partial file. With ``replace=False`` an existing file is left as it is."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(content)
            tmp.flush()
            os.fsync(tmp.fileno())
        if replace:
            os.replace(tmp_name, path)
        else:
            try:
                os.link(tmp_name, path)
            except FileExistsError:
                pass
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def premade_wallets() -> list[Wallet]:
    """Four fixed RSA-4096 wallets for tests and local emulation.

    Their private keys are public test keys, published with this package: never use them for
    real funds.
    """
    return list(_load_premade_wallets())


@functools.cache
def _load_premade_wallets() -> tuple[Wallet, ...]:
    jwks = json.loads(_PREMADE_WALLETS_FILE.read_text())
    # Shipped with the package and checked by its tests, so OpenSSL's slow key checks are skipped.
    return tuple(Wallet.from_jwk(jwk, validate=False) for jwk in jwks)
