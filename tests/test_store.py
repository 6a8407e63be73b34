"""The local weave: verified ingestion, the block counter, queries, tamper detection, fork safety."""

import os
import sqlite3

import pytest

from weavedrive.ans104 import DataItem, InvalidDataItem, sign_data_item
from weavedrive.store import INLINE_BYTES, ItemNotFound, TamperedData, WeaveStore
from weavedrive.wallet import Ed25519Signer, premade_wallets

SIGNER = Ed25519Signer.from_private_bytes(b"\x07" * 32)
LARGE = INLINE_BYTES + 1  # the fewest data bytes kept in a file of their own


@pytest.fixture
def store(tmp_path):
    return WeaveStore(tmp_path)


def test_each_item_gets_the_next_block(store):
    assert store.current_height() == 0
    first = store.add_bytes(b"one", SIGNER, [("Name", "a")])
    second = store.add_bytes(b"two", SIGNER)
    assert (first.block, second.block, store.current_height()) == (1, 2, 2)
    block = store.block(2)
    assert block["txs"] == [second.id] and block["previous_block"] == store.block(1)["indep_hash"]
    assert store.block(2) == block  # deterministic once made
    with pytest.raises(ItemNotFound, match="block 3 not found"):
        store.block(3)


def test_add_file_streams_and_keeps_a_plain_data_file(store, tmp_path, monkeypatch):
    monkeypatch.setattr("weavedrive.store.CHUNK_SIZE", 1000)
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(LARGE + 10_500))
    stored = store.add_file(source, premade_wallets()[1], [("Content-Type", "application/octet-stream")])
    assert stored.data_path.read_bytes() == source.read_bytes()
    assert stored.size == LARGE + 10_500 and stored.owner_address == premade_wallets()[1].address
    assert store.verify(stored.id) == stored
    # the whole signed item parses and verifies on its own
    assert DataItem.parse(store.raw_item_bytes(stored.id)).verify()


def test_add_item_verifies_and_is_idempotent(store):
    item = sign_data_item(SIGNER, b"payload", tags=[("A", "1")])
    assert store.add_item(item).id == item.id
    assert store.add_item(item).block == 1 and store.current_height() == 1
    item.data = b"payloaD"
    with pytest.raises(InvalidDataItem, match="signature does not verify"):
        store.add_item(item)


def test_query_filters_sort_and_cursor(store):
    alice, bob = Ed25519Signer.generate(), Ed25519Signer.generate()
    a1 = store.add_bytes(b"1", alice, [("Type", "Process"), ("Name", "x")])
    b1 = store.add_bytes(b"2", bob, [("Type", "Process"), ("Name", "y")])
    a2 = store.add_bytes(b"3", alice, [("Type", "Message")], target=a1.id)
    ids = lambda items: [i.id for i in items]  # noqa: E731
    assert ids(store.query()) == [a2.id, b1.id, a1.id]
    assert ids(store.query(sort="HEIGHT_ASC")) == [a1.id, b1.id, a2.id]
    assert ids(store.query(owners=[alice.address])) == [a2.id, a1.id]
    assert ids(store.query(tags=[("Type", ["Process"]), ("Name", ["y", "z"])])) == [b1.id]
    assert ids(store.query(recipients=[a1.id])) == [a2.id]
    assert ids(store.query(min_block=2, max_block=2)) == [b1.id]
    page = store.query(first=2)
    assert ids(page) == [a2.id, b1.id] and ids(store.query(after=page[-1].cursor)) == [a1.id]
    assert store.query(ids=[a1.id])[0].tags_dict() == {"Type": "Process", "Name": "x"}


def test_tampered_data_is_refused(store):
    honest = b"honest bytes".ljust(LARGE, b".")
    stored = store.add_bytes(honest, SIGNER)
    assert store.data_blob(stored.id).read() == honest
    os.chmod(stored.data_path, 0o644)
    stored.data_path.write_bytes(honest.replace(b"s", b"Z", 1))
    with pytest.raises(TamperedData, match="modified on disk"):
        store.data_blob(stored.id)
    with pytest.raises(TamperedData):
        store.verify(stored.id)
    stored.data_path.unlink()
    with pytest.raises(TamperedData, match="missing"):
        store.data_blob(stored.id)


def test_unchanged_file_is_not_rehashed(store, monkeypatch):
    stored = store.add_bytes(b"x" * LARGE, SIGNER)
    monkeypatch.setattr("weavedrive.store.sha256_file", lambda path: pytest.fail("re-hashed"))
    assert store.data_blob(stored.id).size == LARGE


def test_same_bytes_rewritten_are_rehashed_once_and_accepted(store, monkeypatch):
    same = b"same" * LARGE
    stored = store.add_bytes(same, SIGNER)
    os.chmod(stored.data_path, 0o644)
    stored.data_path.write_bytes(same)  # ctime changes: hashed again, still the right bytes
    assert store.data_blob(stored.id).read() == same
    monkeypatch.setattr("weavedrive.store.sha256_file", lambda path: pytest.fail("re-hashed"))
    store.data_blob(stored.id)


def test_small_data_is_kept_in_the_index_and_checked_at_every_read(store, tmp_path):
    item = sign_data_item(SIGNER, b"a small message".ljust(INLINE_BYTES, b"."), tags=[("Action", "Ping")])
    stored = store.add_item(item)
    assert stored.data_path is None and not any((tmp_path / "weave" / "data").iterdir())  # no file made
    assert store.read_data(item.id, 2, 5) == b"small" and store.data_blob(item.id).read() == item.data
    assert DataItem.parse(store.raw_item_bytes(item.id)).verify() and store.verify(item.id) == stored
    exported = tmp_path / "exported"
    store.export(item.id, exported)
    assert exported.read_bytes() == item.data
    with sqlite3.connect(tmp_path / "weave" / "index.sqlite") as index:
        index.execute("UPDATE items SET data = ? WHERE id = ?", (b"a forged message", item.id))
    with pytest.raises(TamperedData, match="in the index was modified"):
        store.data_blob(item.id)
    with pytest.raises(TamperedData):
        store.verify(item.id)


def test_an_index_from_before_small_data_was_kept_in_it_opens_and_reads(tmp_path):
    store = WeaveStore(tmp_path)
    old = store.add_bytes(b"x" * LARGE, SIGNER)
    with sqlite3.connect(tmp_path / "weave" / "index.sqlite") as index:
        index.execute("ALTER TABLE items DROP COLUMN data")
    reopened = WeaveStore(tmp_path)
    assert reopened.data_blob(old.id).read() == b"x" * LARGE
    assert reopened.add_bytes(b"small", SIGNER).data_path is None


def test_unknown_id(store):
    with pytest.raises(ItemNotFound, match="not in the local weave"):
        store.get("z" * 43)


def test_forked_child_uses_its_own_connection(store):
    store.add_bytes(b"parent", SIGNER)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: add an item through the inherited store object
        try:
            item = store.add_bytes(b"child", SIGNER)
            os.write(write, item.id.encode())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    child_id = os.read(read, 64).decode()
    assert store.get(child_id).block == 2 and store.current_height() == 2
    assert store.add_bytes(b"parent again", SIGNER).block == 3


def test_tx_json_has_base64url_tags_and_owner_address(store):
    stored = store.add_bytes(b"x", SIGNER, [("Name", "n")])
    tx = stored.tx_json()
    assert tx["id"] == stored.id and tx["ownerAddress"] == SIGNER.address
    assert tx["tags"] == [{"name": "TmFtZQ", "value": "bg"}] and tx["data_size"] == "1"
