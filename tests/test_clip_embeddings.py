"""CLIP text embeddings as a feature-extraction model: what transformers' ``CLIPModel.get_text_features``
(and ``CLIPTextModelWithProjection``'s ``text_embeds``, ``CLIPTextModel``'s pooled output) give, in both math
modes, from Python, the command line and Lua; the vision tower is never read; exact mode has a golden hash
under the determinism matrix; the real CLIP tokenizer gives transformers' ids."""

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from clip_fixtures import TINY_TEXT, reference_embeddings, save_tiny_clip
from conftest import OfflineContext, transformers_vm
from sd_fixtures import shared_data
from tfao.cli.main import main
from tfao.kernels.modes import KERNELS_VERSION
from tfao.models.clip import load_clip_tokenizer
from tfao.models.pipelines import pipeline

TEXTS = ["a photo of a cat", "a dog", "cat " * 50, "PHOTO  of\ta DOG!"]  # the third is cut to 40 positions
REAL_TOKENIZER = shared_data("clip-tokenizer")
# exact-mode embeddings of TEXTS by the tiny CLIPModel (sha256 of the float32 bytes), by kernels version
GOLDEN_SHA256 = {1: "e88a81cdfcf09eb7d2eafce96ea897869393a8746f06426408ce2a9a4db1fd6d", 2: "92ffc638793d5507c31335fd542d95b0b4700ad876fad4e87867a840d8c859a1",
                 3: "92ffc638793d5507c31335fd542d95b0b4700ad876fad4e87867a840d8c859a1",
                 4: "92ffc638793d5507c31335fd542d95b0b4700ad876fad4e87867a840d8c859a1"}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """kind -> (torch model, fixture folder); the checkpoint is in folder / "model"."""
    made = {}
    for kind, tokenizer in (("clip", "json"), ("projection", "bpe"), ("text", "json")):
        folder = tmp_path_factory.mktemp(f"tiny-clip-{kind}")
        made[kind] = save_tiny_clip(folder, kind, tokenizer), folder
    return made


def rel_err(got, want):
    return float(np.max(np.abs(np.asarray(got, np.float64) - want)) / np.max(np.abs(want)))


@pytest.mark.parametrize("mode", ["exact", "fast"])
@pytest.mark.parametrize("kind", ["clip", "projection", "text"])
def test_embeddings_match_transformers(checkpoints, kind, mode):
    model, folder = checkpoints[kind]
    want = reference_embeddings(model, folder, TEXTS)
    got = pipeline("feature-extraction", folder / "model", mode=mode)(TEXTS)
    width = TINY_TEXT["projection_dim"] if kind != "text" else TINY_TEXT["hidden_size"]
    assert got.shape == want.shape == (len(TEXTS), width)
    assert rel_err(got, want) <= 1e-5


def test_one_text_a_list_and_normalisation(checkpoints):
    embed = pipeline("feature-extraction", checkpoints["clip"][1] / "model")
    many = embed(TEXTS)
    assert embed(TEXTS[0]).tobytes() == many[0].tobytes()  # exact bits do not depend on the batch
    unit = embed(TEXTS, normalize_embeddings=True)
    assert np.allclose(np.linalg.norm(unit, axis=1), 1, atol=1e-6)
    assert np.allclose(unit, many / np.linalg.norm(many, axis=1, keepdims=True), atol=1e-6)


def test_the_vision_tower_is_never_read(checkpoints, tmp_path):
    from safetensors.numpy import load_file, save_file

    folder = checkpoints["clip"][1] / "model"
    spoiled = tmp_path / "spoiled"
    shutil.copytree(folder, spoiled)
    tensors = load_file(folder / "model.safetensors")
    assert any(name.startswith("vision_model.") for name in tensors)
    save_file({name: np.full_like(t, np.nan) if name.startswith(("vision_model.", "visual_projection")) else t
               for name, t in tensors.items()}, spoiled / "model.safetensors")
    assert pipeline("feature-extraction", spoiled)(TEXTS).tobytes() == pipeline("feature-extraction", folder)(TEXTS).tobytes()


def test_configs_that_leave_out_default_fields(checkpoints, tmp_path):
    folder = checkpoints["projection"][1] / "model"
    sparse = tmp_path / "sparse"
    shutil.copytree(folder, sparse)
    config = json.loads((folder / "config.json").read_text())
    for name in ("hidden_act", "layer_norm_eps", "initializer_range"):  # transformers' defaults
        del config[name]
    (sparse / "config.json").write_text(json.dumps(config))
    assert pipeline("feature-extraction", sparse)(TEXTS).tobytes() == pipeline("feature-extraction", folder)(TEXTS).tobytes()


def test_sentence_transformers_clip_folders(checkpoints, tmp_path):
    pytest.importorskip("sentence_transformers")
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import CLIPModel

    folder = shutil.copytree(checkpoints["clip"][1] / "model", tmp_path / "clip")
    transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    model = SentenceTransformer(modules=[CLIPModel(str(folder))])
    model.save(str(tmp_path / "saved"))  # the module's files at the top, as sentence-transformers saves today
    texts = [text for text in TEXTS if len(text) < 40]  # sentence-transformers cuts at 77 tokens, past these 40 positions
    want = model.encode(texts)
    assert rel_err(pipeline("feature-extraction", tmp_path / "saved")(texts), want) <= 1e-5
    older = tmp_path / "older"  # clip-ViT-B-32's layout: the CLIPModel module in 0_CLIPModel/
    shutil.copytree(folder, older / "0_CLIPModel")
    (older / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "0_CLIPModel",
                                                      "type": "sentence_transformers.models.CLIPModel"}]))
    assert rel_err(pipeline("feature-extraction", older)(texts), want) <= 1e-5


CHILD = r"""
import hashlib
from tfao.models.clip import CLIPTextEmbedder
embedder = CLIPTextEmbedder.from_pretrained(FOLDER)
texts = TEXTS
together = embedder.encode(texts)
for i, text in enumerate(texts):
    assert embedder.encode([text]).tobytes() == together[i].tobytes(), "batch composition changed the bits"
print(hashlib.sha256(together.tobytes()).hexdigest())
"""


def test_exact_embeddings_are_golden_everywhere(checkpoints, determinism_matrix):
    code = CHILD.replace("FOLDER", repr(str(checkpoints["clip"][1] / "model"))).replace("TEXTS", repr(TEXTS))
    hashes = determinism_matrix(code)
    assert set(hashes.values()) == {GOLDEN_SHA256[KERNELS_VERSION]}, hashes


def test_the_command_line(capsys, checkpoints):
    folder = checkpoints["projection"][1] / "model"
    code = main(["pipeline", "feature-extraction", "--model", str(folder), "--json", "a photo of a cat"])
    assert code == 0
    assert json.loads(capsys.readouterr().out) == pipeline("feature-extraction", folder)("a photo of a cat").astype(np.float64).tolist()
    assert main(["pipeline", "feature-extraction", "--model", str(folder), "-o", "normalize_embeddings=true", "a cat", "a dog"]) == 0
    rows = np.array([json.loads(line) for line in capsys.readouterr().out.splitlines()])
    assert rows.shape == (2, TINY_TEXT["projection_dim"]) and np.allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-6)


@pytest.fixture
def lua(checkpoints):
    folder = checkpoints["clip"][1] / "model"
    context = OfflineContext()
    vm = transformers_vm(context)
    g = vm.lua.globals()
    g.M, g.T, g.C = ((folder / name).read_bytes() for name in ("model.safetensors", "tokenizer.json", "config.json"))
    return vm, context, folder


def vectors(table):
    return np.array([list(row.values()) for row in table.values()], dtype=np.float64).astype(np.float32)


def test_encode_text_from_lua(lua):
    vm, context, folder = lua
    expected = pipeline("feature-extraction", folder)(TEXTS[:2])
    rows, model_id = vm.execute('local v, meta = require("transformers").clip.encode_text{model=M, tokenizer=T, config=C,'
                                ' prompt={"a photo of a cat", "a dog"}, model_id="tiny-clip"} return v, meta.model_id')
    assert vectors(rows).tobytes() == expected.tobytes() and model_id == b"tiny-clip"
    assert len(context.values) == 1
    unit = vm.execute('return (require("transformers").clip.encode_text{model=M, tokenizer=T, config=C,'
                      ' prompt={"a photo of a cat", "a dog"}, normalize_embeddings=true})')
    assert vectors(unit).tobytes() == pipeline("feature-extraction", folder)(TEXTS[:2], normalize_embeddings=True).tobytes()
    single = vm.execute('local embed = require("transformers").pipeline("feature-extraction", {model=M, tokenizer=T,'
                        ' config=C}) return embed("a photo of a cat")')
    assert np.array(list(single.values()), np.float64).astype(np.float32).tobytes() == expected[0].tobytes()
    ok, err = vm.execute('return pcall(require("transformers").clip.encode_text, {model=M, tokenizer=T, config=C,'
                         ' prompt="x", normalize_embeddings="yes"})')
    assert ok is False and "normalize_embeddings must be a boolean" in err.decode()


PROMPTS = ["a photo of a cat", "A Photo  of\tTWO cats!!", "naïve café, 1984's best", "an astronaut riding a horse on mars",
           "don't stop " * 30]


@pytest.mark.skipif(REAL_TOKENIZER is None, reason="the real CLIP tokenizer files are not beside the checkout")
def test_the_real_clip_tokenizer_gives_transformers_ids(tmp_path):
    reference = transformers.CLIPTokenizer(str(REAL_TOKENIZER / "vocab.json"), str(REAL_TOKENIZER / "merges.txt"))
    want = reference(PROMPTS, truncation=True, max_length=77).input_ids
    for name in ("vocab.json", "merges.txt"):  # a folder without tokenizer.json, as SD1.5's
        shutil.copy(REAL_TOKENIZER / name, tmp_path / name)
    for folder in (REAL_TOKENIZER, tmp_path):
        tokenizer = load_clip_tokenizer(folder, pad_to_max_length=False)
        assert [tokenizer.encode(prompt).ids for prompt in PROMPTS] == want
    assert want[0] == [49406, 320, 1125, 539, 320, 2368, 49407]
