#!/usr/bin/env bash
# GNU Radio flowgraph vs offline evaluation on the same 1,000 test images (seed 0), same PHY,
# AWGN + 3 kHz frequency offset at 1 MS/s, SNR 10 and 20 dB (docs/results.md, "Flowgraph vs eval").
set -euo pipefail
cd "$(dirname "$0")/.."
s=.venv/bin/semjscc
out=${1:-docs/results}
mkdir -p "$out"
for model in jscc-mse-kn6 jscc-semantic-kn6; do
    for snr in 10 20; do
        $s run sim_loopback --model "$model" --snr "$snr" --cfo 3000 --frames 1000 --seed 0 \
            --json "$out/run-$model-$snr.json" | tail -2
    done
done
$s eval --channel phy --snr 10 20 --limit 1000 --out "$out/eval-phy-1000"
