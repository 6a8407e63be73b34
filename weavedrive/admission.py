"""AOP-5 admissibility: which ``/data/ID`` a process may read at a given block height.

The rules follow the reference WeaveDrive host, in order:

1. Test mode admits everything. It is off by default and turned on either by the node
   (``Admission(..., admit_all=True)``, for local experiments) or by the process tag
   ``Availability-Type: Test`` (a real AO unit rejects that value, so such a process cannot
   silently run with different rules elsewhere).
2. The process's ``On-Boot`` id is always admitted.
3. ``Extension: WeaveDrive`` must be on the process or the module.
4. The mode is the process's ``Availability-Type``, else the module's, else ``Assignments``
   (``Assigned`` is the spec's spelling of the same mode); ``Individual`` and ``Library`` widen it.
5. Attestors are the process's ``Scheduler`` and every ``Attestor`` tag. An ``Attestation`` item
   (``Data-Protocol: ao``, ``Type: Attestation``, ``Message: ID``) signed by an attestor at or
   before the message's block height admits the id in every mode.
6. Individual and Library: an ``Available`` item (``Data-Protocol: WeaveDrive``, ``Type:
   Available``, an ``ID: <id>`` tag) signed by an attestor at or before that height admits it.
7. Library also admits ids listed in the data of such an ``Available`` item: a JSON array of ids
   or ids separated by whitespace (the spec leaves the format open; this is the one chosen here).

An attestation by a wallet that is no longer an attestor of the process (or made after the
message's block height) does not count: that is what revoking one means here. Anything not
admitted raises ``NotAdmitted`` whose message starts with ``HALT: FILE NOT FOUND``, the same on
every node since it depends only on the process, the module and the chain up to that height.

Queries go to the local weave; when a gateway is configured and the local weave has no answer,
the same query goes to the gateway's GraphQL (useful when block heights are real Arweave heights).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from .ans104 import Signer, first_tag, is_id
from .manifest import manifest_of
from .store import StoredItem, WeaveStore

MODES = {"Assignments": "Assignments", "Assigned": "Assignments", "Individual": "Individual", "Library": "Library"}
TEST_MODE = "Test"
MAX_LIBRARY_BODY = 4 * 1024 * 1024


ATTESTATION_TAGS = [("Data-Protocol", "ao"), ("Type", "Attestation")]
AVAILABLE_TAGS = [("Data-Protocol", "WeaveDrive"), ("Variant", "WeaveDrive.tn.1"), ("Type", "Available")]


def attest(store: WeaveStore, signer: Signer, id: str) -> StoredItem:
    """Sign and store an Attestation of ``id`` (admits it for processes whose attestor is the signer)."""
    return store.add_bytes(b"", signer, [*ATTESTATION_TAGS, ("Message", id)])


def attest_with_files(store: WeaveStore, signer: Signer, id: str) -> list[StoredItem]:
    """Attest ``id`` and, when it is a model manifest, every file it names (one call admits a model)."""
    manifest = manifest_of(store.data_blob(id)) if store.has(id) else None
    ids = [id] + ([entry["id"] for entry in manifest["files"]] if manifest else [])
    return [attest(store, signer, i) for i in ids]


def make_available(store: WeaveStore, signer: Signer, ids: Sequence[str]) -> StoredItem:
    """Sign and store an Available item naming ``ids`` (Individual and Library modes)."""
    return store.add_bytes(b"", signer, [*AVAILABLE_TAGS, *(("ID", i) for i in ids)])


class NotAdmitted(Exception):
    """Reading this id would break determinism; the process halts."""


def tag_pairs(entity: dict) -> list[tuple[str, str]]:
    """An entity's tags as (name, value) pairs, whether given as pairs or as {name, value} dicts."""
    return [(t["name"], t["value"]) if isinstance(t, dict) else tuple(t) for t in entity.get("tags") or ()]


def _tag(entity: dict, name: str) -> str | None:
    return first_tag(tag_pairs(entity), name)


def _tag_values(entity: dict, name: str) -> list[str]:
    return [value for tag_name, value in tag_pairs(entity) if tag_name == name]


@dataclass
class Admission:
    """The admission policy of one process (``process``/``module``: dicts with id, owner, tags)."""

    process: dict
    module: dict
    store: WeaveStore
    gateway: object | None = None  # weavedrive.gateway.Gateway
    admit_all: bool = False
    _admitted: set = field(default_factory=set, repr=False)

    def mode(self) -> str:
        declared = _tag(self.process, "Availability-Type") or _tag(self.module, "Availability-Type")
        if self.admit_all or declared == TEST_MODE:
            return TEST_MODE
        if declared is None:
            return "Assignments"
        if declared not in MODES:
            raise NotAdmitted(
                f"HALT: FILE NOT FOUND: unsupported Availability-Type {declared!r}"
                f" (expected one of {', '.join(MODES)})"
            )
        return MODES[declared]

    def attestors(self) -> list[str]:
        return [a for a in [_tag(self.process, "Scheduler"), *_tag_values(self.process, "Attestor")] if a]

    def check(self, id: str, block_height: int) -> None:
        """Return if ``id`` is admitted for a message at ``block_height``; raise NotAdmitted if not."""
        if (id, block_height) in self._admitted:
            return
        self._check(id, block_height)
        self._admitted.add((id, block_height))

    def _check(self, id: str, block_height: int) -> None:
        if not is_id(id):
            raise NotAdmitted(f"HALT: FILE NOT FOUND: {id!r} is not a 43-character id")
        if self.mode() == TEST_MODE or id == _tag(self.process, "On-Boot"):
            return
        if "WeaveDrive" not in (_tag(self.process, "Extension"), _tag(self.module, "Extension")):
            raise NotAdmitted(
                f"HALT: FILE NOT FOUND: {id} (the process does not use WeaveDrive:"
                " no Extension: WeaveDrive tag on the process or its module)"
            )
        mode = self.mode()
        attestors = self.attestors()
        if attestors and self._attested(id, attestors, block_height):
            return
        if attestors and mode in ("Individual", "Library") and self._available(id, attestors, block_height):
            return
        if attestors and mode == "Library" and self._in_library(id, attestors, block_height):
            return
        raise NotAdmitted(
            f"HALT: FILE NOT FOUND: {id} is not admissible for process {self.process.get('id')} at block"
            f" {block_height} (mode {mode}; no attestation by {', '.join(attestors) or 'any attestor'})"
        )

    def _attested(self, id: str, attestors: list[str], height: int) -> bool:
        tags = [("Data-Protocol", ["ao"]), ("Type", ["Attestation"]), ("Message", [id])]
        return self._exists(attestors, tags, height)

    def _available(self, id: str, attestors: list[str], height: int) -> bool:
        tags = [("Data-Protocol", ["WeaveDrive"]), ("Type", ["Available"]), ("ID", [id])]
        return self._exists(attestors, tags, height)

    def _exists(self, owners: list[str], tags: Sequence[tuple[str, list[str]]], height: int) -> bool:
        if self.store.query(owners=owners, tags=tags, max_block=height, first=1):
            return True
        return self.gateway is not None and self.gateway.exists(owners=owners, tags=tags, max_block=height)

    def _in_library(self, id: str, attestors: list[str], height: int) -> bool:
        tags = [("Data-Protocol", ["WeaveDrive"]), ("Type", ["Available"])]
        after = None
        while page := self.store.query(owners=attestors, tags=tags, max_block=height, after=after):
            for item in page:
                if item.size <= MAX_LIBRARY_BODY and id in library_ids(self.store.read_data(item.id)):
                    return True
            after = page[-1].cursor
        return False


def library_ids(body: bytes) -> set[str]:
    """The ids listed in an ``Available`` item's data: a JSON array, or whitespace-separated."""
    try:
        listed = json.loads(body)
    except ValueError:
        listed = body.decode("utf-8", "replace").split()
    if not isinstance(listed, list):
        return set()
    return {entry for entry in listed if isinstance(entry, str) and is_id(entry)}
