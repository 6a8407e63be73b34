"""An AO node over HTTP: the messenger, compute unit and gateway protocols, as aoconnect speaks them.

``RemoteNode`` offers the calls of ``tfao.node.Node`` that a client needs (``spawn``, ``message``,
``result``, ``results``, ``dryrun``, ``processes``) against ``tfao serve`` or legacy AO units:

* messenger: ``POST /`` with a signed ANS-104 item (processes and messages);
* compute unit: ``GET /result/<id>?process-id=``, ``GET /results/<pid>``, ``POST /dry-run?process-id=``,
  ``GET /`` for the unit's address;
* gateway: ``POST /graphql`` for modules and processes by tag.

Items are signed here with the caller's wallet, so the node never sees the key.
"""

from __future__ import annotations

import json
import time

import httpx

from tfao.protocol import MODULE_FORMAT, VARIANT, ao_tags, data_or_space, first_tag, tag_list
from weavedrive.ans104 import sign_data_item
from weavedrive.wallet import Wallet

# a compute unit may answer 202 while it is still evaluating; ask again after this long
BUSY_RETRY_SECONDS = 0.25

TRANSACTIONS_QUERY = """query ($owners: [String!]!) {
  transactions(first: %d, owners: $owners, tags: [%s]) {
    edges { node { id owner { address } tags { name value } } }
  }
}"""


def dryrun_body(owner: str, data: str, tags=None) -> dict:
    """The message aoconnect's dryrun posts (unsigned: the unit believes ``Owner``)."""
    protocol = [("Data-Protocol", "ao"), ("Type", "Message"), ("Variant", VARIANT)]
    return {"Id": "1234", "Owner": owner, "Anchor": "0", "Data": data or "1234",
            "Tags": [{"name": n, "value": v} for n, v in tag_list(tags) + protocol]}


class ClientError(Exception):
    """A unit refused a request or could not be reached; the message says which and why."""


class RemoteNode:
    """A client of the AO unit protocols, signing with ``wallet``.

    ``url`` serves all three roles (as ``tfao serve`` does); ``mu_url``, ``cu_url`` and
    ``gateway_url`` override it per role, for separate legacy units.
    """

    def __init__(self, url: str | None = None, *, wallet: Wallet, mu_url: str | None = None,
                 cu_url: str | None = None, gateway_url: str | None = None, scheduler: str | None = None,
                 timeout: float = 60):
        self.mu_url = (mu_url or url or "").rstrip("/")
        self.cu_url = (cu_url or url or "").rstrip("/")
        self.gateway_url = (gateway_url or url or "").rstrip("/")
        if not (self.mu_url and self.cu_url and self.gateway_url):
            raise ClientError("a node URL is needed (or the messenger, compute unit and gateway URLs)")
        self.wallet = wallet
        self.address = wallet.address
        self._scheduler = scheduler
        self.http = httpx.Client(timeout=timeout, follow_redirects=True)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "RemoteNode":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ HTTP
    def _request(self, method: str, url: str, **kwargs) -> httpx.Response:
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach {url}: {exc}") from None
        if response.status_code >= 400:
            raise ClientError(f"{method} {url} failed with {response.status_code}: {response.text.strip()[:500]}")
        return response

    def _json(self, method: str, url: str, **kwargs):
        response = self._request(method, url, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ClientError(f"{method} {url} answered with something that is not JSON") from None

    # ------------------------------------------------------------------ messenger
    def submit(self, item) -> str:
        """Post a signed item to the messenger; returns its id."""
        self._request("POST", self.mu_url + "/", content=item.to_bytes(),
                      headers={"Content-Type": "application/octet-stream", "Accept": "application/json"})
        return item.id

    def spawn(self, *, module: str | None = None, tags=None, data: str | bytes = "", name: str | None = None) -> str:
        """Sign and post a process as aoconnect's spawn does; returns the process id."""
        user_tags = tag_list(tags) + ([("Name", name)] if name is not None else [])
        item = sign_data_item(self.wallet, data_or_space(data), tags=ao_tags(user_tags, data, [
            ("Data-Protocol", "ao"), ("Variant", VARIANT), ("Type", "Process"),
            ("Module", module or self.default_module()), ("Scheduler", self.scheduler()),
        ]))
        return self.submit(item)

    def message(self, process: str, *, data: str | bytes = "", tags=None) -> str:
        """Sign and post a message as aoconnect's message does; returns its id."""
        item = sign_data_item(self.wallet, data_or_space(data), target=process, tags=ao_tags(
            tag_list(tags), data, [("Data-Protocol", "ao"), ("Variant", VARIANT), ("Type", "Message")]))
        return self.submit(item)

    # ------------------------------------------------------------------ compute unit
    def scheduler(self) -> str:
        """The address processes are scheduled by: given, or the unit's own (``GET /``)."""
        if self._scheduler is None:
            self._scheduler = self._json("GET", self.cu_url + "/").get("address")
            if not self._scheduler:
                raise ClientError(f"{self.cu_url} did not say its address: pass a scheduler address")
        return self._scheduler

    def result(self, pid: str, message_id: str, timeout: float | None = None) -> dict:
        """The result of a message (the unit blocks until it is evaluated, or answers 202 busy)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        url = f"{self.cu_url}/result/{message_id}"
        while True:
            response = self._request("GET", url, params={"process-id": pid}, headers={"Accept": "application/json"})
            if response.status_code != 202:
                return response.json()
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"message {message_id} has not been evaluated yet")
            time.sleep(BUSY_RETRY_SECONDS)

    def results(self, pid: str, *, from_: str | None = None, to: str | None = None, sort: str = "ASC",
                limit: int = 25) -> dict:
        params = {"from": from_, "to": to, "sort": sort, "limit": limit}
        return self._json("GET", f"{self.cu_url}/results/{pid}",
                          params={k: v for k, v in params.items() if v is not None})

    def dryrun(self, pid: str, message: dict) -> dict:
        body = {"Target": pid, **message}
        return self._json("POST", f"{self.cu_url}/dry-run", params={"process-id": pid}, json=body)

    # ------------------------------------------------------------------ gateway
    def transactions(self, owners: list[str], tags: list[tuple[str, str]], first: int = 10) -> list[dict]:
        """Items by owner and tags, the way the aos CLI asks a gateway: [{id, owner, tags}]."""
        tag_filters = ", ".join(f"{{ name: {json.dumps(n)}, values: [{json.dumps(v)}] }}" for n, v in tags)
        reply = self._json("POST", self.gateway_url + "/graphql", json={
            "query": TRANSACTIONS_QUERY % (first, tag_filters), "variables": {"owners": owners}})
        if reply.get("errors"):
            raise ClientError(f"the gateway refused the query: {reply['errors'][0].get('message')}")
        return [{"id": edge["node"]["id"], "owner": (edge["node"].get("owner") or {}).get("address"),
                 "tags": tag_list(edge["node"].get("tags") or [])}
                for edge in reply["data"]["transactions"]["edges"]]

    def default_module(self) -> str:
        """The unit's own Lua module (one it signed with ``Module-Format: tfao-lua-5.3``)."""
        modules = self.transactions([self.scheduler()], [("Type", "Module"), ("Module-Format", MODULE_FORMAT)],
                                    first=1)
        if not modules:
            raise ClientError("the node publishes no tfao module: pass a module id")
        return modules[0]["id"]

    def processes(self, name: str | None = None) -> list[dict]:
        """This wallet's processes, optionally by ``Name`` tag: [{id, owner, module, name}]."""
        tags = [("Data-Protocol", "ao"), ("Type", "Process")] + ([("Name", name)] if name is not None else [])
        found = self.transactions([self.address], tags, first=100)
        return [{"id": item["id"], "owner": item["owner"], "module": first_tag(item["tags"], "Module"),
                 "name": first_tag(item["tags"], "Name")} for item in found]
