#!/usr/bin/env bash
# The engine on an accelerator, in one short call (under 5 minutes on a GPU): CPU agreement, throughput
# with and without prefix reuse in fp32 and bf16, and one smoke-size chapter through papermill.
# It prints one table (benchmarks/device_check.py says what each column is).
#
#   benchmarks/device_check.sh [--device cuda|cpu] [--n-texts 600] [--chapter predictions|none] [--out FILE]
#
# Needs: a Python with this package's dependencies (the repository's .venv when there is one, else
# $PYTHON or python3), the pocket models installed (make env) and the data mirror (IFHELPERS_DATA,
# default ../shared/data). The tests run it with --device cpu.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export IFHELPERS_DATA="${IFHELPERS_DATA:-$(cd .. && pwd)/shared/data}"
export NLTK_DATA="${NLTK_DATA:-$IFHELPERS_DATA/nltk_data}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
exec "$PYTHON" benchmarks/device_check.py "$@"
