"""The receiver's DC offset, estimated over a stream and removed before synchronisation.

Why it matters: a direct-conversion receiver (the AD9361) leaves a residual DC offset at its own LO.
The OFDM bursts carry nothing on the DC carrier, so with the two radios on one frequency the offset
falls on the null carrier and does no harm. Between two radios whose oscillators differ, the burst
arrives ``cfo`` away from the LO; once the receiver corrects that offset, the DC moves to ``-cfo`` —
onto data carriers, and, being off the FFT grid, it leaks into all of them. At +-25 ppm (122.5 kHz at
2.45 GHz) a -50 dBFS offset took 16 dB off the payload SNR of a pair of emulated Plutos at 30 dB and
lost most frames near 20 dB (issue 22). A cyclic capture removes its mean (:mod:`semjscc.radio.capture`);
a live stream needs a running estimate: the OFDM signal itself has mean ~0, so the mean of the stream
is the offset, and a memory of a quarter second follows gain changes without letting a burst's own
samples move it.
"""

from __future__ import annotations

import numpy as np

DEFAULT_SPAN = 1 << 18  # samples the estimate remembers (0.26 s at 1 MS/s)
_HUGE = 1e15  # the receiver zeroes samples this large as garbage (semjscc.phy.rx): they must not set the DC


class DCTracker:
    """A running mean of a complex sample stream (memory ``span`` samples), subtracted from each buffer.

    ``__call__`` returns the buffer less the estimate updated with it; NaN, inf and absurd samples are
    left out of the estimate (the receiver sanitises them itself)."""

    def __init__(self, span: int = DEFAULT_SPAN) -> None:
        if span < 1:
            raise ValueError(f"DC tracker span must be >= 1 sample, got {span}")
        self.span = int(span)
        self.dc = 0j
        self._weight = 0  # samples behind the estimate, at most span

    def update(self, x: np.ndarray) -> complex:
        """Fold ``x`` into the estimate and return it."""
        m, n = _mean(x)
        if n:
            w = min(self._weight, self.span)
            self.dc += (m - self.dc) * n / (w + n)
            self._weight = min(w + n, self.span)
        return self.dc

    def __call__(self, x: np.ndarray) -> np.ndarray:
        dc = self.update(x)
        if dc == 0:
            return x
        return x - np.asarray(dc, dtype=x.dtype if np.iscomplexobj(x) else np.complex64)


def _mean(x: np.ndarray) -> tuple[complex, int]:
    """Mean of the usable samples of ``x`` and how many there were."""
    if len(x) == 0:
        return 0j, 0
    m = complex(np.mean(x, dtype=np.complex128))
    if np.isfinite(m) and abs(m) < _HUGE / len(x):  # no sample can have reached _HUGE: no pass to mask them
        return m, len(x)
    ok = np.isfinite(x) & (np.abs(x) < _HUGE)
    n = int(ok.sum())
    return (complex(np.mean(x[ok], dtype=np.complex128)), n) if n else (0j, 0)
