#!/usr/bin/env bash
# Retrain and re-export the shipped models, then regenerate the result tables, as the shipped ones
# were made (wall-clock times on a 2-core CPU: docs/training.md). Every training step resumes from
# its checkpoint in runs/ when re-run; a finished one is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
s=.venv/bin/semjscc
r=docs/results
# 1. the clean classifier (30 epochs, ~2 h on 2 cores): importance maps and the clean protocol
$s train classifier --out runs/classifier.pt
$s export --classifier runs/classifier.pt --name classifier --force
# 2. deep JSCC, k/n = 1/6, SNR-adaptive over 0-20 dB, AWGN, 150 epochs each (~3 h each, one core each):
#    MSE and semantic losses, everything else the same
$s train jscc --loss mse --classifier runs/classifier.pt --out runs/jscc-mse.pt --threads 1 &
$s train jscc --loss semantic --classifier runs/classifier.pt --out runs/jscc-semantic.pt --threads 1
wait
$s export --jscc runs/jscc-mse.pt --classifier-dir classifier --name jscc-mse-kn6 --force
$s export --jscc runs/jscc-semantic.pt --classifier-dir classifier --name jscc-semantic-kn6 --force
# 3. separate coding's configuration per SNR, chosen on 2,000 validation images for the clean
#    classifier (the test-set rows of this run are not used)
$s eval --separate --protocols clean --limit 100 --out runs/select
# 4. the receiver: the clean classifier fine-tuned on clean images + both JSCC arms' decodes +
#    separate coding's decodes (4 epochs), then the JSCC models re-exported naming it
$s train receiver --from runs/classifier.pt --jscc mse=runs/jscc-mse.pt --jscc semantic=runs/jscc-semantic.pt \
    --separate-configs runs/select-separate-val-clean.json --out runs/receiver.pt
$s export --classifier runs/receiver.pt --name receiver --force
for arm in mse semantic; do
    $s export --jscc runs/jscc-$arm.pt --classifier-dir classifier --receiver-dir receiver --name jscc-$arm-kn6 --force
done
# 5. the result tables: the 10,000 test images, both protocols (clean and receiver classifier),
#    separate coding chosen on validation per protocol, 95 % intervals, paired differences
#    (separate coding's validation sweep and per-codec tables cost ~30 min per 2,000 images on one
#    core; each 10,000-image run with separate coding about 1 h)
$s eval --channel awgn --out $r/eval-awgn
$s eval --channel awgn --separate --out $r/eval-awgn-separate-10k
$s eval --channel ofdm --out $r/eval-ofdm
$s eval --channel ofdm --separate --out $r/eval-ofdm-separate-10k
$s eval --channel awgn --separate --uncertain U:0:20 10+-3 --snr 10 --out $r/eval-awgn-uncertain-10k
scripts/gr_vs_eval.sh $r
$s demo --out $r/demo
# 6. reliability (docs/results.md, "Reliability") and the bad-input tables (docs/bad-input.md)
$s bench soak --frames 10000 --seed 1 --clock-ppm 20 --json $r/soak-10000.json
$s bench garbage --samples 50000000 --json $r/garbage.json
.venv/bin/python scripts/bad_input_table.py
