"""T5 on the exact core against transformers: tiny random v1.0 and v1.1 / flan models with unusual sizes."""

import json
import os

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
import safetensors.torch  # noqa: E402

from tfao.kernels import ops  # noqa: E402
from tfao.kernels.t5 import relative_position_buckets  # noqa: E402
from tfao.kernels.weights import WeightError  # noqa: E402
from tfao.models.t5 import T5EncoderModel, T5ForConditionalGeneration  # noqa: E402

VOCAB = 61
V10 = dict(d_model=24, d_kv=5, d_ff=37, num_layers=2, num_decoder_layers=3, num_heads=3, feed_forward_proj="relu",
           relative_attention_num_buckets=12, relative_attention_max_distance=20)
V11 = dict(d_model=20, d_kv=7, d_ff=29, num_layers=3, num_decoder_layers=2, num_heads=2, feed_forward_proj="gated-gelu",
           relative_attention_num_buckets=10, relative_attention_max_distance=16)
VARIANTS = {"v1.0": V10, "v1.1": V11}


def tiny_t5(folder, variant="v1.0", dtype=None, shard=False, seed=0, vocab=VOCAB):
    """A tiny random T5 saved the way real checkpoints are, and transformers' model reloaded from that folder.

    Norm weights get random signs and sizes (a random tied T5 otherwise copies its input); v1.1 gets an
    untied ``lm_head.weight`` and ``tie_word_embeddings: false`` as google/t5-v1_1 and flan-t5 files have
    (transformers 5 cannot build such a model in code).
    """
    torch.manual_seed(seed)
    config = transformers.T5Config(vocab_size=vocab, decoder_start_token_id=0, **VARIANTS[variant])
    model = transformers.T5ForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "layer_norm" in name:
                parameter.uniform_(-1.5, 1.5)
    model.save_pretrained(folder, **({"max_shard_size": "20KB"} if shard else {}))
    if variant == "v1.1" or dtype is not None:
        files = sorted(folder.glob("model*.safetensors"))
        for path in files:
            tensors = safetensors.torch.load_file(path)
            if variant == "v1.1" and "shared.weight" in tensors:
                tensors["lm_head.weight"] = torch.randn(vocab, config.d_model)
            if dtype is not None:
                tensors = {name: tensor.to(dtype) for name, tensor in tensors.items()}
            safetensors.torch.save_file(tensors, path, metadata={"format": "pt"})
        if variant == "v1.1":
            saved = json.loads((folder / "config.json").read_text())
            saved.pop("scale_decoder_outputs", None)
            saved["tie_word_embeddings"] = False
            (folder / "config.json").write_text(json.dumps(saved))
            index = folder / "model.safetensors.index.json"
            if index.exists():
                mapping = json.loads(index.read_text())
                mapping["weight_map"]["lm_head.weight"] = mapping["weight_map"]["shared.weight"]
                index.write_text(json.dumps(mapping))
    return transformers.T5ForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()


def batch(seed=0, rows=3, length=11, decoder_length=9):
    """Prompts right-padded as tokenizers pad them: row 1 is shorter, row 2 a single token."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, VOCAB, (rows, length))
    mask = np.ones((rows, length), dtype=np.int64)
    mask[1, 6:] = 0
    mask[2, 1:] = 0
    ids[mask == 0] = 0
    decoder_ids = rng.integers(2, VOCAB, (rows, decoder_length))
    decoder_ids[:, 0] = 0
    return ids, mask, decoder_ids


def reference_logits(reference, ids, mask, decoder_ids):
    with torch.no_grad():
        return reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                         decoder_input_ids=torch.tensor(decoder_ids)).logits.numpy()


def relative_error(got, ref):
    return np.abs(got - ref).max() / np.abs(ref).max()


@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_match_transformers_in_both_modes(tmp_path, variant):
    reference = tiny_t5(tmp_path, variant)
    model = T5ForConditionalGeneration.from_pretrained(tmp_path)
    assert model.config.scale_decoder_outputs == (variant == "v1.0")
    ids, mask, decoder_ids = batch()
    ref = reference_logits(reference, ids, mask, decoder_ids)
    for mode in ops.MODES:
        got = model(ids, decoder_ids, mask, mode=mode)
        assert got.shape == (3, 9, VOCAB) and got.dtype == np.float32
        assert relative_error(got, ref) <= 1e-5, mode
        alone = model(ids[1:2, :6], decoder_ids[1:2], mode=mode)
        assert relative_error(alone, ref[1:2]) <= 1e-5, mode


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_and_sharded_checkpoints(tmp_path, dtype):
    reference = tiny_t5(tmp_path, "v1.1", dtype=getattr(torch, dtype), shard=True)
    assert (tmp_path / "model.safetensors.index.json").exists()
    model = T5ForConditionalGeneration.from_pretrained(tmp_path)
    ids, mask, decoder_ids = batch(1)
    ref = reference_logits(reference, ids, mask, decoder_ids)
    for mode in ops.MODES:
        assert relative_error(model(ids, decoder_ids, mask, mode=mode), ref) <= 1e-5, mode


def test_encoder_model_matches_transformers(tmp_path):
    tiny_t5(tmp_path, "v1.1")
    tensors = load_file(tmp_path / "model.safetensors")
    encoder_only = tmp_path / "encoder"
    encoder_only.mkdir()
    save_file({k: v for k, v in tensors.items() if k == "shared.weight" or k.startswith("encoder.")},
              encoder_only / "model.safetensors")
    (encoder_only / "config.json").write_text((tmp_path / "config.json").read_text())
    reference = transformers.T5EncoderModel.from_pretrained(encoder_only).eval()
    model = T5EncoderModel.from_pretrained(encoder_only)
    ids, mask, _ = batch(2)
    with torch.no_grad():
        ref = reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state.numpy()
    keep = mask.astype(bool)
    for mode in ops.MODES:
        got = model(ids, mask, mode=mode)
        assert got.shape == ref.shape
        assert np.abs(got - ref)[keep].max() / np.abs(ref[keep]).max() <= 1e-5, mode


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("buckets, distance", [(32, 128), (12, 20), (10, 16), (7, 9)])
def test_position_buckets_match_transformers(bidirectional, buckets, distance):
    relative = np.arange(-300, 301)
    ref = transformers.models.t5.modeling_t5.T5Attention._relative_position_bucket(
        torch.tensor(relative), bidirectional=bidirectional, num_buckets=buckets, max_distance=distance).numpy()
    assert relative_position_buckets(relative, bidirectional, buckets, distance).tolist() == ref.tolist()


def test_a_file_with_only_the_shared_embedding_loads(tmp_path):
    tiny_t5(tmp_path, "v1.0")
    tensors = load_file(tmp_path / "model.safetensors")
    assert "shared.weight" in tensors and "lm_head.weight" not in tensors
    model = T5ForConditionalGeneration.from_pretrained(tmp_path)
    assert model.lm_head.weight_t.T.tobytes() == tensors["shared.weight"].tobytes()


def test_missing_and_misshaped_tensors_are_named(tmp_path):
    tiny_t5(tmp_path, "v1.0")
    path = tmp_path / "model.safetensors"
    tensors = load_file(path)
    del tensors["decoder.block.2.layer.1.EncDecAttention.k.weight"]
    save_file(tensors, path)
    with pytest.raises(WeightError, match=r"missing tensor decoder\.block\.2\.layer\.1\.EncDecAttention\.k\.weight"):
        T5ForConditionalGeneration.from_pretrained(tmp_path)
    tensors = load_file(path)
    tensors["decoder.block.2.layer.1.EncDecAttention.k.weight"] = np.zeros((15, 23), np.float32)
    save_file(tensors, path)
    with pytest.raises(WeightError, match=r"EncDecAttention\.k\.weight has shape \(15, 23\), expected \(15, 24\)"):
        T5ForConditionalGeneration.from_pretrained(tmp_path)


def test_unknown_feed_forward_is_a_clear_error(tmp_path):
    tiny_t5(tmp_path, "v1.0")
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "feed_forward_proj": "gated-swish-x"}))
    with pytest.raises(ValueError, match="feed_forward_proj"):
        T5ForConditionalGeneration.from_pretrained(tmp_path)
