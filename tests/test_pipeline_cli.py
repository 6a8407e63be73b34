"""``tfao pipeline``: any registered task from the command line, text lines or --json."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sentencepiece")

from test_t5_pipelines import t5_folder, t5_saved  # noqa: E402,F401 (fixtures)
from tfao.cli.main import main  # noqa: E402
from tfao.models.pipelines import pipeline  # noqa: E402


def run(capsys, *argv):
    code = main(["pipeline", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_summaries_print_one_per_line_and_as_json(capsys, t5_saved):
    expected = pipeline("summarization", t5_saved)(["a dog", "the quick brown fox"])
    code, out, _ = run(capsys, "summarization", "--model", t5_saved, "a dog", "the quick brown fox")
    assert code == 0 and out.splitlines() == [entry["summary_text"] for entry in expected]
    code, out, _ = run(capsys, "translation_en_to_de", "--model", t5_saved, "--json", "-o", "max_new_tokens=5", "a dog")
    expected = pipeline("translation_en_to_de", t5_saved)("a dog", max_new_tokens=5)
    assert code == 0 and json.loads(out) == expected


def test_bert_embeddings_and_option_errors(capsys, tiny_sentence_model):
    folder = tiny_sentence_model()
    code, out, _ = run(capsys, "feature-extraction", "--model", folder, "--json", "hello world")
    assert code == 0 and np.allclose(json.loads(out), pipeline("feature-extraction", folder)("hello world"))
    code, _, err = run(capsys, "feature-extraction", "--model", folder, "-o", "normalize=true", "hello")
    assert code == 1 and "takes no option(s) normalize" in err
    code, _, err = run(capsys, "fill-mask", "--model", folder, "hello")
    assert code == 1 and "unknown task 'fill-mask'" in err
