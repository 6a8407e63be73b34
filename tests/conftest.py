# --- tiny model factories: small random models saved the way the reference libraries save them ---
import json
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "Hello", "the", "a", "cat", "sat"]
TINY_VOCAB += [f"w{i}" for i in range(101 - len(TINY_VOCAB))]


def save_tiny_bert(folder, *, masked_lm=False, seed=0, **overrides):
    """A random BERT (vocab 101, 40 positions) saved with save_pretrained; returns the torch model."""
    import torch
    import transformers

    torch.manual_seed(seed)
    settings = dict(hidden_size=32, num_attention_heads=4, intermediate_size=37, num_hidden_layers=2) | overrides
    config = transformers.BertConfig(vocab_size=101, max_position_embeddings=40, type_vocab_size=2, **settings)
    model = (transformers.BertForMaskedLM if masked_lm else transformers.BertModel)(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    return model.bert if masked_lm else model


def save_tiny_sentence_model(folder, *, pooling="mean", normalize=True, modules=True, lowercase=True,
                             max_seq_length=None, **overrides):
    """A tiny sentence-transformers folder: BERT, vocab.txt, tokenizer_config.json and (with ``modules``)
    modules.json, 1_Pooling/config.json and sentence_bert_config.json."""
    save_tiny_bert(folder, **overrides)
    (folder / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lowercase}))
    if modules:
        listed = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                  {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
        if normalize:
            listed.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (folder / "modules.json").write_text(json.dumps(listed))
        (folder / "1_Pooling").mkdir(exist_ok=True)
        flags = {f"pooling_mode_{name}": pooling == key for key, name in
                 [("mean", "mean_tokens"), ("cls", "cls_token"), ("max", "max_tokens")]}
        (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **flags}))
        (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length or 40}))
    return folder


@pytest.fixture
def tiny_sentence_model(tmp_path_factory):
    """``make(**options)`` -> the folder of a fresh tiny sentence-transformers model (see save_tiny_sentence_model)."""
    return lambda **options: save_tiny_sentence_model(tmp_path_factory.mktemp("tiny-model"), **options)


class OfflineContext:
    """What the transformers bridge needs of a process context, without a node: no weave (model files
    are given as bytes), a dict for the inference memo, exact math."""

    prepared = None

    def __init__(self, math_mode="exact"):
        self.math_mode = math_mode
        self.cache = self
        self.values = {}

    def get(self, key):
        return self.values.get(key)

    def put(self, key, value):
        self.values[key] = value

    def blob(self, value):
        from weavedrive.blob import to_blob

        return to_blob(value)

    def manifest(self, blob):
        return None


def transformers_vm(context, **vm_options):
    """A sandboxed VM whose require("transformers") is bridged to ``context``."""
    from tfao.bridges.context import bridge_sources
    from tfao.bridges.transformers import bridge_functions
    from tfao.sandbox.luavm import LuaVM, bundled_sources

    return LuaVM(bridges={"transformers": bridge_functions(context)}, sources=bundled_sources() | bridge_sources(),
                 **vm_options)


# --- determinism matrix: run a child under each BLAS kernel, thread count and numpy SIMD level ---
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor


def _dispatch_names():
    from numpy._core import _multiarray_umath as umath

    supported = [name for name in umath.__cpu_dispatch__ if umath.__cpu_features__.get(name)]
    return [name for name in supported if name != "X86_V3"], [name for name in supported]


def determinism_variants() -> dict[str, dict[str, str]]:
    no_avx512, no_avx2 = _dispatch_names()
    variants = {
        "default": {},
        "haswell": {"OPENBLAS_CORETYPE": "Haswell"},
        "sandybridge": {"OPENBLAS_CORETYPE": "SandyBridge"},
        "prescott": {"OPENBLAS_CORETYPE": "Prescott"},
        "1 thread": {"OPENBLAS_NUM_THREADS": "1"},
        "2 threads": {"OPENBLAS_NUM_THREADS": "2"},
    }
    if no_avx512:
        variants["numpy without AVX-512"] = {"NPY_DISABLE_CPU_FEATURES": " ".join(no_avx512)}
    if "X86_V3" in no_avx2:
        variants["numpy without AVX2"] = {"NPY_DISABLE_CPU_FEATURES": " ".join(no_avx2)}
    return variants


def run_child(code: str, env_changes: dict[str, str], timeout: float = 120) -> str:
    """The last line ``code`` prints, run in exact mode in a fresh interpreter with ``env_changes``."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")}
    env.update(env_changes, TFAO_MATH="exact", HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def outputs_everywhere(code: str, variants: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
    """``{variant: last line printed}`` for ``code`` run under each determinism variant, two at a time."""
    variants = determinism_variants() if variants is None else variants
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(variants, pool.map(lambda env: run_child(code, env), variants.values())))


@pytest.fixture
def determinism_matrix():
    """Runs child code under every determinism variant; returns ``{variant: last line printed}``."""
    return outputs_everywhere
