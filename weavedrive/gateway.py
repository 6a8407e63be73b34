"""A client for real Arweave gateways; everything it fetches is verified before the weave keeps it.

Gateways are tried in order (``Gateway("https://a,https://b")``); transient failures (connection
errors, timeouts, 5xx, 429) are retried with bounded exponential back-off, then the next gateway is
tried. Data items are fetched as:

1. the header from GraphQL ``transactions(ids: [ID])`` (signature, owner key, target, anchor,
   tags); the signature type follows from the key and signature lengths, and the Avro tag bytes are
   re-encoded the way arbundles writes them;
2. the size from ``HEAD /ID`` (``Accept-Encoding: identity``), falling back to ``HEAD /raw/ID`` when
   that fails or has no Content-Length;
3. the data by ranged ``GET``s, streamed into the weave while the deep hash is computed; short or
   over-long bodies are retried from where they stopped.

The weave keeps the item only if its signature verifies over the received bytes (and, when the
caller pins one, the data's sha256 matches). A gateway that serves other bytes is refused with
``GatewayError`` and the next one is tried. Plain Arweave (L1) transactions are refused: verifying
them needs the data root's merkle proof, which is not implemented; only ANS-104 data items are
served. ``tx`` and ``block`` return the gateway's JSON as metadata (not verified).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence

import httpx

from .ans104 import SIGNATURE_TYPES, DataItem, b64url_decode, encode_tags, verify_stream
from .store import StoredItem, WeaveStore

RANGE_SIZE = 8 * 1024 * 1024
RETRYABLE_STATUS = {429, 500, 502, 503, 504}

ITEM_QUERY = """query ($ids: [ID!]) {
  transactions(ids: $ids, first: 1) {
    edges { node { id signature anchor owner { address key } recipient tags { name value }
                   data { size type } bundledIn { id } } }
  }
}"""

EXISTS_QUERY = """query ($owners: [String!], $tags: [TagFilter!], $max: Int) {
  transactions(owners: $owners, tags: $tags, block: {min: 0, max: $max}, first: 1) {
    edges { node { id } }
  }
}"""


class GatewayError(Exception):
    """No configured gateway could give verified bytes (or an answer); the message says why."""


class _Unavailable(Exception):
    """One gateway failed in a way worth retrying."""


class Gateway:
    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        retries: int = 3,
        backoff: float = 0.5,
        timeout: float = 30.0,
        range_size: int = RANGE_SIZE,
        transport: httpx.BaseTransport | None = None,
    ):
        self.urls = [u.strip().rstrip("/") for u in (urls.split(",") if isinstance(urls, str) else urls) if u.strip()]
        if not self.urls:
            raise ValueError("no gateway URL given")
        self.retries = retries
        self.backoff = backoff
        self.range_size = range_size
        self._timeout = timeout
        self._transport = transport
        self._client_pid = None
        self._client = None

    @property
    def client(self) -> httpx.Client:
        # a forked child gets its own connection pool
        if self._client_pid != os.getpid():
            self._client = httpx.Client(timeout=self._timeout, transport=self._transport, follow_redirects=True)
            self._client_pid = os.getpid()
        return self._client

    # --- requests with retries -------------------------------------------------------------------

    def _request(self, method: str, url: str, **kwargs) -> httpx.Response:
        """One request with bounded retries on transient failures; other statuses are returned."""
        for attempt in range(self.retries + 1):
            try:
                response = self.client.request(method, url, **kwargs)
                if response.status_code not in RETRYABLE_STATUS:
                    return response
                failure = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        raise _Unavailable(f"{method} {url}: {failure} after {self.retries + 1} attempts")

    def _each_gateway(self, what: str, attempt):
        """``attempt(base_url)`` on each gateway in order; the first result that is not None wins."""
        reasons = []
        for base in self.urls:
            try:
                result = attempt(base)
            except (_Unavailable, GatewayError, ValueError) as exc:
                reasons.append(f"{base}: {exc}")
                continue
            if result is not None:
                return result
            reasons.append(f"{base}: not found")
        raise GatewayError(f"{what}: " + "; ".join(reasons))

    def _json(self, base: str, path: str):
        response = self._request("GET", base + path)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _Unavailable(f"GET {path}: HTTP {response.status_code}")
        return response.json()

    # --- metadata --------------------------------------------------------------------------------

    def tx(self, id: str) -> dict | None:
        try:
            return self._each_gateway(f"tx {id}", lambda base: self._json(base, f"/tx/{id}"))
        except GatewayError:
            return None

    def block(self, height: int) -> dict | None:
        try:
            return self._each_gateway(f"block {height}", lambda base: self._json(base, f"/block/height/{height}"))
        except GatewayError:
            return None

    def graphql(self, query: str, variables: dict) -> dict:
        def attempt(base: str) -> dict:
            response = self._request("POST", base + "/graphql", json={"query": query, "variables": variables})
            if response.status_code != 200:
                raise _Unavailable(f"POST /graphql: HTTP {response.status_code}")
            body = response.json()
            if body.get("errors"):
                raise GatewayError(f"GraphQL error: {body['errors'][0].get('message')}")
            return body["data"]

        return self._each_gateway("GraphQL query", attempt)

    def exists(self, *, owners: Sequence[str], tags: Sequence[tuple[str, Sequence[str]]], max_block: int) -> bool:
        variables = {
            "owners": list(owners),
            "tags": [{"name": name, "values": list(values)} for name, values in tags],
            "max": int(max_block),
        }
        try:
            return bool(self.graphql(EXISTS_QUERY, variables)["transactions"]["edges"])
        except GatewayError:
            return False

    def size(self, base: str, id: str) -> tuple[str, int] | None:
        """(path, size) from HEAD /ID, else HEAD /raw/ID; None when neither gives a Content-Length."""
        for path in (f"/{id}", f"/raw/{id}"):
            response = self._request("HEAD", base + path, headers={"Accept-Encoding": "identity"})
            length = response.headers.get("Content-Length")
            if response.status_code == 200 and length is not None and length.isdigit():
                return path, int(length)
        return None

    # --- data ------------------------------------------------------------------------------------

    def item_candidates(self, base: str, id: str) -> list[DataItem] | None:
        """The item's header from one gateway's GraphQL, one candidate per possible signature type."""
        response = self._request("POST", base + "/graphql", json={"query": ITEM_QUERY, "variables": {"ids": [id]}})
        if response.status_code != 200:
            raise _Unavailable(f"POST /graphql: HTTP {response.status_code}")
        edges = (response.json().get("data") or {}).get("transactions", {}).get("edges") or []
        if not edges:
            return None
        return header_candidates(edges[0]["node"], id)

    def _ranges(self, base: str, path: str, size: int) -> Iterator[bytes]:
        """The ``size`` bytes at ``path`` by ranged GETs, each range retried from where it stopped."""
        position = 0
        failures = 0
        while position < size:
            end = min(size, position + self.range_size) - 1
            try:
                received = 0
                with self.client.stream(
                    "GET", base + path, headers={"Range": f"bytes={position}-{end}", "Accept-Encoding": "identity"}
                ) as response:
                    if response.status_code not in (200, 206):
                        raise _Unavailable(f"GET {path}: HTTP {response.status_code}")
                    if response.status_code == 200 and position > 0:
                        raise GatewayError(f"GET {path}: range requests not supported")
                    limit = end + 1 - position
                    for chunk in response.iter_bytes(chunk_size=1024 * 1024):
                        chunk = chunk[: limit - received]  # a 200 sends everything: keep only this range
                        received += len(chunk)
                        position += len(chunk)
                        yield chunk
                        if received >= limit:
                            break
                if received < limit:
                    raise _Unavailable(f"GET {path}: body ended after {received} of {limit} bytes")
            except (httpx.TransportError, _Unavailable) as exc:
                failures += 1
                if failures > self.retries:
                    reason = str(exc) if isinstance(exc, _Unavailable) else f"GET {path}: {type(exc).__name__}: {exc}"
                    raise _Unavailable(f"{reason} (gave up after {failures} attempts)") from None
                time.sleep(self.backoff * 2 ** (failures - 1))

    def fetch(self, id: str, store: WeaveStore, expected_sha256: str | None = None) -> StoredItem:
        """Fetch a data item into the weave, verified; GatewayError if no gateway serves true bytes."""
        if store.has(id):
            return store.get(id)
        return self._each_gateway(f"fetch {id}", lambda base: self._fetch_from(base, id, store, expected_sha256))

    def _fetch_from(self, base: str, id: str, store: WeaveStore, expected_sha256: str | None) -> StoredItem | None:
        candidates = self.item_candidates(base, id)
        if candidates is None:
            return None
        located = self.size(base, id)
        if located is None:
            raise GatewayError(f"no Content-Length for {id} on HEAD /{id} or HEAD /raw/{id}")
        path, size = located
        with store.receiving() as incoming:
            received = incoming.tee(self._ranges(base, path, size))
            # the first candidate checks the bytes as they arrive; others re-read the received copy
            item = next(
                (c for i, c in enumerate(candidates) if verify_stream(c, received if i == 0 else incoming.read_back(), size)),
                None,
            )
            if item is None:
                raise GatewayError(f"{base} returned {incoming.size} bytes for {id} that do not match its signature")
            actual = incoming.finish()
            if expected_sha256 is not None and actual != expected_sha256:
                raise GatewayError(f"{base} returned data for {id} with sha256 {actual}, expected {expected_sha256}")
            return store.commit(item, incoming)


def header_candidates(node: dict, id: str) -> list[DataItem]:
    """DataItem headers (no data) rebuilt from a GraphQL node, one per signature type its sizes fit."""
    if node.get("id") != id:
        raise GatewayError(f"GraphQL answered for {node.get('id')!r} when asked for {id}")
    if not node.get("bundledIn"):
        raise GatewayError(
            f"{id} is a plain Arweave transaction: only ANS-104 data items can be verified (no data-root proofs)"
        )
    signature = b64url_decode(node["signature"])
    owner = b64url_decode(node["owner"]["key"])
    types = [t for t, lengths in SIGNATURE_TYPES.items() if lengths == (len(signature), len(owner))]
    if not types:
        raise GatewayError(f"{id}: no signature type has a {len(signature)}-byte signature and a {len(owner)}-byte key")
    target = b64url_decode(node["recipient"]) if node.get("recipient") else b""
    anchor = b64url_decode(node["anchor"]) if node.get("anchor") else b""
    tags = [(t["name"], t["value"]) for t in node.get("tags") or ()]
    items = [DataItem(t, signature, owner, target, anchor, tags, b"", encode_tags(tags)) for t in types]
    if items[0].id != id:
        raise GatewayError(f"GraphQL gave a signature for {id} whose id is {items[0].id}")
    return items
