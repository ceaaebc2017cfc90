"""`graphopt generate MODEL_DIR` on a folder written by save_pretrained (tiny Llama, random
weights, a word-level tokenizer built here): the tokens are transformers' greedy ones, the
programs are kept in --program-cache and loaded by the next run, and bad requests are
errors that name the folder or the flag."""

import pytest
import torch

from graphopt.cli import main
from graphopt.testing import families as F

PROMPT = [5, 17, 230, 4, 99]
NEW = 6


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("llama")
    m = F.llama(use_cache=True).module
    m.save_pretrained(folder)
    tk = Tokenizer(models.WordLevel({f"w{i}": i for i in range(F.VOCAB)}, unk_token="w0"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="w0").save_pretrained(folder)
    with torch.no_grad():
        want = m.generate(torch.tensor([PROMPT]), max_new_tokens=NEW, do_sample=False)[0, len(PROMPT):].tolist()
    return folder, want


def test_prompt_ids_give_transformers_tokens_and_a_second_run_loads_the_programs(saved, tmp_path, capsys):
    folder, want = saved
    argv = ["generate", str(folder), "--prompt-ids", ",".join(map(str, PROMPT)), "--max-new-tokens", str(NEW),
            "--max-length", "32", "--program-cache", str(tmp_path / "programs")]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == ",".join(map(str, want))
    assert out.splitlines()[1] == " ".join(f"w{t}" for t in want)  # the folder's tokenizer decodes them
    assert "compiled 2, loaded 0 programs" in err and "decode" in err
    assert main(argv) == 0
    out2, err2 = capsys.readouterr()
    assert out2 == out
    assert "compiled 0, loaded 2 programs" in err2


def test_a_text_prompt_streams_its_tokens(saved, capsys):
    folder, want = saved
    text = " ".join(f"w{t}" for t in PROMPT)
    assert main(["generate", str(folder), "--prompt", text, "--max-new-tokens", str(NEW), "--max-length", "32",
                 "--stream", "--program-cache", "none"]) == 0
    out, _ = capsys.readouterr()
    assert out.strip() == "".join(f"w{t}" for t in want)  # word-level decode of single tokens: no spaces


@pytest.mark.parametrize("extra, words", [(["--prompt-ids", "1,x"], "--prompt-ids"),
                                          (["--prompt-ids", "5,5000"], "0..999"),
                                          (["--prompt-ids", "5", "--max-new-tokens", "64"], "max_length")])
def test_bad_requests_name_the_flag(saved, extra, words, capsys):
    folder, _ = saved
    assert main(["generate", str(folder), "--program-cache", "none", "--max-length", "32", *extra]) == 1
    assert words in capsys.readouterr().err


def test_a_folder_without_a_model_is_named(tmp_path, capsys):
    assert main(["generate", str(tmp_path), "--prompt-ids", "1"]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "config.json" in err
