"""The model runtime seam: one reader of model sources (folders and weave manifests alike), the registry
behind tfao.pipeline, the single-flight model cache, and prepared exact weights shared through files."""

import threading
import time

import numpy as np
import pytest

import tfao
from tfao.kernels import ops
from tfao.models import registry
from tfao.models.bert import SentenceEncoder, SentenceSettings
from tfao.models.cache import ModelCache
from tfao.models.pipelines import pipeline
from tfao.models.sources import ModelSource, SourceError, open_source
from weavedrive.manifest import import_model, manifest_of
from weavedrive.store import WeaveStore

pytest.importorskip("transformers")


def manifest_source(folder, tmp_path, wallets):
    store = WeaveStore(tmp_path / "home")
    manifest, _ = import_model(store, folder, wallets[0], name="tiny/bert")
    return ModelSource.from_manifest(manifest_of(store.data_blob(manifest.id)), store.data_blob), manifest.id


@pytest.mark.parametrize("options", [
    dict(pooling="cls", normalize=False, lowercase=False, max_seq_length=6),
    dict(pooling="max", normalize=True),
    dict(modules=False),
])
def test_a_folder_and_its_manifest_read_alike(tiny_sentence_model, tmp_path, wallets, options):
    folder = tiny_sentence_model(**options)
    from_folder = ModelSource.from_folder(folder)
    from_weave, _ = manifest_source(folder, tmp_path, wallets)
    assert from_folder.paths() == from_weave.paths()
    assert SentenceSettings.from_source(from_folder) == SentenceSettings.from_source(from_weave)
    texts = ["Hello world", "the cat sat hello hello world the cat sat", ""]
    by_folder = SentenceEncoder.from_source(from_folder).encode(texts)
    assert by_folder.tobytes() == SentenceEncoder.from_source(from_weave).encode(texts).tobytes()


def test_the_layout_settings(tiny_sentence_model):
    settings = SentenceSettings.from_source(ModelSource.from_folder(tiny_sentence_model(pooling="cls", normalize=False,
                                                                                        max_seq_length=6)))
    assert settings == SentenceSettings(pooling="cls", normalize=False, max_seq_length=6)
    # without modules.json: a mean-pooled, normalised sentence encoder (the same rule for folders and Lua)
    assert SentenceSettings.from_source(ModelSource.from_folder(tiny_sentence_model(modules=False))) == SentenceSettings()


def test_do_lower_case_is_honoured(tiny_sentence_model):
    cased = SentenceEncoder.from_source(ModelSource.from_folder(tiny_sentence_model(lowercase=False)))
    uncased = SentenceEncoder.from_source(ModelSource.from_folder(tiny_sentence_model(lowercase=True)))
    assert cased.tokenizer.encode("Hello").ids != uncased.tokenizer.encode("Hello").ids
    assert uncased.tokenizer.encode("Hello").ids == uncased.tokenizer.encode("hello").ids


def test_normalized_embeddings_have_unit_length(tiny_sentence_model):
    vectors = pipeline("feature-extraction", tiny_sentence_model(normalize=True))(["hello world", "a cat"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    raw = pipeline("feature-extraction", tiny_sentence_model(normalize=False))(["hello world"])
    assert not np.isclose(np.linalg.norm(raw), 1.0)


def test_a_source_names_what_it_lacks(tiny_sentence_model):
    source = ModelSource.from_folder(tiny_sentence_model())
    with pytest.raises(SourceError, match="has no file unet/config.json"):
        source.sub("unet").json("config.json")
    assert source.sub("1_Pooling").paths() == ["config.json"]
    with pytest.raises(SourceError, match="neither a model folder nor a manifest id"):
        open_source("no/such/folder")


def test_pipeline_by_task_over_the_registry(tiny_sentence_model, tmp_path, wallets):
    folder = tiny_sentence_model()
    assert "feature-extraction" in registry.tasks()
    source = ModelSource.from_folder(folder)
    assert registry.family_of(source).name == "bert"
    embed = tfao.pipeline("feature-extraction", folder)
    assert embed("hello").shape == (32,) and embed(["hello", "a"]).shape == (2, 32)
    with pytest.raises(ValueError, match="unknown task 'translation'.*feature-extraction"):
        tfao.pipeline("translation", folder)
    # by manifest id, from the weave of a node home
    _, manifest_id = manifest_source(folder, tmp_path, wallets)
    by_id = tfao.pipeline("feature-extraction", manifest_id, home=tmp_path / "home")
    assert by_id("hello").tobytes() == embed("hello").tobytes()
    model = tfao.BertModel.from_pretrained(manifest_id, home=tmp_path / "home")
    assert model(np.array([[2, 5, 3]])).shape == (1, 3, 32)


def test_the_cache_loads_a_model_once_for_concurrent_callers():
    cache, loads = ModelCache(max_bytes=100), []

    def load():
        loads.append(1)
        time.sleep(0.2)
        return object()

    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get_or_load("m", load, lambda _: 10))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1 and len({id(value) for value in got}) == 1


def test_the_cache_never_keeps_more_than_its_budget():
    cache = ModelCache(max_bytes=100)
    cache.get_or_load("big", object, lambda _: 101)
    assert "big" not in cache  # returned, not kept
    for name in ("a", "b", "c"):
        cache.get_or_load(name, object, lambda _: 40)
    assert "a" not in cache and "b" in cache and "c" in cache and cache.total_bytes() == 80
    with pytest.raises(RuntimeError):
        cache.get_or_load("broken", lambda: (_ for _ in ()).throw(RuntimeError("no")), lambda _: 1)
    assert cache.get_or_load("broken", lambda: "loaded", lambda _: 1) == "loaded"  # a failed load is not kept


def test_prepared_exact_weights_are_shared_files(tiny_sentence_model, tmp_path):
    folder = tiny_sentence_model()
    store = ops.PreparedStore(tmp_path / "prepared")
    private = SentenceEncoder.from_source(ModelSource.from_folder(folder))
    shared = SentenceEncoder.from_source(ModelSource.from_folder(folder), prepared=store)
    texts = ["hello world", "the cat sat"]
    assert shared.encode(texts, mode="exact").tobytes() == private.encode(texts, mode="exact").tobytes()
    files = sorted((tmp_path / "prepared").glob("*.npy"))
    assert len(files) == 2 * 4  # 2 layers x 4 dense layers (query, key and value stacked as one), one file each
    assert all(name.name.startswith(f"v{ops.KERNELS_VERSION}-") for name in files)
    linear = next(iter(shared.model.linears.values()))
    weight_q = linear._exact_weight()[1]
    assert isinstance(weight_q, np.memmap) and not weight_q.flags.writeable
    again = SentenceEncoder.from_source(ModelSource.from_folder(folder), prepared=store)
    assert again.encode(texts, mode="exact").tobytes() == private.encode(texts, mode="exact").tobytes()
    assert sorted((tmp_path / "prepared").glob("*.npy")) == files  # written once
