"""Resident memory after each of six short simulated flowgraph runs (10 frames, 20 dB).

    .venv/bin/python scripts/flowgraph_memory.py
    MALLOC_ARENA_MAX=2 .venv/bin/python scripts/flowgraph_memory.py

docs/results.md ("Reliability") compares the two: growth that mostly disappears with fewer
malloc arenas is allocator fragmentation across GNU Radio's block threads, not a leak."""

import gc

from semjscc.experiments.bench.soak import rss_kib
from semjscc.gr.sim_loopback import SimConfig, run_sim

mb = []
for _ in range(6):
    result, tb = run_sim(SimConfig(frames=10, snr_db=20))
    del tb, result
    gc.collect()
    mb.append(rss_kib() // 1024)
print("RSS MB after each run:", mb)
