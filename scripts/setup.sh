#!/usr/bin/env bash
# Set up gr-semjscc on Debian 12 / Ubuntu: GNU Radio 3.10 + libiio from the distribution,
# a venv on the distribution's Python (so `gnuradio` imports), and this package in it.
#   scripts/setup.sh runtime   # ONNX Runtime, enough to run flowgraphs on shipped models
#   scripts/setup.sh dev       # + torch (training, export), test and lint tools
# Idempotent: a second run only re-installs when pyproject.toml changed.
set -euo pipefail
profile=${1:-runtime}
cd "$(dirname "$0")/.."
top=$PWD
venv=${SEMJSCC_VENV:-$top/.venv}

say() { printf '[setup] %s\n' "$*"; }

# 1. Distribution packages. GNU Radio is built for /usr/bin/python3, hence the venv below.
# GNU Radio Companion needs GTK's introspection data and QT GUI flowgraphs PyQt5's SVG module
# (without it every start warns about matplotlib); neither is a hard dependency of `gnuradio`.
# The tests screenshot the Qt GUI and lay out GRC canvases on a virtual X server (xvfb).
apt_pkgs=(gnuradio libiio-utils python3-venv gir1.2-gtk-3.0 python3-pyqt5.qtsvg)
[ "$profile" = dev ] && apt_pkgs+=(xvfb xauth)  # xvfb-run needs xauth (a Recommends)
missing=()
for p in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    say "installing distribution packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. The venv: Debian's python3 with --system-site-packages so it sees gnuradio and Debian's numpy.
if [ ! -x "$venv/bin/python" ]; then
    say "creating venv $venv"
    /usr/bin/python3 -m venv --system-site-packages "$venv"
fi

# 3. The package. onnxruntime-gpu where an NVIDIA GPU is visible, else the CPU wheel.
runtime=cpu
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && runtime=gpu
case "$profile" in
    runtime) extras="$runtime" ;;
    dev) extras="$runtime,train,dev,radio" ;;
    *) echo "usage: $0 [runtime|dev]" >&2; exit 2 ;;
esac
stamp="$venv/.semjscc-$profile"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$(cat "$stamp")" != "$extras" ]; then
    say "installing gr-semjscc[$extras] into $venv"
    "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$venv/bin/python" -m pip install -q -e ".[$extras]"
    echo "$extras" >"$stamp"
fi

# grcc and gnuradio-companion are scripts for Debian's python3, which lacks semjscc: with the venv
# activated, these shims run them under the venv's Python (the flowgraphs' imports need it), with
# this checkout's blocks first in GRC_BLOCKS_PATH (per venv: two checkouts never mix)
blocks=$("$venv/bin/python" -m semjscc.grc.install)
for tool in grcc gnuradio-companion; do
    real=$(PATH=/usr/bin:/bin command -v "$tool" || true)
    if [ -n "$real" ]; then
        printf '#!/bin/sh\n# %s under this venv'"'"'s Python (written by scripts/setup.sh)\nGRC_BLOCKS_PATH="%s${GRC_BLOCKS_PATH:+:$GRC_BLOCKS_PATH}" exec "$(dirname "$0")/python" %s "$@"\n' \
            "$tool" "$blocks" "$real" >"$venv/bin/$tool"
        chmod +x "$venv/bin/$tool"
    fi
done
# the venv's activate exports the same, for GRC and grcc run any other way while it is active
if ! grep -q "semjscc GRC blocks" "$venv/bin/activate"; then
    printf '\n# semjscc GRC blocks (written by scripts/setup.sh)\nGRC_BLOCKS_PATH="%s${GRC_BLOCKS_PATH:+:$GRC_BLOCKS_PATH}"\nexport GRC_BLOCKS_PATH\n' \
        "$blocks" >>"$venv/bin/activate"
fi

# earlier versions added the checkout to the user-global ~/.gnuradio/config.conf: take such entries out
"$venv/bin/python" -m semjscc.grc.install --clean
"$venv/bin/python" - <<'PY'
from gnuradio import gr
import onnxruntime, semjscc
print(f"[setup] ok: GNU Radio {gr.version()}, onnxruntime {onnxruntime.__version__}, semjscc {semjscc.__version__}")
PY
