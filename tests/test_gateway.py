"""The gateway client against real HTTP servers on loopback, honest and lying."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from weavedrive.ans104 import b64url_encode, sign_data_item
from weavedrive.gateway import Gateway, GatewayError
from weavedrive.store import WeaveStore
from weavedrive.wallet import Ed25519Signer, premade_wallets


class FakeGateway(ThreadingHTTPServer):
    """Serves data items like an Arweave gateway; ``behaviour`` makes it lie in one way."""

    daemon_threads = True

    def __init__(self, items, behaviour=()):
        super().__init__(("127.0.0.1", 0), GatewayHandler)
        self.items = {item.id: item for item in items}
        self.behaviour = set(behaviour)
        self.requests = []

    def handle_error(self, request, client_address):
        pass  # clients hanging up on a slow or lying server are part of the tests

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class GatewayHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", headers=(), length=True):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _item(self):
        return self.server.items.get(self.path.rsplit("/", 1)[-1])

    def do_HEAD(self):
        self.server.requests.append(("HEAD", self.path))
        item = self._item()
        if item is None:
            return self._send(404)
        if "no-length-on-id" in self.server.behaviour and not self.path.startswith("/raw/"):
            self.send_response(200)
            self.end_headers()
            return
        self._send(200, item.data)

    def do_GET(self):
        self.server.requests.append(("GET", self.path, self.headers.get("Range")))
        behaviour = self.server.behaviour
        if "slow" in behaviour:
            time.sleep(3.0)  # well past the clients' timeout below, even on a loaded machine
        if self.path.startswith("/block/height/"):
            return self._send(200, json.dumps({"height": int(self.path.rsplit("/", 1)[1])}).encode())
        item = self._item()
        if item is None:
            return self._send(404)
        if self.path.startswith("/tx/"):
            return self._send(200, json.dumps({"id": item.id}).encode())
        data = item.data
        if "wrong-bytes" in behaviour:
            data = data[:-1] + bytes([data[-1] ^ 1])
        start, end = (int(x) for x in self.headers["Range"].removeprefix("bytes=").split("-"))
        body = data[start : end + 1]
        if "truncate-once" in behaviour and len(body) > 1:
            behaviour.discard("truncate-once")
            self.send_response(206)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self._send(206, body, [("Content-Range", f"bytes {start}-{end}/{len(data)}")])

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(("POST", self.path, request["variables"]))
        variables = request["variables"]
        if "ids" in variables:
            edges = [{"node": graphql_node(self.server.items[i])} for i in variables["ids"] if i in self.server.items]
        else:
            edges = [
                {"node": {"id": item.id}}
                for item in self.server.items.values()
                if item.owner_address in variables["owners"]
                and all(item.tag(t["name"]) in t["values"] for t in variables["tags"])
            ]
        self._send(200, json.dumps({"data": {"transactions": {"edges": edges}}}).encode())


def graphql_node(item):
    return {
        "id": item.id,
        "signature": b64url_encode(item.signature),
        "anchor": b64url_encode(item.anchor),
        "owner": {"address": item.owner_address, "key": b64url_encode(item.owner)},
        "recipient": item.target_id or "",
        "tags": [{"name": n, "value": v} for n, v in item.tags],
        "data": {"size": str(len(item.data))},
        "bundledIn": {"id": "B" * 43},
    }


@pytest.fixture
def serve():
    servers = []

    def start(items, behaviour=()):
        server = FakeGateway(items, behaviour)
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def store(tmp_path):
    return WeaveStore(tmp_path)


def gateway(*servers, **kwargs):
    options = {"retries": 2, "backoff": 0.001, "range_size": 1000, "timeout": 5} | kwargs
    return Gateway(",".join(s.url for s in servers), **options)


ED_ITEM = sign_data_item(Ed25519Signer.from_private_bytes(bytes(range(32))), bytes(range(256)) * 17,
                         tags=[("Content-Type", "application/octet-stream")], anchor=b"a" * 32)
RSA_ITEM = sign_data_item(premade_wallets()[0], b"model weights" * 300, target="T" * 43,
                          tags=[("Data-Protocol", "ao"), ("Type", "Attestation")])


@pytest.mark.parametrize("item", [ED_ITEM, RSA_ITEM], ids=["ed25519", "rsa"])
def test_fetch_verifies_and_stores_in_ranges(serve, store, item):
    server = serve([item])
    stored = gateway(server).fetch(item.id, store)
    assert stored.id == item.id and store.data_blob(item.id).read() == item.data
    assert stored.tags == item.tags and stored.target == item.target_id
    ranges = [r[2] for r in server.requests if r[0] == "GET"]
    assert ranges[0] == "bytes=0-999" and len(ranges) == -(-len(item.data) // 1000)


def test_wrong_bytes_are_refused_and_next_gateway_used(serve, store):
    liar, honest = serve([ED_ITEM], {"wrong-bytes"}), serve([ED_ITEM])
    with pytest.raises(GatewayError, match="do not match its signature"):
        gateway(liar).fetch(ED_ITEM.id, store)
    assert not store.has(ED_ITEM.id)
    assert gateway(liar, honest).fetch(ED_ITEM.id, store).sha256 == store.get(ED_ITEM.id).sha256
    assert store.verify(ED_ITEM.id)


def test_lying_header_is_refused(serve, store):
    other = sign_data_item(Ed25519Signer.generate(), ED_ITEM.data)
    server = serve([ED_ITEM])
    server.items = {other.id: ED_ITEM}  # asked for `other`, answers with ED_ITEM's header
    with pytest.raises(GatewayError, match="answered for"):
        gateway(server).fetch(other.id, store)


def test_pinned_sha256_mismatch_is_refused(serve, store):
    with pytest.raises(GatewayError, match="sha256"):
        gateway(serve([ED_ITEM])).fetch(ED_ITEM.id, store, expected_sha256="0" * 64)
    assert not store.has(ED_ITEM.id)


def test_missing_content_length_falls_back_to_raw(serve, store):
    server = serve([ED_ITEM], {"no-length-on-id"})
    gateway(server).fetch(ED_ITEM.id, store)
    heads = [r[1] for r in server.requests if r[0] == "HEAD"]
    assert heads == [f"/{ED_ITEM.id}", f"/raw/{ED_ITEM.id}"]
    assert all(r[1] == f"/raw/{ED_ITEM.id}" for r in server.requests if r[0] == "GET")


def test_truncated_body_is_resumed(serve, store):
    server = serve([ED_ITEM], {"truncate-once"})
    assert gateway(server).fetch(ED_ITEM.id, store).size == len(ED_ITEM.data)
    ranges = [r[2] for r in server.requests if r[0] == "GET"]
    # the cut range is asked for again (from where the delivered bytes stopped)
    assert ranges[0] == "bytes=0-999" and ranges[1] in ("bytes=0-999", "bytes=500-1499")
    assert len(ranges) == -(-len(ED_ITEM.data) // 1000) + 1


def test_slow_gateway_times_out_then_next_is_used(serve, store):
    slow, honest = serve([ED_ITEM], {"slow"}), serve([ED_ITEM])
    started = time.monotonic()
    with pytest.raises(GatewayError, match="ReadTimeout"):
        gateway(slow, timeout=1.0, retries=1).fetch(ED_ITEM.id, store)
    assert gateway(slow, honest, timeout=1.0, retries=0).fetch(ED_ITEM.id, store).id == ED_ITEM.id
    assert time.monotonic() - started < 15  # bounded: two timed-out attempts and one fallback, not the 3 s waits


def test_unknown_id_and_dead_gateway_give_clear_errors(serve, store):
    with pytest.raises(GatewayError, match="not found"):
        gateway(serve([])).fetch("x" * 43, store)
    with pytest.raises(GatewayError, match="ConnectError"):
        Gateway("http://127.0.0.1:9", retries=1, backoff=0.001).fetch("x" * 43, store)


def test_plain_transactions_are_refused(serve, store):
    server = serve([ED_ITEM])
    node = graphql_node(ED_ITEM) | {"bundledIn": None}
    from weavedrive.gateway import header_candidates

    with pytest.raises(GatewayError, match="plain Arweave transaction"):
        header_candidates(node, ED_ITEM.id)
    assert server.url


def test_metadata_and_graphql_exists(serve):
    client = gateway(serve([RSA_ITEM]))
    assert client.tx(RSA_ITEM.id) == {"id": RSA_ITEM.id}
    assert client.tx("y" * 43) is None
    assert client.block(7) == {"height": 7}
    tags = [("Type", ["Attestation"]), ("Data-Protocol", ["ao"])]
    assert client.exists(owners=[RSA_ITEM.owner_address], tags=tags, max_block=10)
    assert not client.exists(owners=["nobody"], tags=tags, max_block=10)
