#!/usr/bin/env bash
# Sets everything up, then runs the default test suite (the README's test command).
# Extra arguments go to pytest, e.g. `scripts/test.sh -m slow` for the heavy suites.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -n 2 "$@"
