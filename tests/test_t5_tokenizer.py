"""The T5 tokenizer: a real-format tokenizer.json (Unigram, Metaspace, SentencePiece's precompiled charsmap)
trained here with sentencepiece and converted by transformers, read through ``tokenizers``."""

import io
import json
import types

import pytest

spm = pytest.importorskip("sentencepiece")
transformers = pytest.importorskip("transformers")
from transformers.convert_slow_tokenizer import T5Converter  # noqa: E402

from tfao.models.sources import ModelSource, SourceError  # noqa: E402
from tfao.models.t5 import tokenizer_from_json, tokenizer_from_source  # noqa: E402
from tfao.models.tokenization import encode  # noqa: E402

EXTRA_IDS = 8
CORPUS = ["the quick brown fox jumps over the lazy dog", "summarize: studies have shown that owning a dog is good",
          "translate English to German: the house is wonderful", "naïve café ｆｕｌｌｗｉｄｔｈ text, isn't it?",
          "a b c d e f g h i j k l m n o p q r s t u v w x y z . ! ?"] * 20


def tiny_t5_tokenizer(folder) -> int:
    """spiece.model (pad 0, eos 1, unk 2, nmt_nfkc) and the tokenizer.json transformers converts it to, with
    sentinels <extra_id_0>... as the last ids, as t5-small has them. Returns the vocabulary size."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS), model_writer=model, vocab_size=90,
                                   model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   normalization_rule_name="nmt_nfkc", character_coverage=1.0,
                                   hard_vocab_limit=False, minloglevel=2)
    (folder / "spiece.model").write_bytes(model.getvalue())
    pieces = spm.SentencePieceProcessor(model_proto=model.getvalue())
    original = types.SimpleNamespace(vocab_file=str(folder / "spiece.model"), _extra_ids=EXTRA_IDS,
                                     convert_tokens_to_ids=pieces.piece_to_id, handle_byte_fallback=False)
    tokenizer = T5Converter(original).converted()
    tokenizer.add_special_tokens(["<unk>"] + [f"<extra_id_{i}>" for i in range(EXTRA_IDS)])
    tokenizer.save(str(folder / "tokenizer.json"))
    return tokenizer.get_vocab_size()


def load(folder):
    return tokenizer_from_source(ModelSource.from_folder(folder))


@pytest.fixture
def folder(tmp_path):
    tiny_t5_tokenizer(tmp_path)
    return tmp_path


def test_the_file_has_the_real_t5_layout(folder):
    saved = json.loads((folder / "tokenizer.json").read_text())
    assert [n["type"] for n in saved["normalizer"]["normalizers"]][0] == "Precompiled"
    assert saved["pre_tokenizer"]["type"] == "Metaspace" and saved["model"]["type"] == "Unigram"
    assert saved["post_processor"]["type"] == "TemplateProcessing"


def test_encoding_is_sentencepiece_plus_eos(folder):
    pieces = spm.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
    tokenizer = load(folder)
    for text in CORPUS[:5] + ["  extra   spaces ", "ＦＵＬＬ width"]:
        assert tokenizer.encode(text).ids == pieces.encode(text) + [1], text


def test_padding_sentinels_and_decoding(folder):
    tokenizer = load(folder)
    batch = encode(tokenizer, ["the dog <extra_id_0> jumps", "fox"])
    assert batch.input_ids[1].tolist()[-1] == 0 and batch.attention_mask[1].tolist()[-1] == 0  # <pad> is 0
    sentinel = tokenizer.token_to_id("<extra_id_0>")
    assert sentinel == tokenizer.get_vocab_size() - 1 and sentinel in batch.input_ids[0].tolist()
    ids = batch.input_ids[0].tolist()
    assert tokenizer.decode(ids, skip_special_tokens=True) == "the dog jumps"
    reference = transformers.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    assert tokenizer.decode(ids, skip_special_tokens=False) == reference.decode(ids) == "the dog<extra_id_0> jumps</s>"


def test_a_folder_with_only_spiece_model_says_how_to_convert(folder):
    (folder / "tokenizer.json").unlink()
    with pytest.raises(SourceError, match="spiece.model but no tokenizer.json.*save_pretrained"):
        load(folder)
    with pytest.raises(ValueError, match="not a tokenizer.json.*spiece.model"):
        tokenizer_from_json((folder / "spiece.model").read_bytes())
