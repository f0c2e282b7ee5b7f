#!/usr/bin/env bash
# Run the test suite in the venv with a throwaway HOME (grcc, ONNX Runtime and GNU Radio write
# under ~), no display (Qt offscreen) and the dataset cache kept between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
tmp_home=$(mktemp -d)
trap 'rm -rf "$tmp_home"' EXIT
export SEMJSCC_CACHE=${SEMJSCC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/semjscc}
export HOME=$tmp_home XDG_RUNTIME_DIR=$tmp_home QT_QPA_PLATFORM=offscreen MPLBACKEND=Agg
exec "$top/.venv/bin/python" -m pytest "$@"
