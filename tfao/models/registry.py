"""The registry: one entry per model family says how to detect it in a model source, how to load it,
which pipeline tasks it serves, and which functions Lua gets as ``require("transformers").<family>.<fn>``.

Adding a family is its kernel file, its runtime module here in ``tfao.models``, one ``Family`` entry in
``FAMILIES``, tests and docs; ``tfao.pipeline`` and the Lua bridge read everything else from the entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tfao.kernels import ops
from tfao.models import bert, clip, stable_diffusion as sd, t5
from tfao.models.cache import MODEL_CACHE
from tfao.models.sources import ModelSource, SourceError


@dataclass(frozen=True)
class LuaFunction:
    """``transformers.<family>.<name>(opts)``: the bridge resolves ``opts.model`` to a loaded model, then

    * ``inputs(opts)`` validates and returns everything besides the model that changes the output (it keys
      the inference memo, so it must hold every such option and any seed);
    * ``run(model, inputs, mode)`` returns ``(outputs, cost)``: numpy arrays, bytes, text and numbers in
      lists and dicts, and the call's deterministic cost in multiply-adds (charged to Compute-Limit);
    * ``reply(outputs, opts)`` returns the Lua function's results, as a list.

    A function with ``output_tags`` returns a list of bytes and takes ``opts.store = true``: the bridge then
    adds each output to the weave as an item with these tags and hands ``reply`` the items' ids instead.
    """

    inputs: Callable[[dict], dict]
    run: Callable[[object, dict, str], tuple[object, int]]
    reply: Callable[[object, dict], list]
    seeded: bool = False  # inside a process, an absent opts.seed comes from the message (see the bridge)
    output_tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Family:
    name: str
    detect: Callable[[ModelSource], bool]
    load: Callable[[ModelSource, ops.PreparedStore | None], object]
    size: Callable[[object], int]  # bytes a loaded model references, for the cache budget
    tasks: Mapping[str, Callable]  # Python pipelines: task -> class(model, mode=None), callable on inputs
    lua: Mapping[str, LuaFunction] = field(default_factory=dict)
    lua_tasks: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # task -> (function, input option)
    lua_files: Mapping[str, str] = field(default_factory=dict)  # option -> file path, for files given one by one
    lua_options: Callable[[dict], dict] | None = None  # renames other option names (e.g. a seed project's)


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in [
        Family(
            name="bert",
            detect=bert.detect,
            load=bert.SentenceEncoder.from_source,
            size=bert.SentenceEncoder.nbytes,
            tasks={"feature-extraction": bert.FeatureExtractionPipeline},
            lua={"encode_text": LuaFunction(bert.encode_text_inputs, bert.encode_text, bert.encode_text_reply)},
            lua_tasks={"feature-extraction": ("encode_text", "prompt")},
            lua_files={"model": "model.safetensors", "tokenizer": "tokenizer.json", "config": "config.json"},
        ),
        Family(
            name="clip",
            detect=clip.detect,
            load=clip.CLIPTextEmbedder.from_source,
            size=clip.CLIPTextEmbedder.nbytes,
            tasks={"feature-extraction": clip.FeatureExtractionPipeline},
            lua={"encode_text": LuaFunction(clip.encode_text_inputs, clip.encode_text, clip.encode_text_reply)},
            lua_tasks={"feature-extraction": ("encode_text", "prompt")},
            lua_files={"model": "model.safetensors", "tokenizer": "tokenizer.json", "config": "config.json"},
        ),
        Family(
            name="t5",
            detect=t5.detect,
            load=t5.T5Text.from_source,
            size=t5.T5Text.nbytes,
            tasks=t5.PIPELINES,
            lua={"generate": LuaFunction(t5.generate_inputs, t5.generate, t5.generate_reply, seeded=True)},
            lua_tasks=t5.LUA_TASKS,
            lua_files={"model": "model.safetensors", "tokenizer": "tokenizer.json", "config": "config.json"},
        ),
        Family(
            name="sd",
            detect=sd.detect,
            load=lambda source, prepared: sd.StableDiffusionPipeline.from_source(source, prepared=prepared),
            size=sd.StableDiffusionPipeline.nbytes,
            tasks={"text-to-image": sd.TextToImage, "image-to-image": sd.ImageToImage},
            lua={"txt2img": LuaFunction(sd.txt2img_inputs, sd.generate, sd.generate_reply, seeded=True,
                                        output_tags=sd.IMAGE_TAGS),
                 "img2img": LuaFunction(sd.img2img_inputs, sd.generate, sd.generate_reply, seeded=True,
                                        output_tags=sd.IMAGE_TAGS)},
            lua_tasks={"text-to-image": ("txt2img", "prompt"), "image-to-image": ("img2img", "image")},
            lua_files=sd.LUA_FILES,
            lua_options=sd.lua_options,
        ),
    ]
}


def tasks() -> list[str]:
    return sorted({task for family in FAMILIES.values() for task in family.tasks})


def serves(task: str) -> bool:
    """Whether some family serves ``task`` (families may serve patterns, e.g. every translation_xx_to_yy)."""
    return any(task in family.tasks for family in FAMILIES.values())


def family_of(source: ModelSource, task: str | None = None) -> Family:
    """The family that reads ``source`` (and serves ``task``, when given)."""
    for family in FAMILIES.values():
        if (task is None or task in family.tasks or task in family.lua_tasks) and family.detect(source):
            return family
    wanted = f" for the task {task}" if task else ""
    raise SourceError(f"no model family{wanted} reads {source.origin}")


def load(family: Family, source: ModelSource, prepared: ops.PreparedStore | None = None):
    """The loaded model, from the model cache (each source is loaded once, however many callers ask)."""
    return MODEL_CACHE.get_or_load(f"{family.name}:{source.key}", lambda: family.load(source, prepared), family.size)
