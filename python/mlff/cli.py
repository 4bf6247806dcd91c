"""The ``mlff`` command: ``mlff data``, ``mlff data check``, ``mlff data pack``, ``mlff train``, ``mlff eval``, ``mlff md``, ``mlff analyze``, ``mlff report``.

Each subcommand lives next to the code it drives and exposes
``register(subparsers)``, which adds its parser and sets ``func``.
"""

from __future__ import annotations

import argparse
import sys

from .errors import MLFFError


# two-word commands: ``mlff data check`` is parsed as the subcommand ``data-check``
# (``mlff data PRESET`` keeps its positional preset name)
TWO_WORD = {("data", "check"): "data-check", ("data", "pack"): "data-pack"}


def build_parser() -> argparse.ArgumentParser:
    from .data import check_cli, pack_cli
    from .data import cli as data_cli
    from .learn import cli as learn_cli
    from .train import cli as train_cli
    from . import evaluate
    from .md import cli as md_cli
    from .analysis import cli as analysis_cli

    parser = argparse.ArgumentParser(prog="mlff", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    data_cli.register(sub)
    check_cli.register(sub)
    pack_cli.register(sub)
    train_cli.register(sub)
    evaluate.register(sub)
    md_cli.register(sub)
    analysis_cli.register(sub)
    learn_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if tuple(argv[:2]) in TWO_WORD:
        argv = [TWO_WORD[tuple(argv[:2])]] + argv[2:]
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MLFFError as exc:
        print(f"mlff {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
