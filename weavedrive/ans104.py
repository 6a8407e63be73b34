"""ANS-104 data items: parse, build, sign, verify, bundle.

Layout (little-endian): u16 signature type, signature, owner, target presence byte + 32 bytes,
anchor presence byte + 32 bytes, u64 tag count, u64 tag byte count, Avro tags, data.
What gets signed is the SHA-384 deep hash of
``["dataitem", "1", str(signature_type), owner, target, anchor, raw_tags, data]``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

# signature type -> (signature length, owner length), as in arbundles' constants.
SIGNATURE_TYPES: dict[int, tuple[int, int]] = {
    1: (512, 512),  # Arweave RSA-4096 PSS
    2: (64, 32),  # Ed25519
    3: (65, 65),  # Ethereum secp256k1
    4: (64, 32),  # Solana
    5: (64, 32),  # InjectedAptos
    6: (2052, 1025),  # MultiAptos
    7: (65, 42),  # TypedEthereum
}

MAX_TAGS = 128
MAX_TAG_NAME_BYTES = 1024
MAX_TAG_VALUE_BYTES = 3072
# arbundles' verify rejects items whose Avro tag block is larger than this.
MAX_TAG_BYTES = 4096
ID_BYTES = 32
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")


def is_id(value: object) -> bool:
    """Whether ``value`` is spelled as an Arweave id: 43 base64url characters (str or bytes)."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("latin-1")
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None
_LONGEST_KEYS = max(sig + owner for sig, owner in SIGNATURE_TYPES.values())
# Enough bytes to hold any valid header: read this much of a file before calling parse_header.
MAX_HEADER_SIZE = 2 + _LONGEST_KEYS + 2 * (1 + ID_BYTES) + 16 + MAX_TAG_BYTES

_U64 = struct.Struct("<Q")
_U16 = struct.Struct("<H")


class InvalidDataItem(ValueError):
    """Raised when bytes are not a well-formed ANS-104 data item or bundle."""


class Signer(Protocol):
    """Anything that signs items: a signature type, its raw public key, and ``sign``."""

    signature_type: int
    owner: bytes

    def sign(self, message: bytes) -> bytes: ...


# --- base64url ---------------------------------------------------------------------------------


def b64url_encode(b: bytes) -> str:
    """Base64url without padding, as Arweave ids and JWK fields are written."""
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def b64url_decode(s: str | bytes) -> bytes:
    """Decode base64url with or without padding; ValueError on any other character."""
    try:
        text = s.encode("ascii") if isinstance(s, str) else bytes(s)
    except UnicodeEncodeError as exc:
        raise ValueError(f"not base64url: {s!r}") from exc
    text = text.rstrip(b"=")
    # b64decode would also take the standard alphabet's "+" and "/"; base64url must not.
    if len(text) % 4 == 1 or b"+" in text or b"/" in text:
        raise ValueError(f"not base64url (bad length {len(text)}): {s!r}")
    try:
        return base64.b64decode(text + b"=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64url: {s!r}") from exc


def _id_bytes(value: str | bytes, what: str) -> bytes:
    raw = b64url_decode(value) if isinstance(value, str) else bytes(value)
    if len(raw) != ID_BYTES:
        raise ValueError(f"{what} must be {ID_BYTES} bytes (a 43-character id), got {len(raw)}")
    return raw


# --- deep hash ---------------------------------------------------------------------------------


def _sha384(b: bytes) -> bytes:
    return hashlib.sha384(b).digest()


def _blob_hash(tag_digest: bytes, content_digest: bytes) -> bytes:
    return _sha384(tag_digest + content_digest)


def _list_hash(child_hashes: Sequence[bytes]) -> bytes:
    acc = _sha384(b"list%d" % len(child_hashes))
    for child in child_hashes:
        acc = _sha384(acc + child)
    return acc


def deep_hash(item: bytes | list) -> bytes:
    """Arweave's SHA-384 deep hash of a blob or a (nested) list of blobs; 48 bytes."""
    if isinstance(item, list):
        return _list_hash([deep_hash(child) for child in item])
    blob = bytes(item)
    return _blob_hash(_sha384(b"blob%d" % len(blob)), _sha384(blob))


def deep_hash_stream(chunks: Iterable[bytes], length: int) -> bytes:
    """Deep hash of a blob given as chunks totalling ``length`` bytes (never held in memory)."""
    content = hashlib.sha384()
    seen = 0
    for chunk in chunks:
        content.update(chunk)
        seen += len(chunk)
    if seen != length:
        raise ValueError(f"stream gave {seen} bytes, expected {length}")
    return _blob_hash(_sha384(b"blob%d" % length), content.digest())


# --- Avro tags ---------------------------------------------------------------------------------


def _write_length(out: bytearray, n: int) -> None:
    zigzag = n << 1  # Avro zig-zag of a non-negative long
    while zigzag > 0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)


def encode_tags(tags: Sequence[tuple[str, str]]) -> bytes:
    """Avro-encode tags the way arbundles does: one block, then a 0 terminator; b"" for none."""
    if not tags:
        return b""
    out = bytearray()
    _write_length(out, len(tags))
    for name, value in tags:
        for text in (name, value):
            raw = text.encode("utf-8")
            _write_length(out, len(raw))
            out += raw
    out.append(0)
    return bytes(out)


class _AvroReader:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.pos = 0

    def long(self) -> int:
        result = shift = 0
        while True:
            if self.pos >= len(self.raw):
                raise InvalidDataItem("truncated item: tag varint runs past the tag bytes")
            byte = self.raw[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7
            if shift >= 64:
                raise InvalidDataItem("bad tags: varint longer than 64 bits")

    def text(self, what: str, limit: int) -> str:
        size = self.long()
        if size < 0:
            raise InvalidDataItem(f"bad tags: negative {what} length {size}")
        if size > limit:
            raise InvalidDataItem(f"{what} too long: {size} bytes > {limit}")
        end = self.pos + size
        if end > len(self.raw):
            raise InvalidDataItem(f"truncated item: {what} runs past the tag bytes")
        # Invalid UTF-8 is replaced, as JavaScript decoders do; raw_tags keeps the exact bytes.
        value = self.raw[self.pos : end].decode("utf-8", errors="replace")
        self.pos = end
        return value


def decode_tags(raw: bytes) -> list[tuple[str, str]]:
    """Decode Avro tag bytes (any number of blocks, negative counts with sizes).

    Strict: truncation, trailing bytes and the spec's limits (<= 128 tags, non-empty names
    <= 1024 bytes, values <= 3072 bytes) raise InvalidDataItem.
    """
    if not raw:
        return []
    reader = _AvroReader(bytes(raw))
    tags: list[tuple[str, str]] = []
    while True:
        count = reader.long()
        if count == 0:
            break
        if count < 0:
            count = -count
            reader.long()  # block size in bytes, only useful for skipping
        if len(tags) + count > MAX_TAGS:
            raise InvalidDataItem(f"too many tags: more than {MAX_TAGS}")
        for _ in range(count):
            name = reader.text("tag name", MAX_TAG_NAME_BYTES)
            if not name:
                raise InvalidDataItem("empty tag name")
            tags.append((name, reader.text("tag value", MAX_TAG_VALUE_BYTES)))
    if reader.pos != len(raw):
        raise InvalidDataItem(f"bad tags: {len(raw) - reader.pos} bytes after the end of the tags")
    return tags


def _checked_tags(raw_tags: bytes, count: int) -> list[tuple[str, str]]:
    """Decode tag bytes and check them against the header's tag count and size limits."""
    if count > MAX_TAGS:
        raise InvalidDataItem(f"too many tags: {count} > {MAX_TAGS}")
    if len(raw_tags) > MAX_TAG_BYTES:
        raise InvalidDataItem(f"tags too large: {len(raw_tags)} bytes > {MAX_TAG_BYTES}")
    tags = decode_tags(raw_tags)
    if len(tags) != count:
        raise InvalidDataItem(f"tag count mismatch: header says {count}, tags hold {len(tags)}")
    return tags


# --- data items --------------------------------------------------------------------------------


@dataclass
class DataItem:
    """One ANS-104 data item. ``raw_tags`` are the exact Avro bytes that were signed."""

    signature_type: int
    signature: bytes
    owner: bytes
    target: bytes
    anchor: bytes
    tags: list[tuple[str, str]]
    data: bytes
    raw_tags: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if self.tags and not self.raw_tags:
            self.raw_tags = encode_tags(self.tags)

    @property
    def id(self) -> str:
        """base64url(SHA-256(signature)), 43 characters."""
        return b64url_encode(hashlib.sha256(self.signature).digest())

    @property
    def owner_address(self) -> str:
        """base64url(SHA-256(owner)) for every signature type.

        For the Ethereum types (3, 7) this is the Arweave-style address gateways index, not the
        0x-prefixed Ethereum address.
        """
        return address_of(self.owner)

    @property
    def target_id(self) -> str | None:
        return b64url_encode(self.target) if self.target else None

    @classmethod
    def parse(cls, raw: bytes | memoryview) -> DataItem:
        """Parse and validate a whole item (the signature is checked by ``verify``)."""
        raw = bytes(raw)
        item, data_offset = parse_header(raw)
        item.data = raw[data_offset:]
        return item

    def header_bytes(self) -> bytes:
        """Everything before the data."""
        sig_len, owner_len = _lengths(self.signature_type)
        if len(self.signature) != sig_len or len(self.owner) != owner_len:
            raise InvalidDataItem(
                f"type {self.signature_type} needs a {sig_len}-byte signature and a "
                f"{owner_len}-byte owner, got {len(self.signature)} and {len(self.owner)}"
            )
        return b"".join(
            (
                _U16.pack(self.signature_type),
                self.signature,
                self.owner,
                _optional_id(self.target),
                _optional_id(self.anchor),
                _U64.pack(len(self.tags)),
                _U64.pack(len(self.raw_tags)),
                self.raw_tags,
            )
        )

    def to_bytes(self) -> bytes:
        return self.header_bytes() + self.data

    def signature_message(self) -> bytes:
        """The 48-byte deep hash that the owner signs."""
        return self._signature_message(deep_hash(self.data))

    def _signature_message(self, data_hash: bytes) -> bytes:
        fields = (
            b"dataitem",
            b"1",
            b"%d" % self.signature_type,
            self.owner,
            self.target,
            self.anchor,
            self.raw_tags,
        )
        return _list_hash([deep_hash(f) for f in fields] + [data_hash])

    def verify(self) -> bool:
        """True if the signature is valid for this item; never raises for bad signatures."""
        return self._verify_message(self.signature_message())

    def _verify_message(self, message: bytes) -> bool:
        from .wallet import verify_signature  # wallet imports this module

        return verify_signature(self.signature_type, self.owner, message, self.signature)

    def tag(self, name: str, default: str | None = None) -> str | None:
        return first_tag(self.tags, name, default)

    def tags_dict(self) -> dict[str, str]:
        return first_tags(self.tags)


def first_tag(tags, name: str, default: str | None = None) -> str | None:
    """The value of the first of the (name, value) ``tags`` called exactly ``name``."""
    return next((value for tag_name, value in tags if tag_name == name), default)


def first_tags(tags) -> dict[str, str]:
    """(name, value) tags as a dict; the first occurrence of a name wins."""
    result: dict[str, str] = {}
    for name, value in tags:
        result.setdefault(name, value)
    return result


def address_of(owner: bytes) -> str:
    """Arweave address of a public key: base64url(SHA-256(owner))."""
    return b64url_encode(hashlib.sha256(owner).digest())


def _lengths(signature_type: int) -> tuple[int, int]:
    try:
        return SIGNATURE_TYPES[signature_type]
    except KeyError:
        raise InvalidDataItem(f"bad signature type {signature_type}") from None


def _optional_id(value: bytes) -> bytes:
    if not value:
        return b"\x00"
    if len(value) != ID_BYTES:
        raise InvalidDataItem(f"target/anchor must be {ID_BYTES} bytes, got {len(value)}")
    return b"\x01" + value


def _need(raw: bytes, end: int, what: str) -> None:
    if end > len(raw):
        raise InvalidDataItem(f"truncated item: {what} needs {end} bytes, have {len(raw)}")


def _read_optional_id(raw: bytes, pos: int, what: str) -> tuple[bytes, int]:
    _need(raw, pos + 1, f"{what} presence byte")
    present = raw[pos]
    if present == 0:
        return b"", pos + 1
    if present != 1:
        raise InvalidDataItem(f"bad {what} presence byte {present} (must be 0 or 1)")
    _need(raw, pos + 1 + ID_BYTES, what)
    return raw[pos + 1 : pos + 1 + ID_BYTES], pos + 1 + ID_BYTES


def parse_header(head: bytes) -> tuple[DataItem, int]:
    """Parse the header at the start of ``head`` (which may hold some or all of the data).

    Returns the item with ``data == b""`` and the offset where the data starts. Reading
    ``MAX_HEADER_SIZE`` bytes of a file (or all of it, if shorter) is always enough.
    """
    raw = bytes(head)
    _need(raw, 2, "signature type")
    (signature_type,) = _U16.unpack_from(raw, 0)
    sig_len, owner_len = _lengths(signature_type)
    pos = 2
    _need(raw, pos + sig_len + owner_len, "signature and owner")
    signature = raw[pos : pos + sig_len]
    owner = raw[pos + sig_len : pos + sig_len + owner_len]
    pos += sig_len + owner_len
    target, pos = _read_optional_id(raw, pos, "target")
    anchor, pos = _read_optional_id(raw, pos, "anchor")
    _need(raw, pos + 16, "tag counts")
    (tag_count,) = _U64.unpack_from(raw, pos)
    (tag_bytes,) = _U64.unpack_from(raw, pos + 8)
    pos += 16
    if tag_bytes > MAX_TAG_BYTES:
        raise InvalidDataItem(f"tags too large: {tag_bytes} bytes > {MAX_TAG_BYTES}")
    _need(raw, pos + tag_bytes, "tags")
    raw_tags = raw[pos : pos + tag_bytes]
    tags = _checked_tags(raw_tags, tag_count)
    item = DataItem(signature_type, signature, owner, target, anchor, tags, b"", raw_tags)
    return item, pos + tag_bytes


def _unsigned_item(
    signer: Signer,
    target: str | bytes | None,
    anchor: str | bytes | None,
    tags: Sequence[tuple[str, str]],
) -> DataItem:
    sig_len, owner_len = _lengths(signer.signature_type)
    owner = bytes(signer.owner)
    if len(owner) != owner_len:
        raise ValueError(f"signature type {signer.signature_type} needs a {owner_len}-byte owner")
    tags = [(str(name), str(value)) for name, value in tags]
    raw_tags = encode_tags(tags)
    _checked_tags(raw_tags, len(tags))
    return DataItem(
        signature_type=signer.signature_type,
        signature=bytes(sig_len),
        owner=owner,
        target=b"" if target is None else _id_bytes(target, "target"),
        # arbundles takes a string anchor's UTF-8 bytes
        anchor=b"" if anchor is None else _id_bytes(_utf8(anchor), "anchor"),
        tags=tags,
        data=b"",
        raw_tags=raw_tags,
    )


def _utf8(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _sign(signer: Signer, item: DataItem, message: bytes) -> None:
    signature = bytes(signer.sign(message))
    if len(signature) != len(item.signature):
        raise ValueError(f"signer returned {len(signature)} bytes, expected {len(item.signature)}")
    item.signature = signature


def sign_data_item(
    signer: Signer,
    data: bytes | str,
    *,
    target: str | bytes | None = None,
    anchor: bytes | str | None = None,
    tags: Sequence[tuple[str, str]] = (),
) -> DataItem:
    """Build and sign an item. ``target`` is a 43-char id or 32 raw bytes; ``anchor`` 32 bytes."""
    item = _unsigned_item(signer, target, anchor, tags)
    item.data = _utf8(data)
    _sign(signer, item, item.signature_message())
    return item


def sign_stream(
    signer: Signer,
    chunks_factory: Callable[[], Iterable[bytes]],
    length: int,
    *,
    target: str | bytes | None = None,
    anchor: bytes | str | None = None,
    tags: Sequence[tuple[str, str]] = (),
) -> tuple[DataItem, bytes]:
    """Sign an item whose ``length`` data bytes come from ``chunks_factory()`` (read once).

    Returns the item (its ``data`` is b"" but its signature covers the streamed data) and the
    header bytes; the header followed by the data bytes is the full item.
    """
    item = _unsigned_item(signer, target, anchor, tags)
    _sign(signer, item, item._signature_message(deep_hash_stream(chunks_factory(), length)))
    return item, item.header_bytes()


def verify_stream(item: DataItem, chunks: Iterable[bytes], length: int) -> bool:
    """Verify an item from ``parse_header`` against its ``length`` data bytes given as chunks.

    False when the signature is bad or the chunks do not add up to ``length``.
    """
    try:
        data_hash = deep_hash_stream(chunks, length)
    except ValueError:
        return False
    return item._verify_message(item._signature_message(data_hash))


# --- bundles -----------------------------------------------------------------------------------


def _u256(raw: bytes, pos: int) -> int:
    return int.from_bytes(raw[pos : pos + 32], "little")


def parse_bundle(raw: bytes) -> list[DataItem]:
    """Parse an ANS-104 binary bundle; each header id must match its item's id."""
    raw = bytes(raw)
    _need(raw, 32, "bundle item count")
    count = _u256(raw, 0)
    entries_end = 32 + 64 * count
    _need(raw, entries_end, f"bundle header for {count} items")
    items: list[DataItem] = []
    pos = entries_end
    for index in range(count):
        entry = 32 + 64 * index
        size = _u256(raw, entry)
        expected_id = b64url_encode(raw[entry + 32 : entry + 64])
        _need(raw, pos + size, f"bundle item {index}")
        item = DataItem.parse(raw[pos : pos + size])
        if item.id != expected_id:
            raise InvalidDataItem(f"bundle item {index} has id {item.id}, header says {expected_id}")
        items.append(item)
        pos += size
    if pos != len(raw):
        raise InvalidDataItem(f"bundle has {len(raw) - pos} bytes after its last item")
    return items


def make_bundle(items: Sequence[DataItem]) -> bytes:
    """Serialise items into an ANS-104 binary bundle."""
    bodies = [item.to_bytes() for item in items]
    header = [len(items).to_bytes(32, "little")]
    for item, body in zip(items, bodies):
        header.append(len(body).to_bytes(32, "little"))
        header.append(hashlib.sha256(item.signature).digest())
    return b"".join(header + bodies)
