"""Exact-mode T5 logits and generated ids have the same bits under every BLAS kernel, thread count and numpy
SIMD level, alone and inside a padded batch, with and without the KV cache, and equal golden hashes.

The weights come from the project's own generator (torch's random init may differ by CPU), so the golden
hashes hold on any machine.
"""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from tfao.kernels.random import Generator

GOLDEN = {
    "v1.0": "d9f6c0f8b321063a27a6ef018e470a75f3991dd07c0619cd4837b89b6755ac0e",
    "v1.1": "1814f26206e2bf9483759806719357ef32fcad3a4233a000df8cb005f6de8e00",
}
CONFIGS = {
    "v1.0": dict(d_model=24, d_kv=5, d_ff=37, num_layers=2, num_decoder_layers=3, num_heads=3,
                 feed_forward_proj="relu", relative_attention_num_buckets=12, relative_attention_max_distance=20),
    "v1.1": dict(d_model=20, d_kv=7, d_ff=29, num_layers=3, num_decoder_layers=2, num_heads=2,
                 feed_forward_proj="gated-gelu", relative_attention_num_buckets=10, relative_attention_max_distance=16,
                 tie_word_embeddings=False),
}
VOCAB = 61

CHILD = r"""
import hashlib, sys
import numpy as np
from tfao.models.t5 import T5ForConditionalGeneration
model = T5ForConditionalGeneration.from_pretrained(sys.argv[1])
ids = np.array([[5, 17, 33, 2, 48, 9, 21, 60, 3, 12], [7, 44, 19, 8, 0, 0, 0, 0, 0, 0], [30, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
mask = (np.arange(10)[None, :] < np.array([[10], [4], [1]])).astype(np.int64)
decoder_ids = np.array([[0, 4, 9, 50, 13, 2, 37]] * 3)
logits = model(ids, decoder_ids, mask)
assert logits[1:2].tobytes() == model(ids[1:2, :4], decoder_ids[1:2]).tobytes(), "batching changed the logits"
digest = hashlib.sha256(logits.tobytes())
searches = [dict(max_new_tokens=10, repetition_penalty=1.3), dict(max_new_tokens=10, num_beams=3, eos_token_id=9),
            dict(max_new_tokens=10, do_sample=True, seed=11, temperature=2.0, top_p=0.9)]
for options in searches:
    generated = model.generate(ids, mask, **options)
    assert generated.tobytes() == model.generate(ids, mask, use_cache=False, **options).tobytes(), options
    alone = model.generate(ids[1:2, :4], **options)
    assert alone.tolist() == generated[1:2, :alone.shape[1]].tolist(), options
    digest.update(generated.astype("<i8").tobytes())
print(digest.hexdigest())
"""


def write_model(folder, variant):
    """A tiny T5 folder in the layout transformers writes, weights drawn from the project's generator."""
    config = dict(model_type="t5", vocab_size=VOCAB, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                  layer_norm_epsilon=1e-6, **CONFIGS[variant])
    d, inner, ff, buckets = config["d_model"], config["num_heads"] * config["d_kv"], config["d_ff"], \
        config["relative_attention_num_buckets"]
    gated = config["feed_forward_proj"].startswith("gated")
    shapes = {"shared.weight": (VOCAB, d)}
    if not config.get("tie_word_embeddings", True):
        shapes["lm_head.weight"] = (VOCAB, d)
    for stack, layers in (("encoder", config["num_layers"]), ("decoder", config["num_decoder_layers"])):
        attentions = ["SelfAttention"] + (["EncDecAttention"] if stack == "decoder" else [])
        shapes[f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] = (buckets, config["num_heads"])
        shapes[f"{stack}.final_layer_norm.weight"] = (d,)
        for i in range(layers):
            for j, attention in enumerate(attentions):
                for name in "qkv":
                    shapes[f"{stack}.block.{i}.layer.{j}.{attention}.{name}.weight"] = (inner, d)
                shapes[f"{stack}.block.{i}.layer.{j}.{attention}.o.weight"] = (d, inner)
                shapes[f"{stack}.block.{i}.layer.{j}.layer_norm.weight"] = (d,)
            ff_layer = f"{stack}.block.{i}.layer.{len(attentions)}"
            for name in (["wi_0", "wi_1"] if gated else ["wi"]):
                shapes[f"{ff_layer}.DenseReluDense.{name}.weight"] = (ff, d)
            shapes[f"{ff_layer}.DenseReluDense.wo.weight"] = (d, ff)
            shapes[f"{ff_layer}.layer_norm.weight"] = (d,)
    generator = Generator(seed=2024)
    tensors = {}
    for name, shape in shapes.items():
        scale = 1.0 if len(shape) == 1 or "relative_attention_bias" in name else shape[1] ** -0.5
        tensors[name] = generator.standard_normal(shape) * np.float32(scale)
    save_file(tensors, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("variant", CONFIGS)
def test_exact_t5_bits_are_the_same_everywhere(tmp_path, variant, determinism_matrix):
    write_model(tmp_path, variant)
    hashes = determinism_matrix(CHILD.replace("sys.argv[1]", repr(str(tmp_path))))
    assert set(hashes.values()) == {GOLDEN[variant]}, hashes
