"""t5-small generation: tfao exact and fast mode against transformers' T5ForConditionalGeneration.

t5-small's shapes (6 + 6 layers, d_model 512, 8 heads, d_ff 2048, vocab 32128, ReLU, tied) with random
weights; the EOS embedding is zeroed so every side generates the full 32 new tokens. Workloads: greedy at
batch 1 and 8, beam search (4 beams) at batch 1, each from a 16-token prompt. Each side runs in its own
process and the sides alternate (see ``harness``); prints medians, the ratios to transformers, the CPU and
BLAS kernel of each side, then a profile of exact mode.

    python bench/t5.py [--repeats 5]
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harness import measure, print_machines, print_profile, print_table, serve_side  # noqa: E402

NEW_TOKENS = 32
PROMPT_LENGTH = 16
WORKLOADS = {"greedy, batch 1": (1, 1), "greedy, batch 8": (8, 1), "beam 4, batch 1": (1, 4)}  # (batch, beams)


def write_t5_small(folder: Path) -> None:
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.T5Config(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8,
                                   feed_forward_proj="relu", decoder_start_token_id=0)
    model = transformers.T5ForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.shared.weight[config.eos_token_id] = 0.0  # tied head: eos logit 0, never the largest in practice
    model.save_pretrained(folder)


def prompts(batch: int):
    import numpy as np

    ids = np.random.default_rng(batch).integers(2, 32000, (batch, PROMPT_LENGTH))
    ids[:, -1] = 1  # eos ends the prompt, as the tokenizer's template does
    return ids


def tfao_workloads(folder: str, mode: str):
    from tfao.models.t5 import T5ForConditionalGeneration

    model = T5ForConditionalGeneration.from_pretrained(folder)

    def run(ids, beams):
        out = model.generate(ids, max_new_tokens=NEW_TOKENS, num_beams=beams, mode=mode)
        assert out.shape[1] == NEW_TOKENS + 1, out.shape

    return {name: (lambda ids=prompts(batch), beams=beams: run(ids, beams))
            for name, (batch, beams) in WORKLOADS.items()}


def transformers_workloads(folder: str):
    import torch
    import transformers

    model = transformers.T5ForConditionalGeneration.from_pretrained(folder).eval()

    def run(ids, beams):
        with torch.inference_mode():
            out = model.generate(input_ids=ids, max_new_tokens=NEW_TOKENS, num_beams=beams, do_sample=False)
        assert out.shape[1] == NEW_TOKENS + 1, out.shape

    return {name: (lambda ids=torch.tensor(prompts(batch)), beams=beams: run(ids, beams))
            for name, (batch, beams) in WORKLOADS.items()}


SIDES = {"transformers": transformers_workloads, "exact": lambda folder: tfao_workloads(folder, "exact"),
         "fast": lambda folder: tfao_workloads(folder, "fast")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--side", choices=sorted(SIDES))
    parser.add_argument("--folder", help="(for the sides) the saved random t5-small")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    if args.side:
        return serve_side(lambda: SIDES[args.side](args.folder))
    with tempfile.TemporaryDirectory() as folder:
        write_t5_small(Path(folder))
        medians, machines = measure(__file__, list(SIDES), list(WORKLOADS), args.repeats, "--folder", folder)
        print_machines(machines)
        print_table(f"t5-small, {NEW_TOKENS} new tokens from {PROMPT_LENGTH}, median of {args.repeats},"
                    " sides alternating in separate processes", medians, "transformers", list(WORKLOADS))
        if not args.no_profile:
            print_profile(tfao_workloads(folder, "exact")["greedy, batch 1"], 3, "exact mode, greedy batch 1")


if __name__ == "__main__":
    main()
