"""T5 pipelines: transformers' result shapes, task prefixes and defaults from task_specific_params, texts equal
to transformers' tokenize + generate + decode, encoder embeddings with mean pooling."""

import json
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("sentencepiece")
from transformers.cache_utils import DynamicCache, EncoderDecoderCache  # noqa: E402

from test_t5 import tiny_t5  # noqa: E402
from test_t5_tokenizer import tiny_t5_tokenizer  # noqa: E402
from tfao.kernels import ops  # noqa: E402
from tfao.models.pipelines import pipeline  # noqa: E402
from tfao.models.t5 import PIPELINES, T5Text  # noqa: E402

TASK_PARAMS = {
    "summarization": {"prefix": "summarize: ", "num_beams": 2, "max_length": 12, "min_length": 4,
                      "no_repeat_ngram_size": 3, "length_penalty": 2.0, "early_stopping": True},
    "translation_en_to_de": {"prefix": "translate English to German: ", "max_length": 9, "num_beams": 2},
}
PROMPTS = ["the quick brown fox jumps over the lazy dog", "a dog"]


def tiny_t5_folder(folder, variant="v1.0"):
    """A tiny T5 with a real-format tokenizer and t5-small's kind of task_specific_params."""
    vocab = tiny_t5_tokenizer(folder)
    reference = tiny_t5(folder, variant, vocab=vocab)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "task_specific_params": TASK_PARAMS}))
    return reference


@pytest.fixture(scope="module")
def t5_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("t5")
    return folder, tiny_t5_folder(folder)


@pytest.fixture(scope="module")
def t5_saved(t5_folder):
    """The folder of ``t5_folder`` alone, for modules that read the saved files (import this fixture
    together with ``t5_folder``)."""
    return t5_folder[0]


def reference_texts(reference, folder, prompts, **options):
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), pad_token="<pad>")
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        ids = reference.generate(**batch, cache=EncoderDecoderCache(DynamicCache(), DynamicCache()), do_sample=False,
                                 **options)
    return tokenizer.batch_decode(ids, skip_special_tokens=True)


def test_text2text_generation_matches_transformers(t5_folder):
    folder, reference = t5_folder
    generate = pipeline("text2text-generation", folder)
    expected = reference_texts(reference, folder, PROMPTS, max_new_tokens=8)
    assert generate(PROMPTS, max_new_tokens=8) == [{"generated_text": text} for text in expected]
    assert generate(PROMPTS[0], max_new_tokens=8) == [{"generated_text": expected[0]}]
    beams = generate(PROMPTS[0], max_new_tokens=8, num_beams=3, num_return_sequences=2)
    assert [entry["generated_text"] for entry in beams] == reference_texts(
        reference, folder, PROMPTS[:1], max_new_tokens=8, num_beams=3, num_return_sequences=2)


def test_summarization_and_translation_use_the_task_params(t5_folder):
    folder, reference = t5_folder
    summary = pipeline("summarization", folder)(PROMPTS)
    params = TASK_PARAMS["summarization"]
    expected = reference_texts(reference, folder, [params["prefix"] + p for p in PROMPTS], max_length=12,
                               min_length=4, num_beams=2, no_repeat_ngram_size=3, length_penalty=2.0,
                               early_stopping=True)
    assert summary == [{"summary_text": text} for text in expected]
    translation = pipeline("translation_en_to_de", folder)(PROMPTS[1])
    expected = reference_texts(reference, folder, ["translate English to German: a dog"], max_length=9, num_beams=2)
    assert translation == [{"translation_text": expected[0]}]


def test_unknown_tasks_and_options_are_clear_errors(t5_folder):
    folder, _ = t5_folder
    with pytest.raises(ValueError, match="unknown task 'fill-mask'.*translation_xx_to_yy"):
        pipeline("fill-mask", folder)
    with pytest.raises(ValueError, match="unknown generation option"):
        pipeline("summarization", folder)("x", beams=3)


def test_feature_extraction_mean_pools_the_encoder(t5_folder):
    folder, reference = t5_folder
    text_model = T5Text.from_pretrained(folder)
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), pad_token="<pad>")
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = reference.encoder(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None].float()
    expected = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    for mode in ops.MODES:
        embed = PIPELINES["feature-extraction"](text_model, mode=mode)
        got = embed(PROMPTS)
        assert got.shape == expected.shape and np.abs(got - expected).max() / np.abs(expected).max() <= 1e-5
        assert embed(PROMPTS[1]).tobytes() == got[1].tobytes() or mode == "fast"
        normalized = embed(PROMPTS, normalize=True)
        assert np.allclose(np.linalg.norm(normalized, axis=1), 1.0, atol=1e-6)
