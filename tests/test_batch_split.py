"""A large batch is split over the cores: in exact mode each model then gives the bits of one call on the
whole batch, whatever the number of cores; fast mode splits too."""

import threading
import time
from collections import Counter

import numpy as np
import pytest
import transformers

import test_clip
import test_unet
from conftest import save_tiny_bert
from tfao.kernels import ops, parallel
from tfao.kernels.bert import BertModel
from tfao.kernels.clip import CLIPTextModel
from tfao.kernels.t5 import T5Encoder
from tfao.kernels.unet import UNet2DConditionModel
from tfao.kernels.winograd import Winograd3x3
from tfao.models.t5 import T5EncoderModel
from test_t5 import tiny_t5


def split_and_whole(monkeypatch, model_class, call):
    """(bits on 3 cores, bits on 1, the batch sizes the forward saw on 3 cores)."""
    seen = []
    forward = model_class._forward

    def recording(self, first, *rest):
        seen.append(len(first))
        return forward(self, first, *rest)

    monkeypatch.setattr(model_class, "_forward", recording)
    monkeypatch.setattr(parallel, "blas_threads", lambda: 1)
    whole = call()
    seen.clear()
    monkeypatch.setattr(parallel, "blas_threads", lambda: 3)
    split = call()
    return split, whole, seen


def as_bytes(result):
    return b"".join(part.tobytes() for part in result) if isinstance(result, tuple) else result.tobytes()


def padded(rows, length, vocab, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, (rows, length))
    mask = np.ones((rows, length), dtype=np.int64)
    mask[1, length // 2:] = 0  # one padded row: the pieces differ in padding
    return ids, mask


def test_bert_batch(tmp_path, monkeypatch):
    save_tiny_bert(tmp_path)
    model = BertModel.from_pretrained(tmp_path)
    ids, mask = padded(5, 40, 101)
    split, whole, seen = split_and_whole(monkeypatch, BertModel, lambda: model(ids, mask, mode="exact"))
    assert seen == [1, 2, 2] and split.tobytes() == whole.tobytes()


def test_clip_batch(tmp_path, monkeypatch):
    test_clip.save_reference(transformers.CLIPTextModel, test_clip.tiny_config(), tmp_path)
    model = CLIPTextModel.from_pretrained(tmp_path)
    ids = np.random.default_rng(1).integers(0, 998, (3, 77))
    ids[:, -1] = 999  # the end token
    split, whole, seen = split_and_whole(monkeypatch, CLIPTextModel, lambda: model(ids, mode="exact"))
    assert seen == [1, 1, 1] and as_bytes(split) == as_bytes(whole)


def test_t5_encoder_batch(tmp_path, monkeypatch):
    tiny_t5(tmp_path)
    model = T5EncoderModel.from_pretrained(tmp_path)
    ids, mask = padded(4, 40, 61)
    split, whole, seen = split_and_whole(monkeypatch, T5Encoder, lambda: model(ids, mask, mode="exact"))
    assert seen == [1, 1, 2] and split.tobytes() == whole.tobytes()


def test_unet_cfg_batch(tmp_path, monkeypatch):
    test_unet.save_reference(tmp_path, **test_unet.SD15_LIKE)
    unet = UNet2DConditionModel.from_pretrained(tmp_path)
    sample, context = (t.numpy() for t in test_unet.inputs())
    split, whole, seen = split_and_whole(monkeypatch, UNet2DConditionModel, lambda: unet(sample, 500, context, mode="exact"))
    assert seen == [1, 1] and split.tobytes() == whole.tobytes()


@pytest.mark.parametrize("mode, rows, length, pieces", [
    ("exact", 3, 12, [3]), ("fast", 3, 12, [3]),  # 36 tokens stay whole
    ("exact", 4, 32, [1, 1, 2]),  # 128 tokens split
    ("fast", 4, 32, [4]), ("fast", 8, 32, [4, 4]), ("fast", 12, 32, [4, 4, 4]),  # 128 tokens a piece
])
def test_small_batches_stay_whole_and_fast_mode_splits_by_128_tokens(tmp_path, monkeypatch, mode, rows, length, pieces):
    save_tiny_bert(tmp_path)
    model = BertModel.from_pretrained(tmp_path)
    ids, mask = padded(rows, length, 101)
    _, _, seen = split_and_whole(monkeypatch, BertModel, lambda: model(ids, mask, mode=mode))
    assert seen == pieces


@pytest.mark.parametrize("pieces, threads", [(3, 1), (4, 2), (7, 3)])
def test_pieces_run_side_by_side_only_with_enough_for_each_thread(monkeypatch, pieces, threads):
    monkeypatch.setattr(parallel, "blas_threads", lambda: 3)
    seen = set()

    def work(_):
        seen.add(threading.get_ident())
        time.sleep(0.05)  # long enough that every thread gets a piece

    parallel.run_pieces(work, range(pieces), per_thread=2)
    assert len(seen) == threads


def counted_slow(monkeypatch, cls, name, builds):
    build = getattr(cls, name)

    def slow(self, *args):
        builds[id(self)] += 1
        time.sleep(0.01)  # widens the window in which another piece reaches the same layer
        return build(self, *args)

    monkeypatch.setattr(cls, name, slow)


def test_pieces_prepare_each_weight_once(tmp_path, monkeypatch):
    """The pieces of a split batch reach each layer's first exact call together: one prepares the layer's
    weights, into the shared store, and the others wait for them."""
    test_unet.save_reference(tmp_path / "unet", **test_unet.SD15_LIKE)
    sample, context = (t.numpy() for t in test_unet.inputs())
    whole = UNet2DConditionModel.from_pretrained(tmp_path / "unet")(sample, 500, context, mode="exact")
    builds = Counter()
    counted_slow(monkeypatch, ops.Linear, "_quantized_weight", builds)
    counted_slow(monkeypatch, Winograd3x3, "_build", builds)
    monkeypatch.setattr(parallel, "blas_threads", lambda: 2)
    store = ops.PreparedStore(tmp_path / "prepared")
    unet = UNet2DConditionModel.from_pretrained(tmp_path / "unet", prepared=store)
    assert unet(sample, 500, context, mode="exact").tobytes() == whole.tobytes()
    assert builds and set(builds.values()) == {1}
    assert list(store.folder.glob("*.npy")) and not list(store.folder.glob("*.partial"))


def test_writers_of_one_prepared_weight_may_race(tmp_path):
    store = ops.PreparedStore(tmp_path)
    start = threading.Barrier(4)
    arrays = []

    def write():
        start.wait()
        arrays.extend(store.arrays("key", ("weight",), lambda: (np.arange(1000.0),)))

    writers = [threading.Thread(target=write) for _ in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert len(arrays) == 4 and all(np.array_equal(a, np.arange(1000.0)) for a in arrays)
    assert [path.name for path in tmp_path.iterdir()] == ["key.weight.npy"]
