"""require("weavedrive") inside the sandboxed VM: aos client API, io.open files, refs, halts."""

import types

import pytest

from weavedrive.blob import Blob, to_blob
from tfao.bridges.context import bridge_sources
from tfao.sandbox.luavm import LuaError, LuaVM, bundled_sources
from tfao.bridges.weavedrive import WeaveDrive, blob_resolver, bridge_functions, manifest_of
from weavedrive.store import WeaveStore
from weavedrive.wallet import Ed25519Signer

SIGNER = Ed25519Signer.from_private_bytes(b"\x05" * 32)
DATA = b"first line\nsecond\n" + bytes(range(256))
MODULE = {"id": "M" * 43, "owner": "o", "tags": []}


def make_vm(store, *tags, height=None):
    proc = {"id": "P" * 43, "owner": "o", "tags": [("Scheduler", SIGNER.address), *tags]}
    context = types.SimpleNamespace(
        drive=WeaveDrive.for_process(store, proc, MODULE),
        process=proc,
        module=MODULE,
        block_height=lambda: store.current_height() if height is None else height,
        timestamp=lambda: 0,
    )
    return LuaVM(bridges={"weavedrive": bridge_functions(context)}, sources=bundled_sources() | bridge_sources()), context


@pytest.fixture
def store(tmp_path):
    return WeaveStore(tmp_path)


@pytest.fixture
def item(store):
    stored = store.add_bytes(DATA, SIGNER, [("Name", "blob")])
    store.add_bytes(b"", SIGNER, [("Data-Protocol", "ao"), ("Type", "Attestation"), ("Message", stored.id)])
    return stored


def run(vm, code, *args):
    return vm.execute(code % args)


def test_aos_client_reads(store, item):
    vm, _ = make_vm(store, ("Extension", "WeaveDrive"))
    data, tx_id, owner, height, missing_block, message = run(vm, """
        local drive = require("weavedrive")
        local tx = drive.getTx("%s")
        local _, err = drive.getBlock(99)
        return drive.getData("%s"), tx.id, tx.ownerAddress, drive.getBlock(1).height, _, err
    """, item.id, item.id)
    assert data == DATA and tx_id == item.id.encode() and owner == SIGNER.address.encode()
    assert (height, missing_block, message) == (1, None, b"Block Header not found!")
    assert run(vm, 'return require("weavedrive").getTx("%s")', "q" * 43) == (None, b"File not found!")
    assert run(vm, 'return require("weavedrive").getData("short")') == (None, b"File not found!")


def test_io_open_like_aos(store, item):
    vm, _ = make_vm(store, ("Extension", "WeaveDrive"))
    results = run(vm, """
        local f = assert(io.open("/data/%s"))
        local whole = f:read(f:seek("end"))
        f:seek("set", 0)
        local a, b = f:read("l", "L")
        local n = f:read(3)
        f:seek("cur", -1)
        local rest = f:read("a")
        local eof1, eof2 = f:read(1), f:read("a")
        f:close()
        local ok = pcall(f.read, f, "a")
        return whole, a, b, n, rest, eof1, eof2, ok
    """, item.id)
    assert results == (DATA, b"first line", b"second\n", DATA[18:21], DATA[20:], None, b"", False)
    tx = run(vm, 'local f = io.open("/tx/%s"); return f:read("a")', item.id)
    assert b'"ownerAddress"' in tx
    assert run(vm, 'return io.open("/block/1", "rb"):read("a")').startswith(b'{"height":1')
    assert run(vm, 'return io.open("/data/%s", "w")', item.id)[0] is None
    assert run(vm, 'return io.open("/etc/passwd")')[:2] == (None, b"/etc/passwd: No such file or directory")


def test_fd_api_is_binary_safe(store, item):
    vm, _ = make_vm(store, ("Extension", "WeaveDrive"))
    data = run(vm, """
        local wd = require("weavedrive")
        local fd = wd.open("/data/%s")
        local s = wd.read(fd)
        wd.close(fd)
        return s
    """, item.id)
    assert data == DATA


def test_inadmissible_read_halts(store, item):
    vm, _ = make_vm(store)  # no Extension: WeaveDrive
    with pytest.raises(LuaError, match="HALT: FILE NOT FOUND"):
        run(vm, 'return require("weavedrive").getData("%s")', item.id)
    with pytest.raises(LuaError, match="HALT: FILE NOT FOUND"):
        run(vm, 'return io.open("/data/%s")', item.id)


def test_future_headers_are_hidden(store, item):
    vm, _ = make_vm(store, ("Extension", "WeaveDrive"), height=0)
    assert run(vm, 'return require("weavedrive").getTx("%s")', item.id) == (None, b"File not found!")
    assert run(vm, 'return require("weavedrive").getBlock(1)') == (None, b"Block Header not found!")


def test_ref_is_a_file_backed_blob(store, item):
    vm, context = make_vm(store, ("Extension", "WeaveDrive"))
    ref = run(vm, 'return require("weavedrive").ref("%s")', item.id)
    assert isinstance(ref, Blob) and ref.path == item.data_path and ref.sha256 == item.sha256
    assert to_blob(item.id, resolve_id=blob_resolver(context)).read() == DATA
    assert manifest_of(ref) is None
