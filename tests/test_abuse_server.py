"""The node cannot be starved: waiting for results holds no thread, idle connections close, processes
and connections are capped, and bad numbers are refused with a 400."""

import asyncio
import contextlib
import socket
import threading
import time

import httpx
import pytest

from tfao.http import server as server_module
from tfao.http.server import MAX_RESULT_WAITERS_PER_CLIENT, bind, uvicorn_server
from tfao.node.node import Node, NodeBusy, QuotaExceeded

IDLE = 1  # seconds: the idle-connection timeout in these tests
MAX_CONNECTIONS = 20


def output(result):
    return result["Output"]["data"] if isinstance(result["Output"], dict) else result["Output"]


@contextlib.contextmanager
def running(node, monkeypatch, *, max_connections=None):
    """``node`` served on a free loopback port (idle timeout IDLE); yields (url, address)."""
    monkeypatch.setattr(server_module, "IDLE_TIMEOUT", IDLE)
    if max_connections is not None:
        monkeypatch.setattr(server_module, "connection_cap", lambda: max_connections)
    server = uvicorn_server(node)
    listener = bind("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", listener.getsockname()
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def served(ao_node, monkeypatch):
    with running(ao_node, monkeypatch, max_connections=MAX_CONNECTIONS) as (url, address):
        yield ao_node, url, address


def test_result_waiters_hold_no_thread_and_are_capped_per_client(ao_node, monkeypatch, wallets):
    with running(ao_node, monkeypatch) as (url, _):
        starve(ao_node, url, wallets[0])


def starve(node, url, owner):
    busy, bystander = node.spawn(wallet=owner), node.spawn(wallet=owner)
    busy.eval("Handlers.add('Slow', function() local t = os.clock(); while os.clock() - t < 0.5 do end end)",
              wallet=owner)
    slow = busy.message("Slow", wallet=owner)
    waiters = MAX_RESULT_WAITERS_PER_CLIENT + 20

    async def attack():
        limits = httpx.Limits(max_connections=waiters + 10)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
            waiting = [asyncio.create_task(http.get(f"/result/{slow}", params={"process-id": busy.id}))
                       for _ in range(waiters)]
            await asyncio.sleep(0.5)
            started = time.monotonic()
            assert (await http.get("/")).status_code == 200  # routes that do not wait are not capped
            mid = await asyncio.to_thread(bystander.message, "Eval", data="'quick'", wallet=owner)
            # another client address (loopback has them all) may still wait
            other = httpx.AsyncClient(base_url=url, timeout=60,
                                      transport=httpx.AsyncHTTPTransport(local_address="127.0.0.2"))
            async with other:
                quick = (await other.get(f"/result/{mid}", params={"process-id": bystander.id})).json()
            took = time.monotonic() - started
            return [r.status_code for r in await asyncio.gather(*waiting)], quick, took

    statuses, quick, took = asyncio.run(attack())
    assert output(quick) == "quick" and took < 10
    assert statuses.count(200) == MAX_RESULT_WAITERS_PER_CLIENT
    assert statuses.count(429) == 20


def test_idle_connections_are_closed(served):
    _, _, address = served
    idle = [socket.create_connection(address) for _ in range(10)]
    time.sleep(IDLE + 1)
    for connection in idle:
        connection.settimeout(2)
        assert connection.recv(1) == b""  # closed by the node
        connection.close()


def test_a_request_head_that_trickles_in_is_cut_off(served):
    _, url, address = served
    slow = socket.create_connection(address)
    slow.settimeout(0.1)
    started, closed = time.monotonic(), False
    for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
        try:
            slow.sendall(bytes([byte]))
            closed = slow.recv(1) == b""
        except TimeoutError:
            pass
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        if closed:
            break
    slow.close()
    assert closed and time.monotonic() - started < IDLE + 3
    assert httpx.get(url + "/", timeout=10).status_code == 200  # whole requests are still served


def test_connections_past_the_cap_are_closed_at_once(served):
    _, url, address = served
    idle = [socket.create_connection(address) for _ in range(MAX_CONNECTIONS + 5)]
    time.sleep(0.3)
    closed = 0
    for connection in idle:
        connection.settimeout(0.05)
        try:
            closed += connection.recv(1) == b""
        except ConnectionResetError:  # aborted
            closed += 1
        except TimeoutError:  # still open, waiting for a request
            pass
    assert closed >= 5
    for connection in idle:
        connection.close()
    assert httpx.get(url + "/", timeout=10).status_code == 200


@pytest.mark.parametrize("path", [
    "/block/height/99999999999999999999999",
    "/results/{pid}?from=9999999999999999999999999",
    "/results/{pid}?to=9999999999999999999999999",
])
def test_numbers_out_of_range_are_a_400(served, wallets, path):
    node, url, _ = served
    pid = node.spawn(wallet=wallets[0]).id
    response = httpx.get(url + path.format(pid=pid), timeout=10)
    assert response.status_code == 400, response.text
    assert "999999999999" in response.json()["error"]


@pytest.mark.parametrize("path", ["/block/height/%C2%B2", "/results/{pid}?from=%C2%B2", "/results/{pid}?limit=%C2%B2"])
def test_digits_outside_ascii_are_a_400(served, wallets, path):
    node, url, _ = served  # "²" passes str.isdigit, and int() refuses it
    pid = node.spawn(wallet=wallets[0]).id
    assert httpx.get(url + path.format(pid=pid), timeout=10).status_code == 400


def test_processes_are_capped_per_owner_and_in_total(wallets):
    with Node(wallet=wallets[3], max_processes=4, max_processes_per_owner=2) as node:
        first = node.spawn(wallet=wallets[0])
        node.spawn(wallet=wallets[0])
        with pytest.raises(QuotaExceeded, match="2 processes"):
            node.spawn(wallet=wallets[0])
        node.spawn(wallet=wallets[1])
        result = first.eval('Spawn(ao.env.Module.Id, {}); Spawn(ao.env.Module.Id, {})', wallet=wallets[0])
        assert [r["Kind"] for r in result["Refused"]] == ["Spawns"]  # the second is past the total
        with pytest.raises(NodeBusy, match="at most 4 processes"):
            node.spawn(wallet=wallets[2])
        assert output(first.eval("1 + 1", wallet=wallets[0])) == "2"


def test_waiters_past_the_total_cap_get_a_503_and_busy_dry_runs_a_503(ao_node, monkeypatch, wallets):
    monkeypatch.setattr(server_module, "MAX_RESULT_WAITERS", 3)
    monkeypatch.setattr("tfao.node.node.DRYRUN_QUEUE_WAIT", 0.1)
    monkeypatch.setattr(ao_node, "dryrun_slots", threading.BoundedSemaphore(1))
    owner = wallets[0]
    busy = ao_node.spawn(wallet=owner)
    busy.eval("Handlers.add('Slow', function() local t = os.clock(); while os.clock() - t < 0.3 do end end)",
              wallet=owner)
    slow = busy.message("Slow", wallet=owner)
    with running(ao_node, monkeypatch) as (url, _):
        async def attack():
            async with httpx.AsyncClient(base_url=url, timeout=60) as http:
                waiting = [asyncio.create_task(http.get(f"/result/{slow}", params={"process-id": busy.id}))
                           for _ in range(5)]
                responses = await asyncio.gather(*waiting)
                return [r.status_code for r in responses], responses
        statuses, responses = asyncio.run(attack())
        assert sorted(statuses) == [200, 200, 200, 503, 503]
        refused = next(r for r in responses if r.status_code == 503)
        assert refused.headers["Retry-After"] == "1" and "already waiting" in refused.json()["error"]
        ao_node.dryrun_slots.acquire()  # a dry-run is running
        dry = httpx.post(url + "/dry-run", params={"process-id": busy.id}, json={"Tags": []}, timeout=30)
        ao_node.dryrun_slots.release()
        assert dry.status_code == 503 and "dry-runs are already running" in dry.json()["error"]
