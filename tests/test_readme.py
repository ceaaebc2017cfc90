"""The README's supported-op table matches the registry (scripts/update_readme.py)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_op_table_is_current():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "update_readme.py"), "--check"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
