"""The receiver's DC offset, estimated over a stream and removed before synchronisation.

Why it matters: a direct-conversion receiver (the AD9361) leaves a residual DC offset at its own LO.
The OFDM bursts carry nothing on the DC carrier, so with the two radios on one frequency the offset
falls on the null carrier and does no harm. Between two radios whose oscillators differ, the burst
arrives ``cfo`` away from the LO; once the receiver corrects that offset, the DC moves to ``-cfo`` --
onto data carriers, and, being off the FFT grid, it leaks into all of them. At +-25 ppm (122.5 kHz at
2.45 GHz) a -50 dBFS offset took 16 dB off the payload SNR of a pair of emulated Plutos at 30 dB and
lost most frames near 20 dB (issue 22). A cyclic capture removes its mean (:mod:`semjscc.radio.capture`);
a live stream needs a running estimate: the OFDM signal itself has mean ~0, so the mean of the stream
is the offset.

The estimate is the mean of whole blocks of ``BLOCK`` samples counted from the start of the stream
(the first ``span`` samples' blocks averaged, then an exponential memory of ``span`` samples), and a
sample has the estimate of the blocks completed before its own subtracted. So the output depends on
the samples alone, never on how the scheduler cut the stream into buffers: runs repeat bit for bit.
"""

from __future__ import annotations

import numpy as np

BLOCK = 1 << 12  # samples per estimate (4 ms at 1 MS/s); the first block passes uncorrected
DEFAULT_SPAN = 1 << 18  # samples the estimate remembers (0.26 s at 1 MS/s)
_HUGE = 1e15  # the receiver zeroes samples this large as garbage (semjscc.phy.rx): they must not set the DC


class DCTracker:
    """A running block mean of a complex sample stream (memory ``span`` samples), subtracted from it.

    ``__call__`` returns the buffer less the estimate (see the module docstring); NaN, inf and absurd
    samples are left out of the estimate (the receiver sanitises them itself)."""

    def __init__(self, span: int = DEFAULT_SPAN, block: int = BLOCK) -> None:
        if span < 1 or block < 1:
            raise ValueError(f"DC tracker span and block must be >= 1 sample, got {span} and {block}")
        self.span, self.block = int(span), int(block)
        self.dc = 0j
        self._blocks = 0  # completed blocks behind the estimate
        self._pending: list[np.ndarray] = []  # the current block's samples so far
        self._n_pending = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x) if np.iscomplexobj(x) else np.empty(len(x), np.complex64)
        i = 0
        while i < len(x):
            take = min(len(x) - i, self.block - self._n_pending)
            seg = x[i:i + take]
            out[i:i + take] = seg - np.asarray(self.dc, dtype=out.dtype) if self.dc else seg
            self._pending.append(seg)
            self._n_pending += take
            i += take
            if self._n_pending == self.block:
                self._finish_block(np.concatenate(self._pending))
        return out

    def _finish_block(self, samples: np.ndarray) -> None:
        self._pending, self._n_pending = [], 0
        m = _mean(samples)
        if m is None:
            return  # nothing usable in it: the estimate stays
        memory = max(1, self.span // self.block)
        self._blocks = min(self._blocks + 1, memory)
        self.dc += (m - self.dc) / self._blocks


def _mean(x: np.ndarray) -> complex | None:
    """Mean of the usable samples of ``x`` (None if there are none)."""
    m = complex(np.mean(x, dtype=np.complex128))
    if np.isfinite(m) and abs(m) < _HUGE / len(x):  # no sample can have reached _HUGE: no pass to mask them
        return m
    ok = np.isfinite(x) & (np.abs(x) < _HUGE)
    return complex(np.mean(x[ok], dtype=np.complex128)) if ok.any() else None
