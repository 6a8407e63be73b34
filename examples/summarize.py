"""Summaries inside a process, with a T5 checkpoint addressed by its weave manifest id.

The process summarises what it is sent with the model's own summarization settings (its config.json's
task_specific_params: the "summarize: " prefix, beam search, lengths), in exact math: every node that
evaluates the message computes the same text. A Continue message samples a continuation instead, seeded by
the message, so it too is the same on every node.

Run with: python examples/summarize.py T5_FOLDER [TEXT...]
(T5_FOLDER: a Hugging Face folder such as t5-small's: config.json, model.safetensors, tokenizer.json)
"""

import sys
from pathlib import Path

from tfao.node import Node
from weavedrive.admission import attest_with_files
from weavedrive.manifest import import_model

SUMMARY_PROCESS = """
local t5 = require("transformers").t5

Handlers.add("Summarize", function(msg)
  local summary = t5.generate({ model = MODEL_ID, prompt = msg.Data, task = "summarization",
                                max_new_tokens = tonumber(msg.Tags["Max-Tokens"] or "60") })
  msg.reply({ Data = summary })
end)

Handlers.add("Continue", function(msg)
  -- sampling: the seed defaults to one derived from this message, so every node draws the same text
  msg.reply({ Data = t5.generate({ model = MODEL_ID, prompt = msg.Data, temperature = 0.8, top_p = 0.9,
                                   max_new_tokens = 30 }) })
end)
"""

TEXTS = ["studies have shown that owning a dog is good for you. dog owners walk more, sleep better and report"
         " feeling less lonely than people without pets, according to a survey of ten thousand adults."]


def main(folder: Path, texts: list[str]) -> None:
    with Node() as node:
        manifest, _ = import_model(node.weave, folder, node.wallet, name=folder.name)
        attest_with_files(node.weave, node.wallet, manifest.id)  # the scheduler attests: processes may read it
        process = node.spawn(name="summarizer")
        result = process.eval(f'MODEL_ID = "{manifest.id}"\n' + SUMMARY_PROCESS)
        assert "Error" not in result, result["Error"]
        for text in texts:
            summary = process.send("Summarize", data=text, timeout=600)["Messages"][0]["Data"]
            print(f"summary: {summary}")
        continued = process.send("Continue", data=texts[0], timeout=600)["Messages"][0]["Data"]
        print(f"continued: {continued}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), sys.argv[2:] or TEXTS)
