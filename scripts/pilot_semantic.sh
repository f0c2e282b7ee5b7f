#!/usr/bin/env bash
# Pilots of the semantic-loss variants (issue 24, item 2), chosen on validation only: every arm the
# same network, seed, SNR draws and a short schedule at k/n = 1/24 (128 symbols per image, where
# distortion matters most), 20,000 training images of which 5,000 are held out for validation.
# Two lanes run side by side, one thread each (niced: tests and other work keep priority), in the
# order of what the choice needs most. `scripts/pilot_table.py checkpoints/pilots-kn24` turns the checkpoints'
# validation into the table of docs/method.md. Re-running resumes or skips what is finished;
# PILOT_WAIT="PID ..." first waits for runs already under way (started by an earlier call).
set -euo pipefail
cd "$(dirname "$0")/.."
s=.venv/bin/semjscc
o=${PILOT_OUT:-checkpoints/pilots-kn24}  # tracked: the pilots resume in the next session, even on a fresh machine
mkdir -p "$o"
common=(--kn 1/24 --limit 20000 --epochs ${PILOT_EPOCHS:-10} --val-every 5 --threads 1
        --classifier models/classifier/classifier.pt --receiver models/receiver/classifier.pt)
run() {  # one pilot; a failed one is reported and the queue goes on
    local name=$1; shift
    nice -n 10 $s train jscc "${common[@]}" "$@" --out "$o/$name.pt" >>"$o/$name.log" 2>&1 || echo "pilot $name failed: see $o/$name.log" >&2
}
wait_for() { local p; for p in "$@"; do while kill -0 "$p" 2>/dev/null; do sleep 20; done; done; }
read -r -a waits <<<"${PILOT_WAIT:-}"
{
    wait_for "${waits[@]:0:1}"
    run mse --loss mse
    run semantic --loss semantic
    run semantic-p2 --loss semantic --importance-power 2
    run semantic-task --loss semantic --task-weight 0.01
} &
{
    wait_for "${waits[@]:1:1}"
    run semantic-receiver --loss semantic --importance-from models/receiver/classifier.pt
    run semantic-decoded --loss semantic --importance-on decoded
    run semantic-p2-clip32 --loss semantic --importance-power 2 --importance-clip 32
    run mse-task --loss mse --task-weight 0.01
} &
wait
