"""A channel that changes with every burst: each burst from ``ofdm_tx`` (found by its length tag)
gets a fresh random draw of SNR, CFO, fractional timing offset and multipath
(:mod:`semjscc.phy.impairments`), and with ``max_doppler`` a Doppler (its taps then fade within
the burst). Used by the soak to run thousands of random channels through one
long-lived flowgraph; in GRC it stands in for ``Channel Model`` when a link should be tried against
many channels at once. The draws are kept (:meth:`burst_channel.draws`), one row per burst, so
results can be binned by the channel each frame actually met.
"""

from __future__ import annotations

import threading

import numpy as np
import pmt
from gnuradio import gr

from semjscc.phy.impairments import MAX_CFO_HZ, MAX_TAPS, BurstChannel
from semjscc.util.errors import UsageError

DRAW_FIELDS = ("snr_db", "cfo_hz", "delay", "n_taps", "doppler")


class burst_channel(gr.sync_block):  # noqa: N801 (GNU Radio block naming)
    """Per-burst random channel (see the module docstring). ``len_tag_key`` marks burst starts, as
    ``ofdm_tx`` emits them; samples before the first tag pass unchanged."""

    def __init__(self, seed: int = 0, snr_min_db: float = 0.0, snr_max_db: float = 20.0,
                 max_cfo_hz: float = MAX_CFO_HZ, max_taps: int = MAX_TAPS, len_tag_key: str = "packet_len",
                 max_doppler: float = 0.0) -> None:
        gr.sync_block.__init__(self, name="semjscc_burst_channel", in_sig=[np.complex64], out_sig=[np.complex64])
        try:
            self.channel = BurstChannel(np.random.default_rng(int(seed)), (float(snr_min_db), float(snr_max_db)),
                                        float(max_cfo_hz), int(max_taps), max_doppler=float(max_doppler))
        except (ValueError, UsageError) as e:
            raise UsageError(f"burst channel: {e}") from None
        self._key = pmt.intern(len_tag_key)
        self._lock = threading.Lock()
        self._draws = np.zeros((1024, len(DRAW_FIELDS)))
        self.bursts = 0

    def draws(self) -> np.ndarray:
        """(bursts, 5) array: SNR dB, CFO Hz, fractional delay, multipath taps, normalised Doppler, one row
        per burst so far."""
        with self._lock:
            return self._draws[:self.bursts].copy()

    def _record(self) -> None:
        imp = self.channel.start_burst()
        with self._lock:
            if self.bursts == len(self._draws):  # amortised growth: 40 bytes per burst
                self._draws = np.concatenate((self._draws, np.zeros_like(self._draws)))
            self._draws[self.bursts] = (imp.snr_db, imp.cfo_hz, imp.delay, len(imp.taps), imp.doppler)
            self.bursts += 1

    def work(self, input_items: list[np.ndarray], output_items: list[np.ndarray]) -> int:
        x, y = input_items[0], output_items[0]
        n = len(y)
        r0 = self.nitems_read(0)
        starts = sorted({int(t.offset - r0) for t in self.get_tags_in_window(0, 0, n, self._key)})
        pos = 0
        for s in [*starts, n]:
            if s > pos:
                y[pos:s] = self.channel.apply(x[pos:s])
                pos = s
            if s < n:
                self._record()
        return n
