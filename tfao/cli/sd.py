"""``tfao sd PROMPT -o image.png``: Stable Diffusion text-to-image (or image-to-image with ``--image``) from
the command line, written as the same deterministic PNG a process would return."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tfao.heap import keep_freed_memory
from tfao.kernels.schedulers import SCHEDULER_NAMES


def register(subparsers) -> None:
    """Add ``tfao sd`` to the CLI's subcommands."""
    about = "make an image with Stable Diffusion 1.5 (text-to-image, or image-to-image with --image)"
    parser = subparsers.add_parser("sd", help=about, description=about)
    parser.add_argument("prompt", help="what the image shows")
    parser.add_argument("-o", "--output", type=Path, default=Path("image.png"),
                        help="the PNG to write (default image.png); several images get -1, -2... before .png")
    parser.add_argument("--model", required=True, metavar="FOLDER_OR_ID",
                        help="a diffusers folder, a model manifest id in the local weave, or a single .safetensors file")
    parser.add_argument("--config", metavar="FOLDER", help="for a single file: a diffusers folder with its configs and tokenizer")
    parser.add_argument("--negative", default=None, help="what the image should not show")
    parser.add_argument("--steps", type=int, default=20, help="denoising steps (default 20)")
    parser.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale (default 7.5)")
    parser.add_argument("--seed", type=int, default=None, help="the seed (default: a random one, printed)")
    parser.add_argument("--scheduler", choices=SCHEDULER_NAMES, default=None, help="default: the model's own (PNDM for SD1.5)")
    parser.add_argument("--height", type=int, default=None, help="pixels, a multiple of 8 (default: the model's, 512)")
    parser.add_argument("--width", type=int, default=None, help="pixels, a multiple of 8 (default: the model's, 512)")
    parser.add_argument("--num", type=int, default=1, help="how many images (default 1)")
    parser.add_argument("--image", type=Path, default=None, help="start from this image (image-to-image)")
    parser.add_argument("--strength", type=float, default=0.8, help="image-to-image: how much to change it (default 0.8)")
    parser.add_argument("--math", choices=("exact", "fast"), default=None,
                        help="exact: the same bits on every machine (default, or $TFAO_MATH); fast: float32 BLAS")
    parser.add_argument("--home", type=Path, default=argparse.SUPPRESS, help="node home folder, for manifest ids")
    parser.set_defaults(handler=run_sd)


def output_paths(output: Path, count: int) -> list[Path]:
    if count == 1:
        return [output]
    return [output.with_name(f"{output.stem}-{i + 1}{output.suffix or '.png'}") for i in range(count)]


def run_sd(args) -> int:
    from PIL import Image

    from tfao.models.stable_diffusion import StableDiffusionPipeline

    keep_freed_memory()  # each layer's temporaries reuse freed pages instead of faulting in fresh ones
    pipe = StableDiffusionPipeline.from_pretrained(args.model, config=args.config, home=getattr(args, "home", None))
    options = dict(negative_prompt=args.negative, num_inference_steps=args.steps, guidance_scale=args.guidance,
                   seed=args.seed, scheduler=args.scheduler, num_images_per_prompt=args.num, mode=args.math)
    if args.image is not None:
        with Image.open(args.image) as image:
            result = pipe(args.prompt, image=image.convert("RGB"), strength=args.strength, **options)
    else:
        result = pipe(args.prompt, height=args.height, width=args.width, **options)
    paths = output_paths(args.output, len(result.pixels))
    for index, path in enumerate(paths):
        path.write_bytes(result.png(index))
    print(f"wrote {', '.join(str(p) for p in paths)} (seed {result.seed})", file=sys.stdout)
    return 0
