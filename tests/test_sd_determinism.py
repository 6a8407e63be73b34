"""Seeded Stable Diffusion in exact mode gives the same pixels and the same PNG bytes under every BLAS
kernel, thread count and numpy SIMD level, alone or inside a batch, equal to golden hashes."""

import pytest

pytest.importorskip("diffusers")

from sd_fixtures import build_reference

GOLDEN = {
    "txt2img": "5a584091338c2430882bf186f3d83dccef9814c0fff85205627322bb8f6bc0d2",  # sha256 of the uint8 pixels
    "png": "e0e5020d2ae6a0e61380189632b40af0bd7e0d3e0ab5a6fd1673da1c9525bd2a",  # of the PNG bytes
    "img2img": "2507777d64df81112998dacf74931847389820fdf14f1d7825328fc07a724b05",  # of img2img's PNG bytes
}

CHILD = r"""
import hashlib
from tfao.models.stable_diffusion import StableDiffusionPipeline
pipe = StableDiffusionPipeline.from_pretrained(FOLDER)
options = dict(height=16, width=24, num_inference_steps=2, progress=False)
first = pipe("a photo of a cat", negative_prompt="dog", seed=5, scheduler="euler_a", **options)
pair = pipe("a photo of a cat", negative_prompt="dog", seed=6, scheduler="euler", num_images_per_prompt=2, **options)
alone = pipe("a photo of a cat", negative_prompt="dog", seed=6, scheduler="euler", **options)
assert pair.pixels[0].tobytes() == alone.pixels[0].tobytes(), "batch composition changed the bits"
edited = pipe("a dog", image=first.images[0], strength=0.5, num_inference_steps=4, seed=7, progress=False)
digest = lambda data: hashlib.sha256(data).hexdigest()
print(f"txt2img={digest(first.pixels.tobytes())} png={digest(first.png())} img2img={digest(edited.png())}")
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_reference(tmp_path_factory.mktemp("tiny-sd-determinism"))[1]


def test_seeded_images_and_png_bytes_are_the_same_everywhere(folder, determinism_matrix):
    lines = determinism_matrix(CHILD.replace("FOLDER", repr(str(folder))))
    hashes = {variant: dict(item.split("=") for item in line.split()) for variant, line in lines.items()}
    assert all(found == GOLDEN for found in hashes.values()), hashes
