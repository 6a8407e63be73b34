"""require("transformers").sd from Lua: txt2img and img2img return the Python pipeline's PNG as a data
URL (or, with store = true, the id of an item holding it that every node makes alike), take the seed
project's option names, default the seed from the message, are memoised, and refuse what they do not
support with clear errors."""

import base64

import pytest

pytest.importorskip("diffusers")

from conftest import OfflineContext, transformers_vm
from sd_fixtures import build_reference
from tfao.models.sources import ModelSource
from tfao.bridges.transformers import message_seed, output_item
from tfao.models.stable_diffusion import IMAGE_TAGS, StableDiffusionPipeline
from weavedrive.blob import Blob
from weavedrive.store import WeaveStore

DATA_URL = "data:image/png;base64,"
PROCESS_ID = "p" * 43


class WeaveContext(OfflineContext):
    """An offline context whose weave holds one model folder's files and a manifest naming them; the
    outputs it stores go to a real weave in ``home``."""

    def __init__(self, folder, home, process_id=PROCESS_ID):
        super().__init__()
        self.message = {"Id": "message-id-1"}
        self.process = {"id": process_id}
        self.weave = WeaveStore(home)
        self.files = {path: Blob.from_bytes(p.read_bytes()) for path, p in
                      ((path, folder / path) for path in ModelSource.from_folder(folder).paths())}
        self.manifest_blob = Blob.from_bytes(b"the manifest")

    def blob(self, value):
        if value == b"MANIFEST":
            return self.manifest_blob
        return super().blob(value)

    def manifest(self, blob):
        if blob is not self.manifest_blob:
            return None
        files = [{"path": path, "id": path, "size": b.size, "sha256": b.sha256} for path, b in self.files.items()]
        return {"name": "tiny-sd", "files": files}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    _, folder = build_reference(tmp_path_factory.mktemp("tiny-sd-lua"))
    return folder, StableDiffusionPipeline.from_pretrained(folder)


@pytest.fixture
def weave_vm(tiny, monkeypatch, tmp_path):
    """``weave_vm(home, process_id)``: a VM bridged to a WeaveContext over the tiny model."""
    monkeypatch.setattr(ModelSource, "from_manifest", classmethod(
        lambda cls, manifest, resolve: ModelSource({f["path"]: files[f["id"]] for f in manifest["files"]},
                                                   "manifest:tiny", manifest["name"])))
    files = WeaveContext(tiny[0], tmp_path / "home").files

    def make(home=tmp_path / "home", process_id=PROCESS_ID):
        context = WeaveContext(tiny[0], home, process_id)
        return transformers_vm(context), context

    return make


@pytest.fixture
def lua(weave_vm):
    return weave_vm()


def png_of(url: bytes) -> bytes:
    text = url.decode()
    assert text.startswith(DATA_URL)
    return base64.b64decode(text[len(DATA_URL):])


def test_txt2img_returns_the_python_pipelines_png(lua, tiny):
    vm, _ = lua
    url = vm.execute('return require("transformers").sd.txt2img{model="MANIFEST", prompt="a photo of a cat",'
                     ' steps=2, height=16, width=16, seed=3, scheduler="euler"}')
    expected = tiny[1]("a photo of a cat", height=16, width=16, num_inference_steps=2, seed=3, scheduler="euler", progress=False)
    assert png_of(url) == expected.png(0)


def test_seed_project_option_names(lua, tiny):
    vm, _ = lua
    urls = vm.execute('return require("transformers").sd.txt2img{model="MANIFEST", prompt="a cat", uncond_prompt="dog",'
                      ' n_steps=2, height=16, width=16, seed=4, num_samples=2, scheduler="ddim", sd_version="1.5"}')
    expected = tiny[1]("a cat", negative_prompt="dog", height=16, width=16, num_inference_steps=2, seed=4,
                       num_images_per_prompt=2, scheduler="ddim", progress=False)
    assert [png_of(urls[i]) for i in (1, 2)] == [expected.png(0), expected.png(1)]


def test_the_default_seed_comes_from_the_message(lua, tiny):
    vm, context = lua
    url = vm.execute('return require("transformers").sd.txt2img{model="MANIFEST", prompt="a cat", steps=1,'
                     ' height=16, width=16}')
    expected = tiny[1]("a cat", height=16, width=16, num_inference_steps=1, seed=message_seed(context), progress=False)
    assert png_of(url) == expected.png(0)


def test_img2img_from_a_data_url_and_memoised_results(lua, tiny):
    vm, context = lua
    code = ('local sd = require("transformers").sd local first = sd.txt2img{model="MANIFEST", prompt="a cat", steps=1,'
            ' height=16, width=16, seed=1} return sd.img2img{model="MANIFEST", prompt="a dog", image=first, n_steps=4,'
            ' img2img_strength=0.5, seed=2}')
    url = vm.execute(code)
    start = tiny[1]("a cat", height=16, width=16, num_inference_steps=1, seed=1, progress=False)
    expected = tiny[1]("a dog", image=start.images[0], strength=0.5, num_inference_steps=4, seed=2, progress=False)
    assert png_of(url) == expected.png(0)
    stored = dict(context.values)
    assert len(stored) == 2
    assert png_of(vm.execute(code)) == expected.png(0)  # served from the memo
    assert context.values == stored


@pytest.mark.parametrize("options,message", [
    ('prompt="x", sd_version="2.1"', "sd_version"), ('prompt="x", store="yes"', "opts.store must be true or false"),
    ('prompt="x", store=1', "opts.store must be true or false"), ("steps=2", "opts.prompt is required"),
    ('prompt="x", scheduler="heun"', "unknown scheduler"), ('prompt="x", steps=0', "opts.steps"),
    ('prompt="x", height=12.5', "opts.height"),
])
def test_clear_errors(lua, options, message):
    vm, _ = lua
    ok, err = vm.execute(f'return pcall(require("transformers").sd.txt2img, {{model="MANIFEST", {options}}})')
    assert ok is False and message in err.decode()
    ok, err = vm.execute('return pcall(require("transformers").sd.img2img, {model="MANIFEST", prompt="x"})')
    assert ok is False and "opts.image is required" in err.decode()


def test_img2img_refuses_sizes_that_would_need_resampling(lua):
    import io

    import numpy as np
    from PIL import Image

    vm, _ = lua
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((15, 16, 3), np.uint8)).save(buffer, format="PNG")
    vm.lua.globals().IMAGE = buffer.getvalue()
    ok, err = vm.execute('return pcall(require("transformers").sd.img2img, {model="MANIFEST", prompt="x", image=IMAGE})')
    assert ok is False and "16x15: both sides must be multiples of 2" in err.decode()


def test_components_one_by_one_need_all_four_files(lua, tiny):
    vm, _ = lua
    vm.lua.globals().UNET = (tiny[0] / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    ok, err = vm.execute('return pcall(require("transformers").sd.txt2img, {unet_model=UNET, prompt="x"})')
    assert ok is False and "opts.clip_model is required too" in err.decode()


# ------------------------------------------------------------------------------------- store = true
TXT2IMG = ('return require("transformers").sd.txt2img{model="MANIFEST", prompt="a photo of a cat", steps=2,'
           ' height=16, width=16, seed=3, scheduler="euler"%s}')
GOLDEN_STORED_ID = "F4GXQQcQZ9hAWYPrB5CItHvaw5TKB0MjPX4omVhsTrs"  # the exact-mode id of TXT2IMG's image stored by process PROCESS_ID


def test_store_adds_the_png_to_the_weave_and_returns_its_id(lua):
    vm, context = lua
    png = png_of(vm.execute(TXT2IMG % ""))
    item_id = vm.execute(TXT2IMG % ", store=true").decode()
    item = context.weave.get(item_id)
    assert context.weave.read_data(item_id) == png
    assert item.item_without_data().signature_type == 2 and item.item_without_data().anchor == b""
    assert item.tags == [("App-Name", "Transformers-AO"), ("Content-Type", "image/png"), ("Type", "Image"),
                         ("From-Process", PROCESS_ID)]
    assert output_item(PROCESS_ID, png, IMAGE_TAGS).verify()
    assert item_id == GOLDEN_STORED_ID


def test_the_stored_id_is_the_same_on_every_node_and_differs_between_processes(weave_vm, tmp_path):
    here, _ = weave_vm(tmp_path / "here")
    there, there_context = weave_vm(tmp_path / "there")
    other_process, _ = weave_vm(tmp_path / "other", process_id="q" * 43)
    item_id = here.execute(TXT2IMG % ", store=true")
    assert there.execute(TXT2IMG % ", store=true") == item_id
    assert there_context.weave.has(item_id.decode())
    assert other_process.execute(TXT2IMG % ", store=true") != item_id


def test_a_memo_hit_stores_the_item_again_where_it_is_missing(weave_vm, tmp_path):
    vm, context = weave_vm(tmp_path / "first")
    item_id = vm.execute(TXT2IMG % ", store=true").decode()
    fresh_vm, fresh = weave_vm(tmp_path / "fresh")
    fresh.values = context.values  # the memo survives, the weave is new: no inference, the same item
    fresh.cache = fresh
    assert fresh_vm.execute(TXT2IMG % ", store=true").decode() == item_id
    assert fresh.weave.read_data(item_id) == context.weave.read_data(item_id)
    assert fresh.values == context.values


def test_several_samples_store_one_item_each(lua):
    vm, context = lua
    urls = vm.execute(TXT2IMG % ", num_samples=2")
    ids = vm.execute(TXT2IMG % ", num_samples=2, store=true")
    assert [context.weave.read_data(ids[i].decode()) for i in (1, 2)] == [png_of(urls[i]) for i in (1, 2)]
    assert ids[1] != ids[2]


def test_img2img_stores_too(lua):
    vm, context = lua
    code = ('local sd = require("transformers").sd local first = sd.txt2img{model="MANIFEST", prompt="a cat", steps=1,'
            ' height=16, width=16, seed=1} return sd.img2img{model="MANIFEST", prompt="a dog", image=first, steps=2,'
            ' strength=0.5, seed=2%s}')
    assert context.weave.read_data(vm.execute(code % ", store=true").decode()) == png_of(vm.execute(code % ""))
