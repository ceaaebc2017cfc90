"""The `graphopt` command. Each subcommand lives in its own module of this package and
exposes ``add_parser(subparsers)`` (which sets ``func``) so new commands plug in here."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from typing import Optional, Sequence

# Module names under graphopt.cli, in the order `graphopt --help` lists them.
SUBCOMMANDS = ["show", "opt", "passes", "bisect", "quantize", "compile", "run", "generate", "bench", "conformance"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="graphopt", description="graphopt: a graph compiler for neural networks.")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            mod = importlib.import_module(f"graphopt.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"graphopt.cli.{name}":
                continue  # not written yet
            raise
        mod.add_parser(sub)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    from ..errors import GraphoptError, InternalError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.debug:
        import os

        os.environ["GRAPHOPT_DEBUG"] = "1"  # TVM's native log lines reach the terminal too
    try:
        return int(args.func(args) or 0)
    except GraphoptError as e:
        if args.debug:
            traceback.print_exc()
        print(f"graphopt: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("graphopt: interrupted", file=sys.stderr)
        return 130
    except InternalError as e:  # a bug, located (pass, node or op) where it was raised
        if args.debug:
            traceback.print_exc()
        print(f"graphopt: {e}", file=sys.stderr)
        return 3
    except Exception as e:  # a bug: say so briefly unless --debug
        if args.debug:
            traceback.print_exc()
        else:
            print(f"graphopt: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)",
                  file=sys.stderr)
        return 3
