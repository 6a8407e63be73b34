"""The scoped, shape-checked, memory-mapped checkpoint reader every model family loads through."""

import numpy as np
import pytest
import torch
from safetensors.torch import save, save_file

from tfao.kernels.weights import WeightError, Weights


@pytest.fixture
def checkpoint(tmp_path):
    tensors = {
        "encoder.layer.0.attention.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4),
        "encoder.layer.0.norm.weight": torch.tensor([1.5, -2.25], dtype=torch.float16),
        "encoder.layer.1.norm.weight": torch.tensor([0.1, 3.0e38, -7.0], dtype=torch.bfloat16),
        "position_ids": torch.arange(5, dtype=torch.int64),
    }
    path = tmp_path / "model.safetensors"
    save_file(tensors, path)
    return path, tensors


def test_tensors_are_read_by_scoped_name_as_float32(checkpoint):
    path, tensors = checkpoint
    weights = Weights.load(path)
    layer = weights.pp("encoder").pp("layer").pp(0)
    assert np.array_equal(layer.get("attention.weight", (3, 4)), tensors["encoder.layer.0.attention.weight"].numpy())
    assert layer.get("norm.weight").dtype == np.float32
    assert layer.get("norm.weight").tolist() == [1.5, -2.25]
    bf16 = weights.get("encoder.layer.1.norm.weight", (3,))
    assert np.array_equal(bf16, tensors["encoder.layer.1.norm.weight"].float().numpy())
    assert sorted(weights.pp("encoder.layer.0").names()) == ["attention.weight", "norm.weight"]


def test_float32_tensors_are_views_of_the_mapped_file(checkpoint):
    path, _ = checkpoint
    array = Weights.load(path).get("encoder.layer.0.attention.weight")
    assert not array.flags.writeable and not array.flags.owndata


def test_missing_and_misshaped_tensors_are_named(checkpoint):
    path, _ = checkpoint
    layer = Weights.load(path).pp("encoder.layer.0")
    with pytest.raises(WeightError, match="missing tensor encoder.layer.0.attention.bias"):
        layer.get("attention.bias")
    with pytest.raises(WeightError, match=r"encoder.layer.0.attention.weight has shape \(3, 4\), expected \(4, 3\)"):
        layer.get("attention.weight", (4, 3))


def test_shards_and_bytes_load_as_one_checkpoint(tmp_path):
    save_file({"a": torch.ones(2)}, tmp_path / "1.safetensors")
    weights = Weights.load([tmp_path / "1.safetensors", save({"b": torch.zeros(3)})])
    assert weights.get("a").tolist() == [1, 1] and weights.get("b", (3,)).tolist() == [0, 0, 0]
    with pytest.raises(WeightError, match="two shards"):
        Weights.load([tmp_path / "1.safetensors", tmp_path / "1.safetensors"])


def test_renamed_maps_names_and_drops(checkpoint):
    path, _ = checkpoint
    weights = Weights.load(path).renamed(lambda n: n.replace("encoder.", "enc.") if n != "position_ids" else None)
    assert weights.has("enc.layer.0.attention.weight") and not weights.has("position_ids")


@pytest.mark.parametrize("data", [b"", b"\x01", (2**40).to_bytes(8, "little") + b"{}", (2).to_bytes(8, "little") + b"{x",
                                  (60).to_bytes(8, "little") + b'{"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}'])
def test_malformed_files_are_refused(data):
    with pytest.raises(WeightError):
        Weights.load(data)
