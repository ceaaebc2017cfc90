"""`graphopt passes`: list the passes (one line each) and the named pipelines."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("passes", help="list the passes and pipelines", description="List the registered passes "
                       "(name, summary, options) and the named pipelines.")
    p.add_argument("--rules", action="store_true", help="also list each rule-based pass's rules and their algebra")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..pipeline import PIPELINES, registered_passes

    passes = registered_passes()
    w = max(len(p.name) for p in passes)
    print("passes:")
    for p in passes:
        opts = p.option_help()
        print(f"  {p.name.ljust(w)}  {p.summary}" + (f"  [{opts}]" if opts else ""))
    print("pipelines:")
    for name, (desc, _) in PIPELINES.items():
        print(f"  -{name.ljust(w - 1)}  {desc}")
    if args.rules:
        from graphopt.passes import simplify

        print("rules (simplify):")
        for rs_name, rs in simplify.RULE_SETS.items():
            for r in rs.rules:
                print(f"  {r.name}  [{rs_name}]  {r.algebra}")
    return 0
