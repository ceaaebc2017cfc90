"""`graphopt opt`, `graphopt passes`: the done-when command on a light model, text output,
one-line errors, and no partial output file on failure."""

from __future__ import annotations

import pytest

import graphopt
from graphopt.cli import main
from graphopt.io import save_graph
from graphopt.ir.parser import parse_ir
from graphopt.testing.models import light_model_path


def test_opt_done_when_command(tmp_path, capsys):
    out = tmp_path / "sq.onnx"
    rc = main(["opt", str(light_model_path("squeezenet")), "--passes", "simplify,fold-constants,cse,dce",
               "--dump-ir", "after-all", "--dump-format", "ir,onnx,dot", "--time-passes", "--check-numerics",
               "--verify-each", "-o", str(out)])
    assert rc == 0
    err = capsys.readouterr().err
    assert "pass timing" in err and "108 -> 67 nodes" in err
    dumps = sorted(p.name for p in (tmp_path / "sq.dumps").iterdir())
    assert dumps[:3] == ["000-input.dot", "000-input.ir", "000-input.onnx"] and "004-dce.ir" in dumps
    g = graphopt.import_onnx(out)
    assert len(g.nodes) == 67


def test_opt_writes_text_and_stdout(tmp_path, capsys):
    src = tmp_path / "m.ir"
    src.write_text('''graph main(%x: f32[2]) opset("": 21) {
  %a: f32[2] = Identity(%x) @identity
  %b: f32[2] = Relu(%a) @relu
  return %b
}
''')
    assert main(["opt", str(src), "-O1", "-o", str(tmp_path / "o.ir")]) == 0
    text = (tmp_path / "o.ir").read_text()
    assert "Identity" not in text and graphopt.print_ir(parse_ir(text)) == text
    assert main(["opt", str(src), "-O0"]) == 0
    assert "Identity" in capsys.readouterr().out


def test_opt_errors_are_one_line_and_leave_no_output(tmp_path, capsys):
    src = tmp_path / "m.ir"
    save_graph(parse_ir('''graph main(%x: f32[2]) opset("": 21) {
  %b: f32[2] = Relu(%x) @relu
  return %b
}'''), src)
    out = tmp_path / "out.onnx"
    for argv, msg in [
        (["opt", str(src), "--passes", "dcee", "-o", str(out)], "unknown pass 'dcee'"),
        (["opt", str(tmp_path / "missing.onnx"), "-o", str(out)], "missing.onnx: no such file"),
        (["opt", str(src), "--passes", "fold-constants{max-elements=x}", "-o", str(out)], "option 'max-elements'"),
        (["opt", str(src), "-o", str(tmp_path / "out.txt")], "unknown output format"),
        (["opt", str(src), "--pass-option", "oops", "-o", str(out)], "PASS.OPTION=VALUE"),
    ]:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("graphopt: error: ") and msg in err and err.count("\n") == 1, err
        assert not out.exists()
    assert list(tmp_path.iterdir()) == [src]


def test_passes_lists_one_line_each(capsys):
    assert main(["passes"]) == 0
    out = capsys.readouterr().out
    for name in ("fold-constants", "dce", "cse", "simplify", "-O0", "-O1"):
        assert any(line.strip().startswith(name) for line in out.splitlines())


def test_an_ir_file_that_parses_but_does_not_verify_is_refused(tmp_path, capsys):
    from graphopt.cli import main

    bad = tmp_path / "bad.ir"
    bad.write_text('''graph g(%x: f32[2]) opset("": 21) {
  %y: f32[3] = Relu(%x) @relu
  return %y
}''')
    out = tmp_path / "out.onnx"
    assert main(["opt", str(bad), "-O1", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "relu" in err and "Traceback" not in err
    assert not out.exists()


def test_a_dead_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    import os
    import subprocess
    import sys

    from graphopt.util.files import atomic_write_text

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.ir.{int(dead.stdout)}.abc123.tmp"   # left by a writer killed mid-write
    live = tmp_path / f".out.ir.{os.getpid()}.def456.tmp"          # a writer still running
    stale.write_text("partial")
    live.write_text("in progress")
    atomic_write_text(tmp_path / "out.ir", "done")
    assert (tmp_path / "out.ir").read_text() == "done"
    assert not stale.exists() and live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "out.ir"]
