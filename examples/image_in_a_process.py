"""Stable Diffusion inside a process: a Draw handler turns the message's text into a PNG, the same bytes on
every node (exact math, the seed taken from the message), which this script saves.

    python examples/image_in_a_process.py [SD15_FOLDER] [-o drawing.png] [--steps 20] [--size 512]

SD15_FOLDER is a diffusers Stable Diffusion 1.5 folder (e.g. stable-diffusion-v1-5 downloaded with its
safetensors). Without one, a tiny random-weight model is built with diffusers (pip install torch diffusers)
so the example runs anywhere in a few seconds; its "images" are coloured noise.
"""

import argparse
import base64
import hashlib
import sys
import tempfile
from pathlib import Path

from tfao.node import Node
from weavedrive.admission import attest_with_files
from weavedrive.manifest import import_model

DRAW_PROCESS = """
local sd = require("transformers").sd
Handlers.add("Draw", function(msg)
  local png = sd.txt2img({ model = MODEL_ID, prompt = msg.Data, negative_prompt = msg.Tags.Negative,
                           steps = tonumber(msg.Tags.Steps), height = tonumber(msg.Tags.Size),
                           width = tonumber(msg.Tags.Size), scheduler = "euler_a" })
  msg.reply({ Data = png })   -- "data:image/png;base64,..."
end)
"""


def tiny_model(folder: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from sd_fixtures import build_reference

    return build_reference(folder)[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path, help="a diffusers SD1.5 folder (default: a tiny random model)")
    parser.add_argument("-o", "--output", type=Path, default=Path("drawing.png"))
    parser.add_argument("--prompt", default="a photo of a cat on a windowsill")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=None, help="pixels (default 512, 32 for the tiny model)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch, Node() as node:
        folder = args.model or tiny_model(Path(scratch))
        size = args.size or (512 if args.model else 32)
        # the model's files become items in the node's weave; the manifest id names them all
        manifest, _ = import_model(node.weave, folder, node.wallet, name="stable-diffusion")
        attest_with_files(node.weave, node.wallet, manifest.id)  # processes may read attested items
        process = node.spawn(name="draw")
        result = process.eval(f'MODEL_ID = "{manifest.id}"\n' + DRAW_PROCESS)
        assert "Error" not in result, result["Error"]
        reply = process.send("Draw", data=args.prompt, tags=[("Steps", str(args.steps)), ("Size", str(size)),
                                                            ("Negative", "blurry")], timeout=3600)
        url = reply["Messages"][0]["Data"]
        png = base64.b64decode(url.split(",", 1)[1])
        args.output.write_bytes(png)
        print(f"wrote {args.output}: {size}x{size} px, sha256 {hashlib.sha256(png).hexdigest()}")


if __name__ == "__main__":
    main()
