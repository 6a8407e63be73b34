"""Host functions behind ``require("transformers")``, generic over the model registry.

Lua calls ``transformers.<family>.<fn>(opts)``; ``opts.model`` is a model manifest (which names every
file) or the weights file itself, given with the family's other files (``opts.tokenizer``, ``opts.config``)
as raw bytes, base64 text, weave ids or ``weavedrive.ref`` references. The context turns each into a
verified Blob. Every result is stored in the context's inference memo under a hash of the call (kernels
version, family, function, model content, every output-changing input, math mode), so replaying a
message log never runs inference again; each call charges its deterministic cost to Compute-Limit.

A function whose outputs are files (Stable Diffusion's PNGs) takes ``opts.store = true``: each output becomes
an item in the node's weave whose id depends only on the process, the tags and the bytes (``output_item``),
so every node computing the process returns the same ids.
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np

from tfao.kernels import ops
from tfao.models import registry
from tfao.models.sources import ModelSource
from tfao.sandbox.luavm import Metered
from weavedrive.ans104 import DataItem
from weavedrive.wallet import deterministic_item


def _name(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _options(opts) -> dict:
    if not isinstance(opts, dict):
        raise ValueError("expected an options table")
    if opts.get("model") is None:
        raise ValueError("opts.model is required (bytes, base64, a weave id or a reference)")
    return opts


def model_source(context, family: registry.Family | None, opts: dict) -> ModelSource:
    """The files ``opts`` names: a manifest's (any file option given beside it replaces that file), or the
    family's files given one by one."""
    model = context.blob(_options(opts)["model"])
    manifest = context.manifest(model)
    if manifest is not None:
        source = ModelSource.from_manifest(manifest, context.blob)
        files = family.lua_files if family is not None else {}
        return source.overlaid({path: context.blob(opts[name]) for name, path in files.items()
                                if name != "model" and opts.get(name) is not None})
    if family is None:
        raise ValueError("opts.model must be a model manifest here (or name the model's family)")
    blobs = {}
    for name, path in family.lua_files.items():
        if opts.get(name) is None:
            raise ValueError(f"opts.model is not a model manifest (its weave id or a reference to it), so opts.{name}"
                             " is required too: pass a manifest id alone, or each file as bytes, base64, a weave id"
                             " or a reference")
        blobs[path] = model if name == "model" else context.blob(opts[name])
    return ModelSource.from_blobs(blobs)


def _family_source(context, family: registry.Family, opts: dict) -> ModelSource:
    source = model_source(context, family, opts)
    if not family.detect(source):
        raise ValueError(f"the model is not a {family.name} model")
    return source


def _load(context, family: registry.Family, source: ModelSource):
    try:
        return registry.load(family, source, context.prepared)
    except (KeyError, IndexError) as exc:  # a config without a field the model needs: name the field
        raise ValueError(f"cannot load the model: its config has no usable {exc}") from None


def call(context, family_name, function_name, opts) -> Metered:
    """``transformers.<family>.<function>(opts)``: the Lua results, metered."""
    family_name, function_name = _name(family_name), _name(function_name)
    family = registry.FAMILIES.get(family_name)
    function = family.lua.get(function_name) if family is not None else None
    if function is None:
        raise ValueError(f"unknown function transformers.{family_name}.{function_name}")
    if family.lua_options is not None and isinstance(opts, dict):
        opts = family.lua_options(opts)
    store = _store_option(opts, function, f"transformers.{family_name}.{function_name}")
    source = _family_source(context, family, opts)
    if function.seeded and opts.get("seed") is None:
        opts = {**opts, "seed": message_seed(context)}
    inputs = function.inputs(opts)
    mode = context.math_mode
    memo_key = hashlib.sha256(json.dumps({
        "kernels": ops.KERNELS_VERSION, "family": family.name, "function": function_name,
        "model": source.key, "inputs": inputs, "mode": mode,
    }, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    stored = context.cache.get(memo_key)
    if stored is not None:
        outputs, cost = decode_result(stored)
    else:
        outputs, cost = function.run(_load(context, family, source), inputs, mode)
        context.cache.put(memo_key, encode_result(outputs, cost))
    if store:  # on a memo hit too, so a replay on a fresh home leaves the same items in its weave
        outputs = [store_output(context, data, function.output_tags) for data in outputs]
    values = function.reply(outputs, opts)
    return Metered({"n": len(values), "values": values}, cost)


def _store_option(opts, function: registry.LuaFunction, name: str) -> bool:
    store = opts.get("store") if isinstance(opts, dict) else None
    if store is None or store is False:
        return False
    if store is not True:
        raise ValueError("opts.store must be true or false")
    if not function.output_tags:
        raise ValueError(f"{name} has no outputs to store: leave out opts.store")
    return True


def output_item(process_id: str, data: bytes, tags) -> DataItem:
    """The weave item of a process's output, the same bytes on every node that computes the process: signed
    with the Ed25519 key derived from the process id alone (a public key by construction: the signature
    binds the content to its id and proves nothing about who made it), tagged with fixed facts only."""
    seed = hashlib.sha256(b"tfao process output\0" + process_id.encode()).digest()
    return deterministic_item(seed, data, [("App-Name", "Transformers-AO"), *tags, ("From-Process", process_id)])


def store_output(context, data: bytes, tags) -> str:
    """Adds ``data`` to the node's weave as the process's output item (a no-op if present); its id. A dry-run
    changes nothing, so there it only names the item that the same message would store."""
    item = output_item(context.process["id"], data, tags)
    if not (getattr(context, "message", None) or {}).get("Read-Only"):
        context.weave.add_item(item, verified=True)  # signed just now
    return item.id


def message_seed(context) -> int:
    """The default seed of a seeded function: from the message's id, so every node draws the same numbers
    for the same message, and two messages draw different ones."""
    message_id = _name((getattr(context, "message", None) or {}).get("Id") or "")
    return int.from_bytes(hashlib.sha256(message_id.encode()).digest()[:8], "little")


def prepare(context, task, opts) -> dict:
    """For ``transformers.pipeline``: which family and function serve ``task`` for this model, and the
    options every call passes (the model's files resolved once)."""
    task = _name(task)
    if not isinstance(opts, dict):
        opts = {"model": opts}
    served = [family for family in registry.FAMILIES.values() if task in family.lua_tasks]
    if not served:
        supported = sorted({t for family in registry.FAMILIES.values() for t in family.lua_tasks})
        raise ValueError(f"unknown task: {task} (supported: {', '.join(supported)})")
    # files given one by one are read as each serving family lays them out, until one recognises them
    family = next((family for family in served if family.detect(model_source(context, family, _options(opts)))),
                  None)
    if family is None:
        raise ValueError(f"the model does not serve the task {task}")
    function, input_name = family.lua_tasks[task]
    resolved = {name: context.blob(opts[name]) if name in family.lua_files else opts[name]
                for name in opts if opts[name] is not None}
    resolved.setdefault("task", task)  # a family serving several tasks with one function tells them apart
    return {"family": family.name, "function": function, "input": input_name, "opts": resolved}


def families() -> dict:
    """Family name -> the names of its Lua functions."""
    return {name: sorted(family.lua) for name, family in registry.FAMILIES.items() if family.lua}


# --------------------------------------------------------------------------- the memo's value format
# An npz of the outputs' arrays and a JSON outline of the rest (bytes become uint8 arrays); no pickle.


def encode_result(outputs, cost: int) -> bytes:
    arrays: dict[str, np.ndarray] = {}

    def outline(value):
        if isinstance(value, np.ndarray):
            arrays[f"a{len(arrays)}"] = value
            return {"$array": f"a{len(arrays) - 1}"}
        if isinstance(value, (bytes, bytearray)):
            arrays[f"a{len(arrays)}"] = np.frombuffer(bytes(value), np.uint8)
            return {"$bytes": f"a{len(arrays) - 1}"}
        if isinstance(value, dict):
            return {"$dict": {key: outline(item) for key, item in value.items()}}
        if isinstance(value, (list, tuple)):
            return [outline(item) for item in value]
        return value

    meta = json.dumps({"cost": int(cost), "outputs": outline(outputs)}).encode()
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, meta=np.frombuffer(meta, np.uint8), **arrays)
    return buffer.getvalue()


def decode_result(data: bytes) -> tuple[object, int]:
    with np.load(io.BytesIO(data), allow_pickle=False) as stored:
        meta = json.loads(stored["meta"].tobytes())

        def inline(value):
            if isinstance(value, dict):
                if "$array" in value:
                    return stored[value["$array"]]
                if "$bytes" in value:
                    return stored[value["$bytes"]].tobytes()
                return {key: inline(item) for key, item in value["$dict"].items()}
            if isinstance(value, list):
                return [inline(item) for item in value]
            return value

        return inline(meta["outputs"]), meta["cost"]


def bridge_functions(context) -> dict:
    return {
        "families": families,
        "call": lambda family, function, opts: call(context, family, function, opts),
        "prepare": lambda task, opts: prepare(context, task, opts),
    }
