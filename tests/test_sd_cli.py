"""``tfao sd``: writes the pipeline's deterministic PNG, img2img with --image, several images, clear errors."""

import pytest

pytest.importorskip("diffusers")

from sd_fixtures import build_reference
from tfao.cli.main import main
from tfao.models.stable_diffusion import StableDiffusionPipeline


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = build_reference(tmp_path_factory.mktemp("tiny-sd-cli"))[1]
    return folder, StableDiffusionPipeline.from_pretrained(folder)


def test_sd_writes_the_pipelines_png(tiny, tmp_path, capsys):
    folder, pipe = tiny
    out = tmp_path / "cat.png"
    code = main(["sd", "a photo of a cat", "-o", str(out), "--model", str(folder), "--steps", "2", "--seed", "1",
                 "--height", "16", "--width", "24", "--scheduler", "euler", "--negative", "dog"])
    assert code == 0
    expected = pipe("a photo of a cat", negative_prompt="dog", num_inference_steps=2, seed=1, height=16, width=24,
                    scheduler="euler", progress=False)
    assert out.read_bytes() == expected.png()
    assert f"wrote {out} (seed 1)" in capsys.readouterr().out

    edited = tmp_path / "edited.png"
    assert main(["sd", "a dog", "-o", str(edited), "--model", str(folder), "--image", str(out), "--strength", "0.5",
                 "--steps", "4", "--seed", "2", "--num", "2"]) == 0
    expected = pipe("a dog", image=expected.images[0], strength=0.5, num_inference_steps=4, seed=2, num_images_per_prompt=2,
                    progress=False)
    assert [(tmp_path / f"edited-{i}.png").read_bytes() for i in (1, 2)] == [expected.png(0), expected.png(1)]


def test_sd_errors(tiny, tmp_path, capsys):
    folder, _ = tiny
    assert main(["sd", "x", "-o", str(tmp_path / "x.png"), "--model", str(tmp_path)]) == 1
    assert "error:" in capsys.readouterr().err
    assert main(["sd", "x", "-o", str(tmp_path / "x.png"), "--model", str(folder), "--height", "15", "--steps", "1"]) == 1
    assert "height must be a positive multiple of 2" in capsys.readouterr().err


def test_pipeline_command_writes_text_to_image_and_image_to_image_pngs(tiny, tmp_path, capsys):
    folder, pipe = tiny
    out = tmp_path / "p.png"
    assert main(["pipeline", "text-to-image", "--model", str(folder), "--output", str(out), "-o", "num_inference_steps=2",
                 "-o", "seed=3", "-o", "height=16", "-o", "width=16", "a red cube"]) == 0
    expected = pipe("a red cube", num_inference_steps=2, seed=3, height=16, width=16, progress=False)
    assert out.read_bytes() == expected.png() and capsys.readouterr().out.split() == [str(out)]
    edited = tmp_path / "e.png"
    assert main(["pipeline", "image-to-image", "--model", str(folder), "--image", str(out), "--output", str(edited),
                 "-o", "num_inference_steps=2", "-o", "seed=4", "-o", "strength=0.5", "--json", "a blue cube"]) == 0
    expected = pipe("a blue cube", image=expected.images[0], strength=0.5, num_inference_steps=2, seed=4, progress=False)
    assert edited.read_bytes() == expected.png()
    assert capsys.readouterr().out.strip() == f'["{edited}"]'
