"""`graphopt generate MODEL_DIR (--prompt-ids 1,2,3 | --prompt TEXT) --max-new-tokens N`:
text generation with a transformers causal LM saved by ``save_pretrained`` (its config and
safetensors; a tokenizer when the folder has one), compiled by graphopt as prefill and
decode programs (`graphopt.llm`). Prints the new tokens (and their text), then the prefill
time, first-token latency and decode tokens/s on stderr. The compiled programs are kept
under ``--program-cache`` (default ~/.cache/graphopt/llm) and reused by later runs."""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="generate text with a saved transformers causal LM",
                       description="Generate tokens with MODEL_DIR (a save_pretrained folder), compiled by graphopt.")
    p.add_argument("model", metavar="MODEL_DIR", help="a folder written by save_pretrained")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt-ids", metavar="1,2,3", help="the prompt as token ids")
    src.add_argument("--prompt", metavar="TEXT", help="the prompt as text (needs the folder's tokenizer)")
    p.add_argument("--max-new-tokens", type=int, default=32, metavar="N", help="tokens to generate (default 32)")
    p.add_argument("--max-length", type=int, metavar="N",
                   help="cache positions, prompt plus new tokens (default 256 or the model's limit)")
    p.add_argument("--quantize", choices=["int8", "int4", "w8a8"],
                   help="int8/int4: weight-only int8/int4 matmuls; w8a8: int8 weights and run-time int8 activations")
    p.add_argument("--block", type=int, metavar="N", help="with --quantize: rows of K per scale (0: per output "
                   "column; default 0, 32 for int4)")
    p.add_argument("--do-sample", action="store_true", help="sample instead of greedy search")
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--seed", type=int, default=0, help="the sampling seed (default 0)")
    p.add_argument("--stream", action="store_true", help="print each token as it comes")
    p.add_argument("--program-cache", metavar="DIR", default=str(Path.home() / ".cache" / "graphopt" / "llm"),
                   help="where compiled programs are kept (default ~/.cache/graphopt/llm); 'none' keeps nothing")
    p.set_defaults(func=run)


class _Printer:
    """A streamer: prints each new token's text (or id) as generate chooses it."""

    def __init__(self, tokenizer):
        self.tokenizer, self.first = tokenizer, True

    def put(self, value) -> None:
        if self.first:  # the prompt
            self.first = False
            return
        tok = int(value.reshape(-1)[0])
        sys.stdout.write(self.tokenizer.decode([tok]) if self.tokenizer is not None else f"{tok} ")
        sys.stdout.flush()

    def end(self) -> None:
        sys.stdout.write("\n")


def run(args) -> int:
    import numpy as np

    from ..errors import GraphoptError
    from ..llm.model import CompiledCausalLM

    folder = Path(args.model)
    if not (folder / "config.json").is_file():
        raise GraphoptError(f"{folder}: not a save_pretrained folder (no config.json)")
    model, tokenizer = _load(folder, need_tokenizer=args.prompt is not None)
    if args.prompt is not None:
        ids = tokenizer(args.prompt, return_tensors="np")["input_ids"]
    else:
        try:
            ids = [[int(x) for x in args.prompt_ids.split(",") if x.strip()]]
        except ValueError:
            raise GraphoptError(f"--prompt-ids {args.prompt_ids!r}: expected comma-separated token ids") from None
        vocab = model.config.vocab_size
        bad = [t for t in ids[0] if not 0 <= t < vocab]
        if bad or not ids[0]:
            raise GraphoptError(f"--prompt-ids: {bad or 'none given'}: token ids must lie in 0..{vocab - 1}")
    cache = None if args.program_cache == "none" else args.program_cache
    fast = CompiledCausalLM(model, max_length=args.max_length, quantize=args.quantize, quant_block=args.block,
                            program_cache=cache)
    out = fast.generate(np.asarray(ids, np.int64), args.max_new_tokens, do_sample=args.do_sample,
                        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                        streamer=_Printer(tokenizer) if args.stream else None)
    new = out[0, len(ids[0]):].tolist()
    if not args.stream:
        print(",".join(str(t) for t in new))
        if tokenizer is not None:
            print(tokenizer.decode(new))
    print(f"{folder.name}: {fast.last_stats.summary()}", file=sys.stderr)
    return 0


def _load(folder: Path, need_tokenizer: bool):
    """The model (float32, eval) and its tokenizer (None when the folder has none)."""
    from ..errors import GraphoptError

    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ModuleNotFoundError:
        raise GraphoptError("graphopt generate needs transformers (pip install transformers)") from None
    hf_logging.disable_progress_bar()  # the output is the tokens and one line of timings
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype="float32").eval()
    except (OSError, ValueError) as e:
        raise GraphoptError(f"{folder}: cannot load a causal LM: {e}") from None
    tokenizer = None
    if any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as e:
            if need_tokenizer:
                raise GraphoptError(f"{folder}: cannot load its tokenizer: {e}") from None
    if need_tokenizer and tokenizer is None:
        raise GraphoptError(f"{folder}: has no tokenizer; give --prompt-ids instead of --prompt")
    return model, tokenizer
