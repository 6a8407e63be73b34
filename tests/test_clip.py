"""CLIP text encoders against transformers on tiny random configs, in both math modes."""

import hashlib

import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from tfao.kernels.clip import CLIPTextModel, CLIPTextModelWithProjection
from tfao.kernels.modes import KERNELS_VERSION
from tfao.kernels.weights import WeightError, Weights

MODES = ["exact", "fast"]
# exact-mode output hashes by kernels version (a deliberate change of bits bumps KERNELS_VERSION)
GOLDEN_SHA256 = {1: "2397416dd73ede155e0031ff0a35f8319190f72ed4b17ec5eca19b56728b617c", 2: "b156a9791475fb1f9ebe1916f63cb4bef8a501e9c99f7b232156ba5288ac0777",
                 3: "b156a9791475fb1f9ebe1916f63cb4bef8a501e9c99f7b232156ba5288ac0777",
                 4: "b156a9791475fb1f9ebe1916f63cb4bef8a501e9c99f7b232156ba5288ac0777"}


def tiny_config(**changes):
    settings = dict(vocab_size=1000, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                    max_position_embeddings=77, hidden_act="quick_gelu", bos_token_id=998, eos_token_id=999, pad_token_id=999)
    settings.update(changes)
    return transformers.CLIPTextConfig(**settings)


def save_reference(model_class, config, folder):
    torch.manual_seed(0)
    model = model_class(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    return model


def token_ids(eos=999):
    # Two prompts padded with the end token to 12 positions, as Stable Diffusion pads to 77
    ids = np.full((2, 12), eos, dtype=np.int64)
    ids[0, :6] = [998, 5, 17, 300, 42, eos]
    ids[1, :9] = [998, 7, 7, 901, 12, 3, 250, 64, eos]
    return ids


def rel_err(got, want):
    want = np.asarray(want, dtype=np.float64)
    return float(np.max(np.abs(np.asarray(got, dtype=np.float64) - want)) / np.max(np.abs(want)))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("activation", ["quick_gelu", "gelu"])
def test_text_model_matches_transformers(tmp_path, mode, activation):
    reference = save_reference(transformers.CLIPTextModel, tiny_config(hidden_act=activation), tmp_path)
    ids = token_ids()
    with torch.no_grad():
        want = reference(torch.from_numpy(ids))
    hidden, pooled = CLIPTextModel.from_pretrained(tmp_path)(ids, mode=mode)
    assert rel_err(hidden, want.last_hidden_state.numpy()) <= 1e-5
    assert rel_err(pooled, want.pooler_output.numpy()) <= 1e-5


@pytest.mark.parametrize("mode", MODES)
def test_old_configs_pool_at_the_largest_token_id(tmp_path, mode):
    # SD1.5's text_encoder/config.json predates transformers PR #24773: eos_token_id 2, pooled at argmax(ids)
    reference = save_reference(transformers.CLIPTextModel, tiny_config(bos_token_id=0, eos_token_id=2, pad_token_id=1), tmp_path)
    ids = token_ids()
    ids[:, 1] = 997  # the largest id is not the end token: the old rule pools here
    with torch.no_grad():
        want = reference(torch.from_numpy(ids)).pooler_output.numpy()
    _, pooled = CLIPTextModel.from_pretrained(tmp_path)(ids, mode=mode)
    assert rel_err(pooled, want) <= 1e-5


def test_text_model_prefix_and_position_ids_buffer(tmp_path):
    save_reference(transformers.CLIPTextModel, tiny_config(), tmp_path)
    flat = CLIPTextModel.from_pretrained(tmp_path)
    tensors = {f"text_model.{name}": tensor for name, tensor in load_file(tmp_path / "model.safetensors").items()}
    tensors["text_model.embeddings.position_ids"] = torch.arange(77, dtype=torch.int64)[None]
    save_file(tensors, tmp_path / "model.safetensors")
    prefixed = CLIPTextModel.from_pretrained(tmp_path)
    ids = token_ids()
    assert flat(ids)[0].tobytes() == prefixed(ids)[0].tobytes()


@pytest.mark.parametrize("mode", MODES)
def test_projection_model_matches_transformers(tmp_path, mode):
    reference = save_reference(transformers.CLIPTextModelWithProjection, tiny_config(projection_dim=24), tmp_path)
    ids = token_ids()
    with torch.no_grad():
        want = reference(torch.from_numpy(ids))
    embeds, hidden = CLIPTextModelWithProjection.from_pretrained(tmp_path)(ids, mode=mode)
    assert embeds.shape == (2, 24)
    assert rel_err(embeds, want.text_embeds.numpy()) <= 1e-5
    assert rel_err(hidden, want.last_hidden_state.numpy()) <= 1e-5


@pytest.mark.parametrize("mode", MODES)
def test_padding_mask_matches_transformers(tmp_path, mode):
    reference = save_reference(transformers.CLIPTextModel, tiny_config(), tmp_path)
    ids = token_ids()
    mask = (np.arange(12)[None] < np.array([[6], [9]])).astype(np.int64)
    with torch.no_grad():
        want = reference(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state.numpy()
    hidden, _ = CLIPTextModel.from_pretrained(tmp_path)(ids, attention_mask=mask, mode=mode)
    assert rel_err(hidden, want) <= 1e-5


def test_exact_bits_do_not_depend_on_batch_and_match_the_golden_hash(tmp_path):
    save_reference(transformers.CLIPTextModel, tiny_config(), tmp_path)
    model = CLIPTextModel.from_pretrained(tmp_path)
    ids = token_ids()
    batch, _ = model(ids, mode="exact")
    alone = np.concatenate([model(ids[i:i + 1], mode="exact")[0] for i in range(2)])
    assert batch.tobytes() == alone.tobytes()
    assert hashlib.sha256(batch.tobytes()).hexdigest() == GOLDEN_SHA256[KERNELS_VERSION]


def test_missing_tower_and_bad_ids_are_clear_errors(tmp_path):
    with pytest.raises(WeightError, match="no CLIP text tower"):
        CLIPTextModel(tiny_config().to_dict(), Weights.from_arrays({"x": np.zeros(2, np.float32)}))
    save_reference(transformers.CLIPTextModel, tiny_config(), tmp_path)
    with pytest.raises(ValueError, match="token ids"):
        CLIPTextModel.from_pretrained(tmp_path)([[5, 1000]])
