"""``tfao weave ...``: add, import, get, list, attest and make available data in the local weave.

Ids are printed one per line; any failure prints one ``error: ...`` line and exits with status 1.
"""

from __future__ import annotations

import argparse
import mimetypes
import shutil
import sys
from pathlib import Path

from .admission import attest_with_files, make_available
from .ans104 import InvalidDataItem, is_id
from .gateway import Gateway, GatewayError
from .manifest import ManifestError, import_model
from .store import WeaveError, WeaveStore
from .wallet import Wallet, default_wallet, home_dir


# argparse takes any word that starts with "-" for an option, and about one id in 64 does; such an id
# is marked with a leading space (which no option has) and the mark is removed when the id is read.
ID_MARK = " "


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
    weave = subparsers.add_parser("weave", help="the local weave: signed, verified Arweave data items")
    weave.set_defaults(handler=lambda args: weave.print_help() or 1)
    commands = weave.add_subparsers(dest="weave_command", metavar="COMMAND")

    def command(name, handler, help):
        parser = commands.add_parser(name, help=help)
        # SUPPRESS: a --home given to the top-level command is not overwritten by this default
        parser.add_argument(
            "--home", type=Path, default=argparse.SUPPRESS, help="home folder (default: $TFAO_HOME or ~/.tfao)"
        )
        parser.set_defaults(handler=lambda args: _run(handler, args))
        return parser

    def signed(parser):
        parser.add_argument("--wallet", type=Path, help="JWK wallet file (default: the home folder's wallet)")
        return parser

    add = signed(command("add", add_files, "sign files and store them; prints their ids"))
    add.add_argument("files", nargs="+", type=Path, metavar="FILE")
    add.add_argument("--tag", action="append", default=[], metavar="NAME=VALUE", help="add a tag (repeatable)")
    add.add_argument("--content-type", help="Content-Type tag (default: guessed from the file name)")

    imp = signed(command("import", import_folder, "store a Hugging Face model folder and its manifest"))
    imp.add_argument("folder", type=Path, metavar="DIR")
    imp.add_argument("--name", help="model name (default: the matching pinned model, else the folder name)")

    get = command("get", get_item, "write an item's data to a file or stdout")
    get.add_argument("id", type=arweave_id, metavar="ID")
    get.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    get.add_argument("--gateway", help="comma-separated gateway URLs to fetch from when the item is not local")

    command("ls", list_items, "list stored items (newest first)")

    attest = signed(command("attest", attest_item, "sign an Attestation for an id (for a model manifest: also for each of its files)"))
    attest.add_argument("id", type=arweave_id, metavar="ID")

    avail = signed(command("avail", make_available_item, "sign an Available item naming ids (WeaveDrive Individual mode)"))
    avail.add_argument("ids", nargs="+", type=arweave_id, metavar="ID")

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


def import_folder(args) -> None:
    manifest, _ = import_model(_store(args), args.folder, _wallet(args), name=args.name)
    print(manifest.id)


def get_item(args) -> None:
    store = _store(args)
    if not store.has(args.id) and args.gateway:
        Gateway(args.gateway).fetch(args.id, store)
    if args.output is not None:
        store.export(args.id, args.output)
        return
    with open(store.data_blob(args.id).path, "rb") as data:
        shutil.copyfileobj(data, sys.stdout.buffer)
    sys.stdout.flush()


def list_items(args) -> None:
    store = _store(args)
    after = None
    while page := store.query(first=500, after=after):
        for item in page:
            content_type = item.tag("Content-Type", "-")
            label = item.tag("Type") or item.tag("File-Path") or item.tag("Name") or ""
            print(f"{item.id}  block {item.block:>6}  {item.size:>12}  {content_type}  {label}".rstrip())
        after = page[-1].cursor


def attest_item(args) -> None:
    for item in attest_with_files(_store(args), _wallet(args), args.id):
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
