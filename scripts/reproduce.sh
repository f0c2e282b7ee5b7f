#!/usr/bin/env bash
# Retrain and re-export the shipped models, then regenerate the result tables, exactly as the
# shipped ones were made (see docs/training.md for wall-clock times on a 2-core CPU).
# Every step resumes from its checkpoint in runs/ when re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
s=.venv/bin/semjscc
# 1. the receiver's classifier (shipped run: a 24-epoch schedule shortened to 20 at epoch 10, see docs/training.md)
$s train classifier --out runs/classifier.pt --epochs 20
# 2. deep JSCC, k/n = 1/6, SNR-adaptive over 0-20 dB, AWGN: MSE and semantic losses, same everything else
$s train jscc --loss mse --classifier runs/classifier.pt --out runs/jscc-mse.pt --threads 1 &
$s train jscc --loss semantic --mix 0 --classifier runs/classifier.pt --out runs/jscc-semantic.pt --threads 1
wait
# 3. ONNX export with model cards
$s export --classifier runs/classifier.pt --name classifier --force
$s export --jscc runs/jscc-mse.pt --classifier-dir classifier --name jscc-mse-kn6 --force
$s export --jscc runs/jscc-semantic.pt --classifier-dir classifier --name jscc-semantic-kn6 --force
# 4. the result tables (ONNX models, full 10,000-image test set)
$s eval --channel awgn --separate --out docs/results/eval-awgn  # ~45 min; --separate-limit 1000: ~5 min
$s eval --channel ofdm --out docs/results/eval-ofdm
scripts/gr_vs_eval.sh docs/results
# 5. reliability (docs/results.md, "Reliability") and the bad-input tables (docs/bad-input.md)
$s bench soak --frames 10000 --seed 1 --clock-ppm 20 --json docs/results/soak-10000.json
$s bench garbage --samples 50000000 --json docs/results/garbage.json
.venv/bin/python scripts/bad_input_table.py
