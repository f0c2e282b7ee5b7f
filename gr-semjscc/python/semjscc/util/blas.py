"""numpy's BLAS thread pool inside a flowgraph: one thread.

The OFDM receiver's small matrix products go through numpy's OpenBLAS, whose pool starts one
thread per core and keeps them spinning after every call. In a flowgraph, where every block
already runs in its own thread, those spinning threads took 40-65 % of the process's CPU time in a
profile of ``sim_loopback`` (2 cores) and computed nothing: the products are too small to gain
from a second thread. The blocks that call numpy heavily limit the pool to one thread once per
process, unless the user chose a size with ``$OPENBLAS_NUM_THREADS`` or ``$SEMJSCC_BLAS_THREADS``.
The results do not change: OpenBLAS splits a product's output, never its sums, across threads.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

log = logging.getLogger("semjscc.runtime")

BLAS_THREADS_ENV = "SEMJSCC_BLAS_THREADS"
# OpenBLAS builds name the setter with a suffix for their 64-bit integer interface (numpy's wheels)
_SETTERS = ("openblas_set_num_threads64_", "openblas_set_num_threads", "scipy_openblas_set_num_threads64_",
            "scipy_openblas_set_num_threads")
_done: dict[str, int] = {}


def _loaded_openblas() -> list[str]:
    """Paths of the OpenBLAS libraries mapped into this process (Linux: /proc/self/maps)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    paths = {line.split(maxsplit=5)[-1] for line in maps.splitlines() if "openblas" in line.lower()}
    return sorted(p for p in paths if p.startswith("/"))


def limit_blas_threads(threads: int | None = None) -> dict[str, int]:
    """Set the thread count of every loaded OpenBLAS (default 1, or ``$SEMJSCC_BLAS_THREADS``);
    a no-op when ``$OPENBLAS_NUM_THREADS`` is set or it was done already. Returns {library: threads}
    for the libraries changed (empty where none is found: another BLAS, or not Linux)."""
    if _done or os.environ.get("OPENBLAS_NUM_THREADS"):
        return dict(_done)
    if threads is None:
        env = os.environ.get(BLAS_THREADS_ENV, "")
        threads = int(env) if env.strip().isdigit() and int(env) > 0 else 1
    import numpy  # noqa: F401 (maps numpy's OpenBLAS, if it uses one)

    for path in _loaded_openblas():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, s) for s in _SETTERS if hasattr(lib, s)), None)
        if setter is not None:
            setter(ctypes.c_int(threads))
            _done[path] = threads
    if _done:
        log.info("numpy's OpenBLAS limited to %d thread(s) in this process (%s to change)", threads, BLAS_THREADS_ENV)
    return dict(_done)
