"""``tfao pipeline TASK --model FOLDER_OR_ID INPUT...``: run any task the model registry serves and print the
results (one per line; ``--json`` prints the pipeline's own result as JSON for scripts)."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

from tfao.heap import keep_freed_memory

MODES = ("exact", "fast")  # tfao.kernels.modes.MODES, without importing the models at CLI start


def _option(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name.replace("-", "_"), json.loads(value)  # numbers, true/false, null
    except ValueError:
        return name.replace("-", "_"), value


def register(subparsers) -> None:
    about = "run a pipeline on a model folder or a model manifest id and print the results"
    parser = subparsers.add_parser("pipeline", help=about, description=about)
    parser.add_argument("task", metavar="TASK", help="feature-extraction, text2text-generation, summarization,"
                        " translation_xx_to_yy (e.g. translation_en_to_de)...")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="the texts ('-' reads one per line from stdin)")
    parser.add_argument("--model", required=True, help="a model folder, or a model manifest id in the home's weave")
    parser.add_argument("--option", "-o", action="append", type=_option, default=[], metavar="NAME=VALUE",
                        help="a pipeline option, e.g. -o max_new_tokens=40 -o num_beams=4 (repeatable)")
    parser.add_argument("--mode", choices=MODES, default="exact", help="math mode (default exact)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--output", type=Path, default=Path("image.png"), metavar="FILE.png",
                        help="where image results go (text-to-image, image-to-image; default image.png;"
                             " several images get -1, -2... before .png)")
    parser.add_argument("--image", type=Path, metavar="FILE", help="the input image of image-to-image")
    parser.add_argument("--home", type=Path, default=argparse.SUPPRESS,
                        help="node home folder, for manifest ids (default $TFAO_HOME or ~/.tfao)")
    parser.set_defaults(handler=run_pipeline)


def _plain(value):
    """The result as JSON-ready values (arrays become lists)."""
    if hasattr(value, "dtype"):
        return value.astype("float64").tolist()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _lines(result) -> list[str]:
    """One line per text, or per vector (JSON), in order."""
    if isinstance(result, dict):
        return [str(next(iter(result.values())))]
    if isinstance(result, list) and result and isinstance(result[0], float):
        return [json.dumps(result)]
    return [line for item in result for line in _lines(item)]


def _accepts(run, options: dict) -> bool:
    parameters = list(inspect.signature(run.__call__).parameters.values())[1:]  # after the inputs
    return any(p.kind is p.VAR_KEYWORD for p in parameters) or set(options) <= {p.name for p in parameters}


def run_pipeline(args) -> int:
    from tfao.models.pipelines import pipeline

    keep_freed_memory()  # each layer's temporaries reuse freed pages instead of faulting in fresh ones
    inputs = [line.rstrip("\n") for line in sys.stdin] if args.inputs == ["-"] else args.inputs
    run = pipeline(args.task, args.model, mode=args.mode, home=getattr(args, "home", None))
    options = dict(args.option)
    if not _accepts(run, options):
        raise ValueError(f"the {args.task} pipeline of this model takes no option(s) {', '.join(sorted(options))}")
    if args.image is not None:
        from PIL import Image

        with Image.open(args.image) as image:
            options["image"] = image.convert("RGB")
    result = run(inputs if len(inputs) > 1 else inputs[0], **options)
    if hasattr(result, "png"):  # images: written as deterministic PNG files, their paths printed
        from tfao.cli.sd import output_paths

        paths = output_paths(args.output, len(result.pixels))
        for index, path in enumerate(paths):
            path.write_bytes(result.png(index))
        print(json.dumps([str(path) for path in paths]) if args.json else "\n".join(map(str, paths)))
        return 0
    plain = _plain(result)
    print(json.dumps(plain, ensure_ascii=False) if args.json else "\n".join(_lines(plain)))
    return 0
