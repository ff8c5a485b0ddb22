#!/usr/bin/env bash
# Set up (if needed) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
# One process per core (at most 4: each holds torch and Lightning, ~1 GB), a test module kept on
# one process (its module fixtures are built once); conftest.py puts the heavy modules first.
# The 20 slowest tests are listed at the end: the suite is kept under 5 minutes on 2 cores.
python -m pytest -q -n auto --maxprocesses 4 --dist loadscope --no-loadscope-reorder --durations=20 "$@"
