"""HyperBEAM's mainnet API next to the legacy units, over the same node and processes.

What aoconnect's ``MODE: 'mainnet'`` (and aos 2's default mode) sends, and what this node answers:

=====================================================  ===============================================
``GET /~meta@1.0/info``                                the node's settings (JSON)
``GET /~meta@1.0/info/KEY``                            one setting as text (``address``: the scheduler)
``POST /push``                                         spawn: the signed process item; its id comes
                                                       back in the ``process`` header
``POST /PID~process@1.0/push`` (or ``schedule``)       a signed message → ``{"slot": N, "process": PID}``
``/PID~process@1.0/compute/results=N``, ``compute=N``  ``{"raw": result}`` once slot N is computed
``/PID~process@1.0/compute``, ``now``                  the same at the current slot
``/PID~process@1.0/as=execution/compute&Tag=Value``    a dry-run (tags from the path, data from the item)
``/PID~process@1.0/slot/current``, ``slot``            the current slot as text; ``{process, current}``
``GET /PID~process@1.0/schedule``                      the scheduler's page of messages (as ``GET /PID``)
=====================================================  ===============================================

Every ``/PID~process@1.0/...`` route also answers as ``/PID/...``. A path segment is HyperBEAM's
``key&name=value&...`` (or ``key=value``); ``?`` counts as ``&``, because aoconnect's ``request()``
sends a path's ``?`` percent-encoded into the path. So tag values in a path can hold neither ``/``,
``&`` nor ``?``.

Requests carry either a signed ANS-104 item as the body (``Content-Type: application/ans104``) or
HTTP Message Signatures (RFC 9421: ``Signature`` and ``Signature-Input`` headers, ``rsa-pss-sha512``,
``keyid`` = the signer's RSA modulus in base64url, the signed fields as headers). Either is verified
before anything else happens; a forged or altered one is refused with 400. Reads may also come
unsigned. A message pushed with an HTTP signature is scheduled as an item this node signs, carrying
the signed fields as tags and ``From-Signer`` = the signer's address: the process sees ``From`` =
the signer, ``Owner`` = this node, and trusts it as it trusts any forwarded message (this node must
be one of its authorities, as it is for processes aoconnect spawns here).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tfao.http.server import HTTPError, NodeServer, checked_id
from weavedrive.ans104 import DataItem, InvalidDataItem, address_of, b64url_decode, is_id

EXECUTION_DEVICES = {"genesis-wasm@1.0", "lua@5.3a"}  # both run on this node's aos Lua runtime
MAINNET_VARIANT = "ao.N.1"
UNSET = "1234"  # what aoconnect's legacy dry-run puts in the Id, Owner and Data it is not given
# httpsig fields that describe the request, not the message
TRANSPORT_FIELDS = {
    "signature", "signature-input", "content-digest", "content-type", "content-length", "inline-body-key",
    "ao-types", "signing-format", "accept-bundle", "accept-codec", "require-codec", "codec-device", "path",
    "method", "target", "data",
}
RSA_EXPONENT = 65537  # Arweave keys; keyid carries only the modulus
SIGNATURE_INPUT = re.compile(r'^\s*([A-Za-z0-9_.*-]+)=\(([^)]*)\)((?:;[a-z0-9_.*-]+=(?:"[^"]*"|[0-9]+))*)\s*$')
SIGNATURE = re.compile(r"^\s*([A-Za-z0-9_.*-]+)=:([A-Za-z0-9+/=]*):\s*$")
COMPONENT = re.compile(r'"([^"]+)"')
PARAMETER = re.compile(r';([a-z0-9_.*-]+)=(?:"([^"]*)"|([0-9]+))')
CONTENT_DIGEST = re.compile(r"sha-256=:([A-Za-z0-9+/_=-]*):")
MULTIPART_BOUNDARY = re.compile(r'multipart/form-data;\s*boundary="?([^";]+)"?')
PART_NAME = re.compile(r'content-disposition:\s*form-data;\s*name="([^"]*)"', re.IGNORECASE)


# ---------------------------------------------------------------------------------------------- paths
@dataclass
class Segment:
    """One HyperPATH segment: ``key`` (or ``key=value``) with its ``&name=value`` parameters."""

    key: str
    value: str | None
    params: list[tuple[str, str]]


def parse_path(rest: str) -> list[Segment]:
    segments = []
    for part in filter(None, rest.split("/")):
        head, *pairs = re.split(r"[&?]", part)
        key, eq, value = head.partition("=")
        params = []
        for pair in filter(None, pairs):
            name, has_value, param_value = pair.partition("=")
            if not name or not has_value:
                raise HTTPError(400, f"path parameter {pair[:64]!r} is not name=value")
            params.append((name, param_value))
        segments.append(Segment(key, value if eq else None, params))
    return segments


def slot_number(value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise HTTPError(400, f"a slot is a non-negative integer, got {value[:64]!r}")
    return int(value)


# ---------------------------------------------------------------------------------------------- httpsig
@dataclass
class SignedFields:
    """A request verified under RFC 9421: the signer's address and the fields it signed."""

    address: str
    fields: dict[str, str]
    signature_digest: str  # names this signed request, so a replay of it is scheduled once


def verify_httpsig(request: Request, body: bytes) -> SignedFields:
    """Check ``Signature``/``Signature-Input`` (rsa-pss-sha512, keyid = modulus) and ``Content-Digest``."""
    headers = request.headers
    input_match = SIGNATURE_INPUT.match(headers.get("signature-input", ""))
    signature_match = SIGNATURE.match(headers.get("signature", ""))
    if input_match is None or signature_match is None:
        raise HTTPError(400, "Signature and Signature-Input must each hold one RFC 9421 signature")
    label, components, parameters = input_match.groups()
    if signature_match.group(1) != label:
        raise HTTPError(400, f"Signature names {signature_match.group(1)!r}, Signature-Input {label!r}")
    params = {name: quoted or number for name, quoted, number in PARAMETER.findall(parameters)}
    if params.get("alg") != "rsa-pss-sha512":
        raise HTTPError(400, f"signature algorithm {params.get('alg')!r} is not supported (use rsa-pss-sha512)")
    names = COMPONENT.findall(components)
    lines = []
    for name in names:
        if name.startswith("@") or name != name.lower():
            raise HTTPError(400, f"signed component {name!r} is not supported: sign lowercase header fields")
        values = headers.getlist(name)
        if not values:
            raise HTTPError(400, f"signed field {name!r} is not in the request")
        lines.append(f'"{name}": {", ".join(value.strip() for value in values)}')
    lines.append(f'"@signature-params": ({components}){parameters}')
    try:
        modulus = b64url_decode(params.get("keyid", ""))
        signature = base64.b64decode(signature_match.group(2), validate=True)
    except ValueError:
        raise HTTPError(400, "keyid must be a base64url RSA modulus and the signature standard base64") from None
    if not 256 <= len(modulus) <= 1024:
        raise HTTPError(400, f"keyid holds a {len(modulus)}-byte modulus: expected an RSA key of 2048 to 8192 bits")
    key = rsa.RSAPublicNumbers(RSA_EXPONENT, int.from_bytes(modulus, "big")).public_key()
    try:
        key.verify(signature, "\n".join(lines).encode(),
                   padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=padding.PSS.AUTO), hashes.SHA512())
    except InvalidSignature:
        raise HTTPError(400, "the HTTP message signature does not verify") from None
    fields = {name: ", ".join(value.strip() for value in headers.getlist(name)) for name in names}
    check_content_digest(fields, body)
    if body:
        fields.update(body_fields(fields, body))
    return SignedFields(address_of(modulus), fields, hashlib.sha256(signature).hexdigest())


def check_content_digest(fields: dict[str, str], body: bytes) -> None:
    """A signed Content-Digest must match the body, and covers fields that travel in it."""
    digest = fields.get("content-digest")
    if "inline-body-key" in fields and digest is None:
        raise HTTPError(400, "the body's fields are signed only through Content-Digest, which is not signed")
    if digest is None:
        return
    match = CONTENT_DIGEST.search(digest)
    if match is None:
        raise HTTPError(400, f"Content-Digest {digest[:80]!r} has no sha-256 digest")
    expected = b64url_decode(match.group(1).replace("+", "-").replace("/", "_").rstrip("="))
    if hashlib.sha256(body).digest() == expected:
        return
    if not body:
        # aoconnect's request() signs Content-Digest, then sends the request without its body
        raise HTTPError(400, "the request's Content-Digest covers a body that did not arrive: a value with a "
                             "newline or '/', or over 4096 bytes, travels in the body, which aoconnect's "
                             "signed request() drops; send such values in an ANS-104 item instead")
    raise HTTPError(400, "the body does not match its Content-Digest")


def body_fields(fields: dict[str, str], body: bytes) -> dict[str, str]:
    """The fields that travel in a signed body: one under ``inline-body-key``, or multipart parts."""
    if "content-digest" not in fields:
        raise HTTPError(400, "a signed request's body must be covered by a signed Content-Digest")
    boundary = MULTIPART_BOUNDARY.search(fields.get("content-type", ""))
    if boundary is None:
        return {fields.get("inline-body-key", "data"): body.decode("utf-8", "replace")}
    delimiter = b"--" + boundary.group(1).encode()
    parts = {}
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, separator, value = part.removeprefix(b"\r\n").removesuffix(b"\r\n").partition(b"\r\n\r\n")
        name = PART_NAME.search(head.decode("utf-8", "replace"))
        if not separator or name is None:
            raise HTTPError(400, "a multipart body part has no content-disposition name")
        parts[name.group(1)] = value.decode("utf-8", "replace")
    return parts


# ---------------------------------------------------------------------------------------------- routes
class MainnetAPI:
    """The mainnet handlers, built on the legacy server's helpers (body limits, worker threads)."""

    def __init__(self, server: NodeServer):
        self.server = server
        self.node = server.node

    def routes(self) -> tuple[list[Route], list[Route]]:
        """Routes to mount before the legacy ones, and catch-alls to mount after them."""
        first = [
            Route("/~meta@1.0/info", self.info, methods=["GET"]),
            Route("/~meta@1.0/info/{key}", self.info_key, methods=["GET"]),
            Route("/push", self.push, methods=["POST"]),
            Route("/{pid}~process@1.0/{rest:path}", self.process, methods=["GET", "POST"]),
        ]
        last = [Route("/{pid}/{rest:path}", self.bare_process, methods=["GET", "POST"])]
        return first, last

    def settings(self) -> dict:
        return {"address": self.node.address, "operator": self.node.address, "scheduler": self.node.address,
                "default-module": self.node.module_id, "initialized": "permanent",
                "execution-devices": sorted(EXECUTION_DEVICES)}

    async def info(self, request: Request) -> Response:
        return JSONResponse(self.settings())

    async def info_key(self, request: Request) -> Response:
        key = request.path_params["key"]
        value = self.settings().get(key)
        if value is None:
            raise HTTPError(404, f"the node has no setting {key[:64]!r}")
        return PlainTextResponse(value if isinstance(value, str) else ",".join(value))

    # ---------------------------------------------------------------- signed requests
    async def signed(self, request: Request) -> DataItem | SignedFields | None:
        """The verified ANS-104 item or HTTP-signed fields of a request; None for an unsigned one."""
        body = await self.server.body(request)
        if "signature-input" in request.headers or "signature" in request.headers:
            return await self.server.blocking(verify_httpsig, request, body)
        if not body:
            return None
        item = DataItem.parse(body)
        if not await self.server.blocking(item.verify):
            raise InvalidDataItem(f"data item {item.id}: signature does not verify")
        return item

    async def push(self, request: Request) -> Response:
        """``POST /push``: spawn a process (or push a message to its target)."""
        signed = await self.signed(request)
        if not isinstance(signed, DataItem):
            raise HTTPError(400, "POST /push takes a signed ANS-104 item (Content-Type: application/ans104)")
        if signed.tag("Type") != "Process":
            return await self.push_message(signed.target_id or "", signed)
        device = signed.tag("execution-device") or signed.tag("Execution-Device")
        if device is not None and device not in EXECUTION_DEVICES:
            raise HTTPError(400, f"execution-device {device!r} is not run here: use one of "
                                 f"{', '.join(sorted(EXECUTION_DEVICES))}")
        await self.server.blocking(self.node.submit, signed, verified=True)  # by signed()
        return JSONResponse({"process": signed.id, "slot": 0}, headers={"process": signed.id})

    async def push_message(self, pid: str, signed: DataItem | SignedFields | None) -> Response:
        checked_id(pid, "process id")
        if isinstance(signed, SignedFields):
            if signed.fields.get("target") != pid:
                raise HTTPError(400, f"an HTTP-signed push must sign its target field: {pid}")
            schedule = functools.partial(self.node.push_signed_fields, pid, signed.address, message_tags(signed.fields),
                                         signed.fields.get("data", ""), signed.signature_digest)
        elif isinstance(signed, DataItem):
            if signed.target_id != pid:
                raise HTTPError(400, f"the message targets {signed.target_id}, not {pid}")
            schedule = lambda: self.node.submit(signed, verified=True).id  # noqa: E731
        else:
            raise HTTPError(400, "a push must be signed: an ANS-104 item body or HTTP message signatures")

        def scheduled() -> tuple[str, int]:  # one worker thread for both calls
            message_id = schedule()
            return message_id, self.node.slot(pid, message_id)

        message_id, slot = await self.server.blocking(scheduled)
        return JSONResponse({"slot": slot, "process": pid, "id": message_id})

    # ---------------------------------------------------------------- /PID~process@1.0/...
    async def bare_process(self, request: Request) -> Response:
        """``/PID/...``: the process routes, when the first segment is an id (else no route)."""
        if not is_id(request.path_params["pid"]):
            raise HTTPError(404, f"no route {request.url.path[:200]} on this node")
        return await self.process(request)

    async def process(self, request: Request) -> Response:
        pid = checked_id(request.path_params["pid"], "process id")
        segments = parse_path(request.path_params["rest"])
        signed = await self.signed(request)
        await self.server.blocking(self.node.process, pid)  # 404 for an unknown process
        key = segments[0].key if segments else ""
        if key in ("push", "schedule") and request.method == "POST":
            return await self.push_message(pid, signed)
        if key == "schedule":
            return JSONResponse(await self.server.blocking(self.server.scheduler_page, request, pid))
        if key == "as" and segments[0].value == "execution" and len(segments) > 1 and segments[1].key == "compute":
            return await self.dryrun(pid, segments[0].params + segments[1].params + query_tags(request), signed)
        if key == "compute":
            return await self.compute(pid, segments)
        if key == "now":
            return await self.computed(pid, await self.server.blocking(self.node.current_slot, pid))
        if key == "slot":
            current = await self.server.blocking(self.node.current_slot, pid)
            if len(segments) > 1 and segments[1].key == "current":
                return PlainTextResponse(str(current))
            return JSONResponse({"process": pid, "current": current})
        raise HTTPError(404, f"{request.url.path[:200]} is not a route of this node's process@1.0")

    async def compute(self, pid: str, segments: list[Segment]) -> Response:
        """``compute=N``, ``compute&slot=N``, ``compute/results=N``, ``compute/N``; N a slot or a message id."""
        first = segments[0]
        target = first.value or dict(first.params).get("slot")
        if target is None and len(segments) > 1:
            target = segments[1].value if segments[1].key == "results" else segments[1].key
        if not target:
            return await self.computed(pid, await self.server.blocking(self.node.current_slot, pid))
        if is_id(target):
            return await self.computed(pid, await self.server.blocking(self.node.slot, pid, target))
        return await self.computed(pid, slot_number(target))

    async def computed(self, pid: str, slot: int) -> Response:
        result = await self.server.wait_for_slot(pid, slot)
        if result is None:
            raise TimeoutError(f"slot {slot} of process {pid} has not been evaluated yet")
        return JSONResponse({"process": pid, "slot": slot, "raw": result})

    async def dryrun(self, pid: str, tags: list[tuple[str, str]], signed) -> Response:
        """The dry-run's tags come from the path; data and sender from the signed item or fields."""
        if isinstance(signed, DataItem):
            if signed.target_id not in (None, pid):
                raise HTTPError(400, f"the dry-run item targets {signed.target_id}, not {pid}")
            owner, data, message_id = signed.owner_address, signed.data.decode("utf-8", "replace"), signed.id
        elif isinstance(signed, SignedFields):
            owner, data, message_id = signed.address, signed.fields.get("data", ""), UNSET
        else:
            owner, data, message_id = UNSET, "", UNSET
        message = {
            "Id": message_id, "Owner": owner, "Target": pid, "Anchor": "0", "Data": data or UNSET,
            "Tags": [{"name": name, "value": value} for name, value in tags] + [
                {"name": "Data-Protocol", "value": "ao"}, {"name": "Type", "value": "Message"},
                {"name": "Variant", "value": MAINNET_VARIANT}],
        }
        return JSONResponse({"process": pid, "raw": await self.server.blocking(self.node.dryrun, pid, message)})


def query_tags(request: Request) -> list[tuple[str, str]]:
    return list(request.query_params.multi_items())


def message_tags(fields: dict[str, str]) -> list[tuple[str, str]]:
    """The tags of a message pushed with an HTTP signature: its signed fields, less the transport ones."""
    return [(name, value) for name, value in fields.items() if name not in TRANSPORT_FIELDS]
