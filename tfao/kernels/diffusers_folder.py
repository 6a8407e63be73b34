"""Reading one model folder as diffusers and transformers save it: config.json beside its safetensors weights
(one file, a ``.fp16``-style variant of it, or the shards an index lists)."""

from __future__ import annotations

import json
from pathlib import Path

from .weights import WeightError, Weights


def weight_files(folder: Path, stem: str, variant: str | None = None) -> list[Path]:
    """The safetensors files of ``stem`` (``model``, ``diffusion_pytorch_model``) in ``folder``.

    Without a ``variant`` the plain file is preferred and an fp16 variant is taken when it is the only one.
    """
    names = [f"{stem}.{variant}"] if variant else [stem, f"{stem}.fp16"]
    for name in names:
        index = folder / f"{name}.safetensors.index.json"
        if index.exists():
            return [folder / shard for shard in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
        if (folder / f"{name}.safetensors").exists():
            return [folder / f"{name}.safetensors"]
    raise WeightError(f"{folder.name}/ holds no {names[0]}.safetensors")


def read_model_folder(folder, stem: str, variant: str | None = None) -> tuple[dict, Weights]:
    """The config.json and the memory-mapped weights of one model folder."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    return config, Weights.load(weight_files(folder, stem, variant))
