"""The emulated radios' signal path in real time: TX buffers placed on each radio's own sample clock,
RX buffers synthesised from everything on the air once their last sample's time has come.

Time: every radio in one process shares one epoch (``time.monotonic()``). A radio's true reference
oscillator runs at 40 MHz x (1 + ppm 1e-6); the driver believes it runs at ``xo_correction``. Its LOs and
sample clock are programmed from the believed value, so each comes out scaled by
``xo = (1 + ppm 1e-6) x 40 MHz / xo_correction`` (writing ``xo_correction`` = the true frequency cancels the
error, as on the AD9361). Sample k of a radio's buffers is at true time ``k / (fs x xo)`` after the epoch.

Path from radio S's TX to radio R's RX (S = R is the cabled loopback, one oscillator: no offset at all):

* R's sample times mapped onto S's TX clock (the sample-clock offset: at +-25 ppm the two clocks drift 50
  samples a second apart), interpolated with a 16-tap windowed sinc (128 phases) when the clocks differ;
* the carrier offset S.tx_lo x S.xo - R.rx_lo x R.xo, continuous across buffers (phase from true time);
  a signal further off than half R's RF bandwidth is filtered out;
* TX level, distortion and path loss, then R's front end (noise, gain/AGC, IQ imbalance, DC, 12-bit ADC):
  :func:`semjscc.radio.sim.air_signal` and :func:`semjscc.radio.sim.front_end`, the simulated Pluto's own
  definitions.

Buffers behave like the IIO DMA: an RX buffer starts capturing when it is opened; a refill returns once
its samples have been "received" (real-time pacing), and when the client falls more than the kernel
buffer count behind, samples are dropped and the core's overflow flag is set (gr-iio prints ``O``). A
streaming TX buffer is queued after the previous one; a push blocks while the kernel buffers are full;
when the queue ran dry before a push the underflow flag is set (gr-iio prints ``U``). A cyclic TX buffer
repeats until it is closed; closing a TX buffer stops it at once (what is still queued is not sent, as
when the DMA is stopped). With no TX buffer open, the DDS plays its tones (``raw`` = 1 and a scale above 0 on
the ``TX1_*`` channels, the way pyadi-iio's ``dds_single_tone`` sets them).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from semjscc.radio.emulator.device import (
    OVERFLOW_BIT,
    UNDERFLOW_BIT,
    XO_NOMINAL_HZ,
    ChipLimits,
    RadioState,
)
from semjscc.radio.sim import SimParams, air_signal, front_end

TX_COUNTS_PER_UNIT = 2**14  # int16 DAC words per full-scale unit (semjscc.radio.base's convention)
RX_COUNTS_PER_UNIT = 2**11
KEEP_TX_S = 5.0  # how long transmitted samples stay available to receivers that read late
_PHASES, _TAPS = 128, 16
_CHUNK = 16384


def _interpolator() -> np.ndarray:
    """(phases, taps) Hann-windowed sinc interpolators: row p gives the signal at ``base + p / phases`` from
    the samples at ``base + _OFFSETS`` (unit DC gain)."""
    frac = np.arange(_PHASES)[:, None] / _PHASES
    x = _OFFSETS[None, :] - frac
    h = np.sinc(x) * (0.5 + 0.5 * np.cos(np.pi * x / (_TAPS // 2 + 1)))
    return (h / h.sum(axis=1, keepdims=True)).astype(np.complex64)


_OFFSETS = np.arange(_TAPS) - (_TAPS // 2 - 1)
_H = _interpolator()


@dataclass
class Segment:
    """Samples a TX buffer put on its radio's clock from ``start``; ``stop`` cuts it (buffer closed)."""

    start: int
    data: np.ndarray  # complex128, full scale 1.0
    cyclic: bool
    stop: float = math.inf

    @property
    def end(self) -> float:
        return self.stop if self.cyclic else min(self.start + len(self.data), self.stop)


class Air:
    """What emulated radios in one process share: the epoch and each other's transmissions."""

    def __init__(self) -> None:
        self.epoch = time.monotonic()
        self.radios: list[EmulatedRadio] = []
        self.lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.epoch


class EmulatedRadio:
    """One emulated Pluto's RF side: its :class:`RadioState` (what the attributes set), its oscillator
    error, what it transmits, and the receiver that hears every radio on its :class:`Air`."""

    def __init__(self, air: Air, params: SimParams, chip: ChipLimits) -> None:
        self.air, self.params = air, params
        self.ppm = params.oscillator_ppm()
        self.state = RadioState(chip=chip)
        self.rng = np.random.default_rng([params.seed, 3])
        self.lo_phase = float(self.rng.uniform(0, 2 * np.pi))
        self.segments: list[Segment] = []
        self.tx_buffers_open = 0  # while a TX buffer is open the DAC takes its samples from DMA, not the DDS
        # every overflow / underflow the FPGA flagged, with its time on the air's clock (what gr-iio prints
        # as O / U when it polls the flags), and when the first streaming TX buffer came
        self.events: list[tuple[str, float]] = []
        self.first_tx_push_s: float | None = None
        self._generation = 0
        with air.lock:
            air.radios.append(self)

    # --- clocks ---------------------------------------------------------------------------------------
    def xo(self) -> float:
        return (1 + self.ppm * 1e-6) * XO_NOMINAL_HZ / self.state.xo_correction

    def true_rate(self) -> float:
        return self.state.stream_rate * self.xo()

    def now_index(self) -> float:
        return self.air.now() * self.true_rate()

    def _check_generation(self) -> None:
        """A rate or XO change moves every sample index: what was queued is gone (as the AD9361's
        re-tuning glitches both paths on a real radio)."""
        if self.state.generation != self._generation:
            self._generation = self.state.generation
            self.segments = []

    # --- TX -------------------------------------------------------------------------------------------
    def place(self, x: np.ndarray, cyclic: bool, after: float | None) -> Segment:
        """Put ``x`` on the air from the next sample on (or right after ``after``, a previous buffer's end,
        if that is still ahead). Returns the segment; the caller keeps it to stop it."""
        with self.state.lock:
            self._check_generation()
            now = self.now_index()
            start = math.ceil(now if after is None or after < now else after)
            seg = Segment(start, x.astype(np.complex128), cyclic)
            self.segments.append(seg)
            horizon = now - KEEP_TX_S * self.true_rate()
            self.segments = [s for s in self.segments if s.end > horizon]
            return seg

    def stop(self, seg: Segment) -> None:
        with self.state.lock:
            seg.stop = min(seg.stop, math.ceil(self.now_index()))

    def flag(self, which: str, bit: int) -> None:
        with self.state.lock:
            self.state.status[which] |= bit
            self.events.append(("overflow" if which == "rx" else "underflow", self.air.now()))

    def _fetch(self, segments: list[Segment], idx: np.ndarray) -> np.ndarray:
        out = np.zeros(idx.shape, dtype=np.complex128)
        lo, hi = idx.min(), idx.max()
        for seg in segments:
            if seg.end <= lo or seg.start > hi:
                continue
            m = (idx >= seg.start) & (idx < seg.end)
            rel = idx[m] - seg.start
            out[m] += seg.data[rel % len(seg.data)] if seg.cyclic else seg.data[rel]
        return out

    def dds_tones(self) -> list[tuple[float, float, float, float]]:
        """The DDS tones on the air now: (frequency Hz, scale, I phase, Q phase in radians), one per pair of
        I/Q channels with ``raw`` = 1; none while a TX buffer is open (the DAC then plays the buffer)."""
        st = self.state
        with st.lock:
            if self.tx_buffers_open:
                return []
            chans = [st.dds.get(f"altvoltage{i}", {}) for i in range(4)]
        tones = []
        for i_ch, q_ch in ((chans[0], chans[2]), (chans[1], chans[3])):
            try:
                on = i_ch["raw"] == "1" or q_ch["raw"] == "1"
                f, scale = float(i_ch["frequency"]), float(i_ch["scale"])
                pi, pq = float(i_ch["phase"]) * 1e-3, float(q_ch["phase"]) * 1e-3
            except (KeyError, ValueError):
                continue
            if on and scale > 0:
                tones.append((f, scale, np.radians(pi), np.radians(pq)))
        return tones

    def emitting(self) -> bool:
        with self.state.lock:
            return not self.state.tx_lo_powerdown and bool(self.segments or self.dds_tones())

    def tx_at(self, pos: np.ndarray, exact: bool) -> np.ndarray:
        """This radio's TX signal at positions ``pos`` of its own sample clock (integers when ``exact``)."""
        with self.state.lock:
            self._check_generation()
            segments = list(self.segments)
            tones, fs = self.dds_tones(), self.state.stream_rate
        if tones:
            # each DDS channel plays scale x sin(2 pi f t + phase); full scale (1.0) is the DAC's, 2**15
            # counts, twice this module's unit of 2**14
            t = np.asarray(pos, dtype=np.float64) / fs
            dds = np.zeros(len(pos), dtype=np.complex128)
            for f, scale, pi, pq in tones:
                w = 2 * np.pi * f * t
                dds += 2 * scale * (np.sin(w + pi) + 1j * np.sin(w + pq))
            return dds
        if not segments:
            return np.zeros(len(pos), dtype=np.complex128)
        if exact:
            return self._fetch(segments, np.rint(pos).astype(np.int64))
        out = np.empty(len(pos), dtype=np.complex128)
        for a in range(0, len(pos), _CHUNK):
            p = pos[a:a + _CHUNK]
            base = np.floor(p).astype(np.int64)
            phase = np.rint((p - base) * _PHASES).astype(np.int64)
            base += phase // _PHASES
            phase %= _PHASES
            vals = self._fetch(segments, base[:, None] + _OFFSETS[None, :])
            out[a:a + _CHUNK] = np.einsum("ij,ij->i", vals, _H[phase])
        return out

    # --- RX -------------------------------------------------------------------------------------------
    def synthesize(self, k0: int, n: int) -> np.ndarray:
        """RX samples k0 .. k0+n-1 of this radio (complex64, full scale 1.0 = 2048 ADC counts)."""
        st = self.state
        with st.lock:
            rate_r, xo_r = self.true_rate(), self.xo()
            rx_lo, rx_bw = st.rx_lo * xo_r, st.rx_bw
            gain_mode, gain_db, fs = st.gain_mode, st.rx_gain_db, st.stream_rate
        tau = (k0 + np.arange(n, dtype=np.float64)) / rate_r  # true seconds since the epoch
        y = np.zeros(n, dtype=np.complex128)
        with self.air.lock:
            radios = list(self.air.radios)
        for src in radios:
            if not src.emitting():
                continue
            with src.state.lock:
                offset_hz = src.state.tx_lo * src.xo() - rx_lo
                rate_s, atten = src.true_rate(), src.state.tx_atten_db
            if abs(offset_hz) > rx_bw / 2:
                continue  # outside the analog filter
            same_clock = src is self
            x = src.tx_at(k0 + np.arange(n) if same_clock else tau * rate_s, exact=same_clock)
            if not np.any(x):
                continue
            phase = 2 * np.pi * offset_hz * tau + src.lo_phase - self.lo_phase
            y += air_signal(x, src.params, atten, self.params.path_loss_db, self.rng) * np.exp(1j * phase)
        out, gain = front_end(y, fs, gain_mode, gain_db, self.params, self.rng)
        with st.lock:
            st.last_rx_dbfs = 10 * math.log10(float(np.mean(np.abs(out) ** 2)) + 1e-30)
            if gain_mode != "manual":
                st.rx_gain_db = gain  # the AGC's choice is what hardwaregain reads back
        return out


class RxStream:
    """An open RX buffer: consecutive blocks of samples from the moment it was opened."""

    def __init__(self, radio: EmulatedRadio, kernel_buffers: int) -> None:
        self.radio, self.kernel_buffers = radio, max(1, kernel_buffers)
        self.generation = radio.state.generation
        self.next = math.ceil(radio.now_index())

    def read(self, n: int, stopping: threading.Event) -> np.ndarray | None:
        """The next ``n`` samples, returned once they have been received; None when ``stopping`` is set."""
        r = self.radio
        if r.state.generation != self.generation:  # clocks changed: start again from now
            self.generation, self.next = r.state.generation, math.ceil(r.now_index())
        now = r.now_index()
        if now - (self.next + n) > self.kernel_buffers * n:  # the DMA had nowhere to put them
            r.flag("rx", OVERFLOW_BIT)
            self.next = math.floor(now) - n
        # Synthesised in chunks as their time comes, so a long capture returns one chunk's work after its
        # last sample rather than the whole buffer's
        parts = []
        pos, end = self.next, self.next + n
        while pos < end:
            stop = min(pos + _CHUNK * 4, end)
            while True:
                wait = (stop - r.now_index()) / r.true_rate()
                if wait <= 0:
                    break
                if stopping.wait(min(wait, 0.05)):
                    return None
            parts.append(r.synthesize(pos, stop - pos))
            pos = stop
        self.next = end
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


class TxStream:
    """An open TX buffer: cyclic (one buffer repeated) or streaming (buffers queued back to back)."""

    def __init__(self, radio: EmulatedRadio, cyclic: bool, kernel_buffers: int) -> None:
        self.radio, self.cyclic, self.kernel_buffers = radio, cyclic, max(1, kernel_buffers)
        self.segments: list[Segment] = []
        self.queued_end: float | None = None
        with radio.state.lock:
            radio.tx_buffers_open += 1
        self._open = True

    def push(self, x: np.ndarray, stopping: threading.Event) -> None:
        r = self.radio
        if self.cyclic:
            for seg in self.segments:  # a new cyclic buffer replaces the old one
                r.stop(seg)
            self.segments = [r.place(x, True, None)]
            return
        if r.first_tx_push_s is None:
            r.first_tx_push_s = r.air.now()
        if self.queued_end is not None and self.queued_end < r.now_index():
            r.flag("tx", UNDERFLOW_BIT)  # the DAC ran out of samples before this buffer came
        seg = r.place(x, False, self.queued_end)
        self.segments = [s for s in self.segments if s.end > r.now_index()] + [seg]
        self.queued_end = seg.start + len(x)
        # block while every kernel buffer is still queued (the push of a real DMA buffer waits the same way)
        limit = (self.kernel_buffers - 1) * len(x)
        while self.queued_end - r.now_index() > limit:
            if stopping.wait(min(0.05, (self.queued_end - r.now_index() - limit) / r.true_rate())):
                return

    def close(self) -> None:
        for seg in self.segments:
            self.radio.stop(seg)
        self.segments = []
        if self._open:
            self._open = False
            with self.radio.state.lock:
                self.radio.tx_buffers_open -= 1


def to_int16(samples: np.ndarray) -> np.ndarray:
    """RX samples (full scale 1.0) -> interleaved I/Q int16 ADC words, sign-extended 12-bit."""
    iq = np.empty((len(samples), 2), dtype=np.int16)
    iq[:, 0] = np.clip(np.rint(samples.real * RX_COUNTS_PER_UNIT), -2048, 2047)
    iq[:, 1] = np.clip(np.rint(samples.imag * RX_COUNTS_PER_UNIT), -2048, 2047)
    return iq


def from_int16(i: np.ndarray, q: np.ndarray) -> np.ndarray:
    """TX DAC words -> complex samples in full-scale units (1.0 = 2**14 counts)."""
    return (i.astype(np.float64) + 1j * q.astype(np.float64)) / TX_COUNTS_PER_UNIT
