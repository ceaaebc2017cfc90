"""`graphopt run ART --input name=x.npy`: run a compiled artifact."""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run a compiled artifact on .npy inputs",
                       description="Run an artifact folder written by `graphopt compile` on inputs given as .npy "
                                   "files; print the outputs' shapes and values, or save them with -o.")
    p.add_argument("artifact", help="an artifact folder")
    p.add_argument("--input", "-i", action="append", default=[], metavar="NAME=FILE.npy",
                   help="an input by name (repeat for each input); FILE.npy alone binds inputs in order")
    p.add_argument("-o", "--output-dir", default=None, metavar="DIR",
                   help="write each output as NAME.npy into the folder DIR (created if missing; NAME.npy files "
                        "already there are replaced, each atomically; DIR must not be an existing file)")
    p.add_argument("--compare-intermediates", action="store_true",
                   help="run the oracle (onnxruntime, optimizations off) on the graph the artifact was compiled "
                        "from and compare every kernel's outputs; print the first kernel (in execution order) "
                        "that diverges, with its nodes and errors (exit status 1), or how many agreed. Inputs "
                        "not given are generated (seeded random)")
    p.add_argument("--rtol", type=float, default=None, help="relative tolerance for --compare-intermediates "
                                                             "(default: per dtype)")
    p.add_argument("--atol", type=float, default=None, help="absolute tolerance for --compare-intermediates "
                                                             "(default: per dtype)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated inputs (--compare-intermediates)")
    p.set_defaults(func=run)


def _refuse_file(d: Path) -> None:
    from ..errors import OutputPathError

    if d.exists() and not d.is_dir():
        raise OutputPathError(f"{d}: exists and is not a folder (-o names a folder for NAME.npy outputs)")


def _output_dir(d: Path) -> Path:
    """The folder -o names, created if missing; an existing file there is refused rather
    than replaced: -o is a folder of outputs, and the file may be the user's."""
    from ..errors import OutputPathError

    _refuse_file(d)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputPathError(f"{d}: cannot create the output folder: {e.strerror}") from None
    return d


def run(args) -> int:
    import numpy as np

    from ..api import load
    from ..errors import GraphoptError

    if args.output_dir:  # refuse a bad -o before spending the run on it
        _refuse_file(Path(args.output_dir))
    if args.compare_intermediates and args.output_dir:
        raise GraphoptError("--compare-intermediates prints a comparison; it writes no outputs (-o)")
    model = load(args.artifact)
    pos, kw = [], {}
    for spec in args.input:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = "", spec
        p = Path(path)
        if not p.is_file():
            raise GraphoptError(f"input {name or len(pos)}: no such file {path}")
        try:
            arr = np.load(p, allow_pickle=False)
        except Exception as e:
            raise GraphoptError(f"{path}: not a .npy file ({e})") from None
        if name:
            kw[name] = arr
        else:
            pos.append(arr)
    if args.compare_intermediates:
        from ..intermediates import compare_intermediates

        if len(pos) > len(model.input_names):
            raise GraphoptError(f"{len(pos)} inputs given in order, the model takes {len(model.input_names)}")
        feeds = dict(zip(model.input_names, pos), **kw)
        report = compare_intermediates(model, feeds, rtol=args.rtol, atol=args.atol, seed=args.seed)
        print(report)
        return 1 if report.first is not None else 0
    outs = model.run(*pos, **kw)
    if args.output_dir:
        from ..util.files import atomic_write_bytes
        import io

        d = _output_dir(Path(args.output_dir))
        for name, a in zip(model.output_names, outs):
            buf = io.BytesIO()
            np.save(buf, a)
            safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
            atomic_write_bytes(d / f"{safe}.npy", buf.getvalue())
    for name, a in zip(model.output_names, outs):
        print(f"{name}: {a.dtype}{list(a.shape)}")
        if not args.output_dir:
            with np.printoptions(threshold=20, edgeitems=3):
                print(a)
    return 0
