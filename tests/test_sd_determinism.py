"""Seeded Stable Diffusion in exact mode gives the same pixels and the same PNG bytes under every BLAS
kernel, thread count and numpy SIMD level, alone or inside a batch, equal to golden hashes."""

import pytest

pytest.importorskip("diffusers")

from sd_fixtures import build_reference

GOLDEN = {
    "txt2img": "9aa4bdfcdf599add2b1149f1567c3389bfffa6eaa762b921fd7058138625a135",  # sha256 of the uint8 pixels
    "png": "b14e8edab600e3a7b12760884b21302cc1fd8464d50069b7e0b010d06a9957f3",  # of the PNG bytes
    "img2img": "dd69ab1649dff5965431774e01c1440a29e94b753fb967506776e158384fdf25",  # of img2img's PNG bytes
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
