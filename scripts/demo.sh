#!/usr/bin/env bash
# Set up (if needed) and run the demo study.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
lczldl demo "$@"
