"""T5 generation: greedy and beam ids identical to transformers' ``generate``; the KV cache, batching and
seeded sampling never change the bits in exact mode."""

import json
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from transformers.cache_utils import DynamicCache, EncoderDecoderCache  # noqa: E402

from test_t5 import VARIANTS, batch, tiny_t5  # noqa: E402
from tfao.kernels import ops  # noqa: E402
from tfao.models.t5 import T5ForConditionalGeneration  # noqa: E402

# eos 1 is rare in a random model: other eos ids make hypotheses finish early, at different steps
SEARCHES = {
    "greedy": dict(max_new_tokens=12),
    "greedy, early eos": dict(max_new_tokens=12, eos_token_id=3),
    "greedy, penalties": dict(max_new_tokens=10, repetition_penalty=1.5, no_repeat_ngram_size=2, min_new_tokens=6),
    "beam": dict(max_new_tokens=12, eos_token_id=9, num_beams=3),
    "beam, returned sequences": dict(max_new_tokens=12, eos_token_id=9, num_beams=4, num_return_sequences=3,
                                     length_penalty=-0.5),
    "beam, early stopping": dict(max_new_tokens=12, eos_token_id=56, num_beams=2, early_stopping=True,
                                 min_new_tokens=3),
    "beam, never stop early": dict(max_new_tokens=12, eos_token_id=3, num_beams=3, early_stopping="never",
                                   length_penalty=2.0),
    "beam, penalties": dict(max_new_tokens=8, num_beams=2, no_repeat_ngram_size=3, repetition_penalty=1.3),
}


@pytest.fixture(scope="module", params=list(VARIANTS))
def models(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    reference = tiny_t5(folder, request.param)
    return reference, T5ForConditionalGeneration.from_pretrained(folder), folder


def reference_generate(reference, ids, mask, **options):
    # transformers 5 sizes its default cache from the encoder's layer count: give it one that grows
    with torch.no_grad():
        return reference.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), do_sample=False,
                                  cache=EncoderDecoderCache(DynamicCache(), DynamicCache()), **options).numpy()


@pytest.mark.parametrize("search", SEARCHES)
def test_ids_match_transformers(models, search):
    reference, model, _ = models
    ids, mask, _ = batch()
    expected = reference_generate(reference, ids, mask, **SEARCHES[search])
    for mode in ops.MODES:
        assert model.generate(ids, mask, mode=mode, **SEARCHES[search]).tolist() == expected.tolist(), mode


@pytest.mark.parametrize("search", ["greedy, penalties", "beam, returned sequences"])
def test_cache_and_batch_never_change_the_bits(models, search):
    _, model, _ = models
    ids, mask, _ = batch()
    options = SEARCHES[search]
    copies = options.get("num_return_sequences", 1)
    cached = model.generate(ids, mask, **options)
    assert model.generate(ids, mask, use_cache=False, **options).tolist() == cached.tolist()
    alone = model.generate(ids[1:2, :6], **options)
    assert alone.tolist() == cached[copies:2 * copies, :alone.shape[1]].tolist()
    state = model.start(ids, mask)
    first, second = state.next_logits(np.full((3, 1), 0)), state.next_logits(np.full((3, 1), 7))
    step_by_step = np.concatenate([first, second], axis=1)
    assert step_by_step.tobytes() == model(ids, [[0, 7]] * 3, mask).tobytes()


def test_seeded_sampling_is_reproducible_and_batch_independent(models):
    _, model, _ = models
    ids, mask, _ = batch()
    options = dict(do_sample=True, max_new_tokens=10, seed=7, top_k=30, top_p=0.95, temperature=3.0,
                   num_return_sequences=2)
    sampled = model.generate(ids, mask, **options)
    assert sampled.shape[0] == 6
    assert model.generate(ids, mask, **options).tolist() == sampled.tolist()
    assert model.generate(ids, mask, use_cache=False, **options).tolist() == sampled.tolist()
    alone = model.generate(ids[1:2, :6], **options)
    assert alone.tolist() == sampled[2:4, :alone.shape[1]].tolist()
    assert model.generate(ids, mask, **{**options, "seed": 8}).tolist() != sampled.tolist()
    assert sampled[0].tolist() != sampled[1].tolist()  # each returned sequence has its own stream


def test_top_k_one_samples_the_greedy_ids(models):
    _, model, _ = models
    ids, mask, _ = batch()
    greedy = model.generate(ids, mask, max_new_tokens=8)
    assert model.generate(ids, mask, max_new_tokens=8, do_sample=True, top_k=1, seed=3).tolist() == greedy.tolist()
    assert model.generate(ids, mask, max_new_tokens=8, do_sample=True, top_p=1e-6, seed=3).tolist() == greedy.tolist()


def test_defaults_come_from_generation_config(models):
    _, _, folder = models
    (folder / "generation_config.json").write_text(json.dumps(
        {"decoder_start_token_id": 0, "eos_token_id": 1, "pad_token_id": 0, "num_beams": 2, "max_length": 6}))
    model = T5ForConditionalGeneration.from_pretrained(folder)
    ids, mask, _ = batch()
    assert model.generate(ids, mask).tolist() == model.generate(ids, mask, num_beams=2, max_new_tokens=5).tolist()
    assert model.generate(ids, mask, num_beams=1).shape[1] <= 6


def test_bad_options_are_clear_errors(models):
    _, model, _ = models
    ids, mask, _ = batch()
    with pytest.raises(ValueError, match="unknown generation option"):
        model.generate(ids, mask, num_beam=2)
    with pytest.raises(ValueError, match="num_return_sequences"):
        model.generate(ids, mask, num_beams=2, num_return_sequences=3)
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(ids, mask, max_new_tokens=0)


@pytest.mark.parametrize("search", ["greedy, penalties", "beam, returned sequences"])
def test_a_decoder_prefix_is_continued_as_transformers_does(models, search):
    reference, model, _ = models
    ids, mask, _ = batch()
    options = {**SEARCHES[search], "min_new_tokens": 4}
    prefix = np.array([[0, 5, 7]] * 3)
    expected = reference_generate(reference, ids, mask, decoder_input_ids=torch.tensor(prefix), **options)
    assert model.generate(ids, mask, decoder_prefix=[5, 7], **options).tolist() == expected.tolist()


@pytest.mark.parametrize("length, k", [(7, 3), (50, 4), (4 * 3001, 8), (20000, 1)])
def test_top_k_is_the_head_of_the_stable_descending_sort(length, k):
    """Long rows (a beam search's beams times the vocabulary) are cut down by a partition first: the indices
    stay those of the whole row's stable sort, ties to the lower index, NaN below every number."""
    from tfao.kernels.generation import _top_k

    rng = np.random.default_rng(length)
    values = rng.integers(-5, 5, (3, length)).astype(np.float32)  # many ties, also at the k-th value
    values[0, ::3] = np.nan
    values[1, :] = -np.inf
    values[1, length // 2] = 0.0
    values[2, 1::2] = -0.0
    expected = np.argsort(-values, axis=-1, kind="stable")[:, :k]
    assert np.array_equal(_top_k(values, k), expected)
    few_numbers = np.full((1, length), np.nan, dtype=np.float32)
    few_numbers[0, -1] = 1.0
    assert np.array_equal(_top_k(few_numbers, k), np.argsort(-few_numbers, axis=-1, kind="stable")[:, :k])
