"""``tfao check`` and ``tfao backup``: a node home's integrity check and a consistent copy of it.

Both only read the home, so they also work while a node (``tfao serve``) has it open.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tfao.node.maintenance import HomeReport, backup_home, check_home
from weavedrive.wallet import home_dir


def register(subparsers) -> None:
    """Add ``tfao check`` and ``tfao backup`` to the CLI's subcommands."""
    def command(name: str, handler, help: str) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, help=help, description=help)
        # SUPPRESS: a --home given before the command is not overwritten by this one's default
        parser.add_argument("--home", type=Path, default=argparse.SUPPRESS,
                            help="node home folder (default $TFAO_HOME or ~/.tfao)")
        parser.set_defaults(handler=handler)
        return parser

    command("check", run_check, "check a node home: its log, the assignments' hash chains and the weave's copies")
    backup = command("backup", run_backup, "copy a node home consistently (also while its node runs), then check the copy")
    backup.add_argument("destination", type=Path, help="a new or empty folder")


def home_of(args) -> Path:
    return Path(getattr(args, "home", None) or home_dir())


def run_check(args) -> int:
    home = home_of(args)
    return report(check_home(home), f"{home}")


def run_backup(args) -> int:
    try:
        copy = backup_home(home_of(args), args.destination)
    except (FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"backed up {home_of(args)} to {args.destination}")
    return report(copy, f"the copy {args.destination}")


def report(result: HomeReport, what: str) -> int:
    if result.ok:
        print(f"ok: {what} holds {result.processes} processes and {result.messages} messages; "
              "hash chains and signatures verify, the weave holds every message")
        return 0
    print(f"{what} is damaged:", file=sys.stderr)
    for problem in result.problems:
        print(f"  {problem}", file=sys.stderr)
    return 1
