"""Tiny random CLIP checkpoints saved by transformers, for the CLIP feature-extraction tests.

``save_tiny_clip(folder, "clip")`` is a full ``CLIPModel`` (text and vision towers, a legacy config that
pools at the largest token id, as openai/clip-vit-base-patch32's); ``"projection"`` a
``CLIPTextModelWithProjection`` and ``"text"`` a ``CLIPTextModel`` (current configs: pooled at the first
end token). Unusual sizes: 3 heads of 8, FFN 37, 40 positions, projection 20. The tokenizer is the tiny
byte-level BPE of the SD fixtures, as tokenizer.json (``tokenizer="json"``) or vocab.json and merges.txt.
"""

import json

from sd_fixtures import write_tiny_bpe

TINY_TEXT = dict(hidden_size=24, intermediate_size=37, num_hidden_layers=2, num_attention_heads=3,
                 max_position_embeddings=40, projection_dim=20, hidden_act="quick_gelu")
TINY_VISION = dict(hidden_size=16, intermediate_size=19, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                   patch_size=8, projection_dim=20)


def save_tiny_clip(folder, kind="clip", tokenizer="json", seed=0):
    """Save a tiny random CLIP checkpoint of ``kind`` with its tokenizer in ``folder``; returns the torch model."""
    import torch
    import transformers

    vocab_folder, vocab_size = write_tiny_bpe(folder / "bpe")
    vocab = json.loads((vocab_folder / "vocab.json").read_text())
    bos, eos = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    special = dict(bos_token_id=0, eos_token_id=2, pad_token_id=1) if kind == "clip" else \
        dict(bos_token_id=bos, eos_token_id=eos, pad_token_id=eos)
    text = transformers.CLIPTextConfig(vocab_size=vocab_size, **TINY_TEXT, **special)
    torch.manual_seed(seed)
    if kind == "clip":
        # the text config keeps its default projection_dim (512): CLIPModel projects to the outer one
        inner = {key: value for key, value in text.to_dict().items() if key != "projection_dim"}
        config = transformers.CLIPConfig(text_config=inner, vision_config=TINY_VISION, projection_dim=20)
        model = transformers.CLIPModel(config)
    else:
        model = (transformers.CLIPTextModelWithProjection if kind == "projection" else transformers.CLIPTextModel)(text)
    model.eval().save_pretrained(folder / "model", safe_serialization=True)
    if tokenizer == "json":
        transformers.CLIPTokenizer(str(vocab_folder / "vocab.json"), str(vocab_folder / "merges.txt"),
                                   model_max_length=77).save_pretrained(folder / "model")
    else:
        for name in ("vocab.json", "merges.txt"):
            (folder / "model" / name).write_bytes((vocab_folder / name).read_bytes())
    return model


def reference_tokenizer(folder):
    import transformers

    return transformers.CLIPTokenizer(str(folder / "bpe" / "vocab.json"), str(folder / "bpe" / "merges.txt"),
                                      model_max_length=77)


def reference_embeddings(model, folder, texts):
    """What users of transformers get: ``get_text_features`` (projected pooled output) of a CLIPModel,
    ``text_embeds`` of a CLIPTextModelWithProjection, ``pooler_output`` of a CLIPTextModel."""
    import torch

    batch = reference_tokenizer(folder)(texts, padding=True, truncation=True,
                                        max_length=TINY_TEXT["max_position_embeddings"], return_tensors="pt")
    with torch.no_grad():
        if hasattr(model, "get_text_features"):
            out = model.get_text_features(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
            out = out if isinstance(out, torch.Tensor) else out.pooler_output
        else:
            out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
            out = out.text_embeds if hasattr(out, "text_embeds") else out.pooler_output
    return out.numpy()
