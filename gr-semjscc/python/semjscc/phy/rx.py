"""Vectorised numpy reference receiver for the analog-payload OFDM bursts of :mod:`semjscc.phy.frame`.

Pipeline, batched over every candidate burst in a buffer (no per-sample Python loops):

1. Sanitise (NaN, inf, |x| >= 1e15 -> 0).
2. Schmidl & Cox metric M(d) = |P(d)|^2 / R(d)^2 over sync_word1's two identical halves, averaged
   over the CP plateau; runs above ``sc_threshold`` are grouped and their peak is a candidate
   (a run longer than two symbols, e.g. a CW interferer holding the metric up between bursts,
   gives the peak of each symbol-length stretch), angle(P)/pi its fractional CFO (range +-1
   subcarrier). Candidates are handled in rounds, most
   obvious preamble first; later rounds skip candidates inside frames already found (payload
   symbols look like noise to this metric and raise several weak candidates per frame).
3. Integer CFO g in {-G..G} (shifts of 2 bins, the fractional estimate's ambiguity): the normalised
   correlation rho(g) between sync_word1 and sync_word2 on the even carriers (Schmidl & Cox's
   second step); it is insensitive to timing offset and multipath, so it also validates the
   candidate (``detect_threshold``). Default G = 4 (``max_cfo_subcarriers`` = 8, the
   ``channel_model.CFO_SEARCH_HZ`` of 125 kHz at 1 MS/s): |CFO| < 9 subcarriers = +-140.6 kHz, two stock
   Plutos 50 ppm apart at 2.45 GHz without calibration. With 9 shifts to choose from, a wrong one's
   sidelobe (rho 0.09 for +-2 steps on a flat channel, more in a fade) beats the true one now and then
   near 0 dB: a candidate whose header does not pass (step 7) is read again at the _ALT_SHIFTS
   runner-up shifts that also reach the threshold, and the reading whose header passes, else the one
   with the best preamble-fit SNR (a wrong shift's "channel" is no smooth response of a few taps), is
   kept. On noise the best of 9 shifts passes the threshold more often than the best of 3, but few
   candidates reach a header decode (the preamble-fit SNR gate of step 7), each a 2^-16 chance for the
   CRC: no stricter gate is needed (figures in docs/results.md, "Carrier-offset acquisition").
   A tone (or a few) passes Schmidl & Cox and has rho ~1 on the bins holding its energy: the
   preamble's energy must also be spread over the carriers (effective number (sum e)^2 / sum e^2
   >= 6) and present on sync_word2's odd carriers, which a half-symbol periodic signal leaves empty.
   In a fade (a preamble near 0 dB) the top of the Schmidl & Cox plateau wanders by tens of
   samples and the windows take in the next symbol: a candidate that fails is tried again one
   cyclic prefix earlier and later.
4. Fine timing: cross-correlation with sync_word2's time waveform, FFT window placed
   ``timing_margin`` samples before the first strong path, inside the cyclic prefix. The default,
   8 of the 16 CP samples, leaves 7 samples (7 us at 1 MS/s) for delay spread and lets a burst
   whose last samples are still held in a filter's history (a stream that went idle) decode.
5. Fine CFO from the phase between sync_word1 and sync_word2 (26 carriers, 80 samples apart).
6. LS channel estimate from both preamble symbols, smoothed by a weighted least-squares fit of a
   ``channel_taps``-tap impulse response (noise reduction ~ taps / observations).
7. Header: common phase per header symbol from all its carriers (BPSK squared, pilots resolve
   the pi ambiguity), matched-filter soft bits, tail-biting Viterbi (skipped when the hard
   decisions are already a codeword, or when the preamble fit says SNR < -5 dB), CRC-16; the
   header's pilot-pattern bits say whether mid-ambles follow. Sequence-aided acquisition: frame
   numbers count up, so a burst whose CRC failed, lying between good headers (or after the last
   one), can only carry one of a few (frame number, length, pattern) headers -- fewer still as every
   frame takes its own air time. Its soft header values are correlated with those codewords (per
   header symbol, either sign) and the best is taken when the correlation reaches ``_AIDED_Z``,
   set so that on noise this adds no more false headers than the CRC itself lets through. That
   holds a frame down to about -5 dB on its header instead of about -1 dB: in fades at 5 dB, half
   the frames lost before.
8. With a good header the two header symbols are known. Channel tracking through the frame
   (:class:`semjscc.phy.tracking.ChannelTracker`): after a common phase per symbol (a line through
   the phases of every symbol's known carriers with ``phase_tracking`` 'linear', each symbol's own
   with 'symbol'), an LMMSE estimate of the channel on every OFDM symbol from every known resource
   element -- preamble, header, the pilots of each payload symbol and any mid-amble -- with the
   taps' time variation expanded in the leading eigenvectors of Clarke's correlation for a few
   hypothesised Dopplers; the frame's evidence picks the Doppler (a static channel keeps the static
   estimate). Four pilots per symbol follow a few strong paths; mid-ambles (``FrameFormat(midamble=)``)
   give the whole band every few symbols for faster or richer channels. Then ZF or MMSE
   equalisation, with the estimate's own error variance added to the noise.
9. SNR estimate (``snr_est_db``, what the SNR-adaptive decoder is told): the payload's, i.e. what
   10 log10(1 / mean |x_hat - x|^2) should be for the equalised symbols x_hat of the unit-power
   symbols x sent -- mean over the payload of (N + V) / (|H|^2 + N + V) for MMSE, (N + V) / |H|^2 for
   ZF, with H the tracked channel, V its estimate's variance and N the noise variance from the
   residuals of every known resource element after the fit (degrees of freedom corrected). Under
   Doppler it falls with the payload's SNR rather than reporting the preamble's. (Before issue 13 it
   was mean |H|^2 / N from the preamble and header; under MMSE on AWGN the payload's SNR is
   10 log10(1 + snr): 3.0 dB at 0 dB, 10.4 dB at 10 dB.)

Accounting: every validated candidate is either a frame with a good header, or (if its preamble is
unambiguous: rho >= ``report_threshold``, also without its two strongest carriers, so that a tone in
noise does not count) a frame reported with ``header_ok=False``; weaker candidates whose header fails
are counted as ``rejected`` (most are noise or interference). Frames that never appear show up as
gaps in the 16-bit frame numbers (:class:`FrameCounter`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from semjscc.phy.channel_model import MAX_CFO_SUBCARRIERS
from semjscc.phy.frame import (
    DEFAULT_FRAME_FORMAT,
    MAX_FRAME_NUMBER,
    MIDAMBLE_INTERVALS,
    FrameFormat,
    decode_header,
    encode_header,
)
from semjscc.phy.tracking import ChannelTracker

_TINY = 1e-30
_MIN_HEADER_SNR_DB = -5.0  # preamble-fit SNR below which a header is not worth decoding
_SC_OBVIOUS = 0.5  # smoothed Schmidl & Cox metric of a preamble above ~5 dB SNR (noise: ~0.03)
_MAX_ABS = 1e15  # larger samples are treated as invalid: their squares would overflow float32
# A tone (or a few, or any signal periodic with half a symbol) passes Schmidl & Cox, and rho on the
# one or two carriers holding its energy is ~1. The preamble's energy must be spread over the bins: a
# channel inside the cyclic prefix keeps >= 14 effective bins (no loss up to 14 with 16 equal Rayleigh
# taps at 30 dB; ~35 typical), one to three tones give 1 to 2.5 ...
_MIN_SPREAD = 6.0
# ... and sync_word2's odd carriers must hold about as much as its even ones (a preamble: ~1 at any
# SNR, no loss up to 0.5 at -1 dB; half-symbol periodic input: nothing on odd carriers).
_MIN_ODD = 0.25
_TRIM = 2  # strongest carriers left out of the robust rho that decides on reporting a failed header
_RETRY_OFFSETS = (-16, 16)  # samples: preamble windows tried when the first fails (one CP each way)
# Integer CFOs tried after the best one when a header does not pass. Over a frequency-selective channel
# near 0 dB a neighbour shift's sidelobe (rho 0.09 flat for +-2 steps of 2 subcarriers, more in a fade)
# can beat the true shift once there are 9 shifts to choose from; the preamble fit tells them apart.
_ALT_SHIFTS = 2
_AIDED_WINDOW = 16  # frame numbers tried on each side of a good header (up to 15 frames lost in between)
# Codeword correlation accepted. On noise Z is the sum over the 2 header symbols of |N(0, 1/2)|, so
# P(Z >= 5.6) <= 4 Q(5.6) = 4.3e-8 per codeword: with at most 2 x 16 codewords per candidate that is
# no more than the 2^-16 x 1/8 (CRC, length limit) chance that a Viterbi-decoded noise header passes.
_AIDED_Z = 5.6


@dataclass
class ReceivedFrame:
    frame_number: int  # -1 when the header failed
    header_ok: bool
    payload: np.ndarray  # equalised complex symbols (complex64), empty when the header failed
    snr_est_db: float
    cfo_hz: float
    start: int  # absolute index of the frame's first sample (first cyclic prefix of the preamble)
    preamble_metric: float  # rho in [0, 1]
    noise_var: float
    header_aided: bool = False  # the header was taken from the frame-number sequence (its CRC failed)
    channel_snr_db: float = math.nan  # Es/N0 per subcarrier, mean |H|^2 / noise (the channel's, not the payload's)

    def metadata(self) -> dict:
        return {"frame_number": int(self.frame_number), "snr_est_db": float(self.snr_est_db),
                "cfo_hz": float(self.cfo_hz), "header_ok": bool(self.header_ok)}


@dataclass
class RxStats:
    candidates: int = 0  # Schmidl & Cox peaks examined
    validated: int = 0  # passed the preamble correlation test
    header_ok: int = 0
    header_failed: int = 0  # reported frames whose header CRC failed
    rejected: int = 0  # validated but weak preamble and failed header: not reported
    headers_decoded: int = 0  # header decodes attempted (each could pass its CRC by chance on noise)
    headers_aided: int = 0  # headers taken from the frame-number sequence (CRC failed, codeword matched)
    cut_short: int = 0  # good header, but the stream ended before the frame did: dropped at flush


@dataclass
class FrameCounter:
    """frames sent == received + lost, from the 16-bit frame numbers of good headers (wrap-aware)."""

    received: int = 0
    lost: int = 0
    last: int | None = None
    seen: set = field(default_factory=set)

    def update(self, frame_number: int) -> None:
        if self.last is not None:
            gap = (frame_number - self.last - 1) % (MAX_FRAME_NUMBER + 1)
            if gap > (MAX_FRAME_NUMBER + 1) // 2:  # an old/duplicate number: do not count backwards
                return
            self.lost += gap
        self.received += 1
        self.last = frame_number


@dataclass(frozen=True)
class _End:
    """How a flush ends the stream: ``valid_len`` samples of the buffer are real (plus a tolerance; the
    rest is zero padding), and with ``hold_len`` (the stream only paused) a burst that has not fully
    arrived stays buffered rather than being decided on."""

    valid_len: int
    hold_len: int | None = None


@dataclass
class _Candidates:
    """Validated preamble candidates after fine timing, CFO, channel estimate and header decoding: per
    candidate the FFT window start ``fft0``, first sample ``start``, CFO ``eps`` (subcarriers),
    preamble correlation ``rho`` and its robust version ``rho_rep`` (decides on reporting a failed
    header), overhead-symbol FFTs ``y`` (K, 4, used), preamble channel estimate ``h``, noise and SNR,
    header fields ``fn``/``ln``/``crc_ok`` and the Schmidl & Cox ``metric``."""

    fft0: np.ndarray
    start: np.ndarray
    eps: np.ndarray
    rho: np.ndarray
    rho_rep: np.ndarray
    y: np.ndarray
    h: np.ndarray
    noise: np.ndarray
    snr: np.ndarray
    fn: np.ndarray
    ln: np.ndarray
    pat: np.ndarray  # pilot pattern code from the header
    crc_ok: np.ndarray
    metric: np.ndarray
    soft: np.ndarray  # (K, 96) header soft values in slot order
    aided: np.ndarray  # header taken from the frame-number sequence rather than decoded
    src: np.ndarray  # index of each candidate in the arrays _refine was given (meaningful on its own result only)

    @classmethod
    def concat(cls, parts: list[_Candidates]) -> _Candidates:
        return cls(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__})

    def take(self, idx: np.ndarray) -> _Candidates:
        return _Candidates(**{f: getattr(self, f)[idx] for f in self.__dataclass_fields__})


class _Grid:
    """Index arrays and precomputed matrices derived once from the frame format."""

    def __init__(self, fmt: FrameFormat, channel_taps: int, smooth: bool, timing_margin: int) -> None:
        num = fmt.numerology
        self.nfft, self.cp, self.sym = num.fft_len, num.cp_len, num.symbol_len
        used = np.array(sorted(num.data_carriers + num.pilot_carriers))
        self.used_bins = used % self.nfft
        pos = {int(k): i for i, k in enumerate(used)}
        self.data_pos = np.array([pos[k] for k in num.data_carriers])  # into the used-carrier axis
        self.pilot_pos = np.array([pos[k] for k in num.pilot_carriers])
        self.pilot_vals = np.asarray(num.pilot_values, dtype=np.complex128)
        sw1 = np.asarray(num.sync_word1, dtype=np.complex128)
        sw2 = np.asarray(num.sync_word2, dtype=np.complex128)
        self.x1, self.x2 = sw1[self.used_bins], sw2[self.used_bins]  # (n_used,)
        self.even = np.flatnonzero(np.abs(self.x1) > 0)  # used-axis positions carrying sync_word1
        self.even_bins = self.used_bins[self.even]
        self.ref2_conj = np.conj(np.fft.ifft(sw2, norm="ortho")).astype(np.complex64)  # sync_word2, no CP
        self.w_pre = np.abs(self.x1) ** 2 + np.abs(self.x2) ** 2
        self.w_full = self.w_pre + fmt.n_header  # header symbols: unit-modulus on every used carrier
        self.taps = channel_taps if smooth else len(used)
        # the FFT window opens timing_margin samples before the first path: model a few taps
        # earlier than that (timing error) and the rest after it (delay spread)
        first = timing_margin - 4
        delays = np.arange(first, first + channel_taps)
        F = np.exp(-2j * np.pi * np.outer(used, delays) / self.nfft)
        self.tap_fit = np.linalg.pinv(F).T.copy()  # smoothed H (K, U) @ tap_fit -> taps (K, L)
        self.tracker = ChannelTracker(used, delays, self.nfft, self.sym)
        if smooth:
            self.proj_pre = self._projector(F, self.w_pre)
            self.proj_full = self._projector(F, self.w_full)
        else:
            self.proj_pre = self.proj_full = None
        # layout weights (|X|^2 on known resource elements) of the overhead and of a payload symbol
        self.w_overhead = np.zeros((fmt.n_overhead, len(used)))
        self.w_overhead[0] = np.abs(self.x1) ** 2
        self.w_overhead[1] = np.abs(self.x2) ** 2
        self.w_overhead[fmt.n_preamble:] = 1.0
        self.w_payload = np.zeros(len(used))
        self.w_payload[self.pilot_pos] = 1.0

    @staticmethod
    def _projector(basis: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Weighted LS fit of an impulse response, returned as H_smooth = H_raw @ P.T."""
        F = basis
        G = F.conj().T @ (w[:, None] * F)
        G += 1e-9 * np.trace(G).real / len(G) * np.eye(len(G))
        P = F @ np.linalg.solve(G, F.conj().T * w[None, :])
        return P.T.copy()


class OFDMReceiver:
    """Streaming receiver: feed sample chunks to :meth:`process`, call :meth:`flush` at the end."""

    def __init__(self, fmt: FrameFormat = DEFAULT_FRAME_FORMAT, equalizer: str = "mmse",
                 phase_tracking: str = "linear", sc_threshold: float = 0.06, detect_threshold: float = 0.1,
                 report_threshold: float = 0.5, max_cfo_subcarriers: float = MAX_CFO_SUBCARRIERS, channel_taps: int = 12,
                 smooth_channel: bool = True, timing_margin: int = 8, max_payload_len: int = 8192) -> None:
        if equalizer not in ("mmse", "zf"):
            raise ValueError("equalizer must be 'mmse' or 'zf'")
        if phase_tracking not in ("linear", "symbol"):
            raise ValueError("phase_tracking must be 'linear' or 'symbol'")
        if not 0 <= timing_margin < fmt.numerology.cp_len:
            raise ValueError("timing_margin must lie inside the cyclic prefix")
        if channel_taps < 1 or channel_taps > fmt.numerology.cp_len + 8:
            raise ValueError("channel_taps must be 1 .. cp_len + 8")
        self.fmt, self.num = fmt, fmt.numerology
        self.equalizer, self.phase_tracking = equalizer, phase_tracking
        self.sc_threshold, self.detect_threshold = sc_threshold, detect_threshold
        self.report_threshold, self.timing_margin = report_threshold, timing_margin
        self.max_payload_len = max_payload_len
        self.int_range = max(0, math.ceil((max_cfo_subcarriers - 1.0) / 2.0))
        self.g = _Grid(fmt, channel_taps, smooth_channel, timing_margin)
        self.stats = RxStats()
        self.reset()

    # --- streaming API ----------------------------------------------------------------------
    def reset(self) -> None:
        self._buf = np.zeros(0, dtype=np.complex64)
        self._base = 0  # absolute index of _buf[0]
        self._last_end = 0  # absolute index before which everything is decided
        self._last_header: tuple[int, int, int, int] | None = None  # (start, frame number, length, pattern) last accepted

    def process(self, samples: np.ndarray) -> list[ReceivedFrame]:
        x = np.asarray(samples).astype(np.complex64, copy=False).ravel()
        # NaN/inf or absurd magnitudes (a broken source) would poison every window sum: zero them.
        # (NaN compares False, so one comparison catches all three.)
        sane = np.abs(x.view(np.float32)) < _MAX_ABS
        if not sane.all():
            x = np.where(sane.reshape(-1, 2).all(axis=1), x, np.complex64(0))
        self._buf = np.concatenate([self._buf, x]) if len(self._buf) else x
        return self._scan(None)

    def flush(self, hold_incomplete: bool = False) -> list[ReceivedFrame]:
        """Decide on everything buffered (end of stream, or the stream went idle). A burst cut a few
        samples short (e.g. held back in a channel filter's history) is completed with zeros.

        ``hold_incomplete`` (the stream only paused, more may come): a burst whose header or payload
        has not fully arrived stays buffered for the next call instead of being decided on now
        (a failed header) or dropped (``stats.cut_short``)."""
        real_len = len(self._buf)
        real_end = self._base + real_len
        if real_len:
            tail = np.zeros(self.g.nfft + 2 * self.g.sym, dtype=np.complex64)
            self._buf = np.concatenate([self._buf, tail])
        # at most cp/2 zero-filled samples inside a frame's last FFT window; a burst cut any shorter
        # is dropped rather than delivered with a zeroed payload tail
        frames = self._scan(_End(real_len + self.g.cp // 2, real_len if hold_incomplete else None))
        if not (hold_incomplete and len(self._buf)):  # nothing held back for the next samples
            # the zero tail is not part of the stream: absolute sample indices continue from real_end
            self._base = self._last_end = real_end
            self._buf = np.zeros(0, dtype=np.complex64)
        return frames

    @property
    def buffered(self) -> int:
        return len(self._buf)

    # --- the scan ---------------------------------------------------------------------------
    def _scan(self, end: _End | None) -> list[ReceivedFrame]:
        """Decide on the candidates in the buffer; ``end``: a flush (see :class:`_End`), None while streaming."""
        g, buf = self.g, self._buf
        final = end is not None
        n = len(buf)
        tail_keep = g.nfft + 2 * g.sym
        if n < 2 * g.nfft:
            if final:
                self._buf = buf[:0]
            return []
        d, P, M = self._sc_peaks(buf)
        keep = d + self._base >= self._last_end
        d, P, M = d[keep], P[keep], M[keep]
        need = (self.fmt.n_overhead + 2) * g.sym  # samples after a peak to decide on it
        hold = end is not None and end.hold_len is not None
        # a holding flush decides on bursts whose preamble and header have all arrived
        ready = d + self.fmt.n_overhead * g.sym + g.cp <= end.hold_len if hold else d + need <= n  # type: ignore[union-attr]
        keep_from = n - tail_keep
        if (not final or hold) and not ready.all():
            keep_from = min(keep_from, int(d[~ready][0]) - g.sym)
        d, P, M = d[ready], P[ready], M[ready]
        self.stats.candidates += len(d)
        frames: list[ReceivedFrame] = []
        if len(d):
            frames, incomplete = self._decide(buf, d, P, M, end)
            if incomplete is not None:
                keep_from = min(keep_from, incomplete - g.sym)
        if hold and keep_from < end.hold_len:  # type: ignore[union-attr,operator]  # something is still arriving
            keep_from = max(0, keep_from)
            self._buf = buf[keep_from:end.hold_len].copy()  # type: ignore[union-attr]
            self._base += keep_from
            return frames
        keep_from = max(0, keep_from) if not final else n
        if final:
            self._last_end = max(self._last_end, self._base + n)
        self._buf = buf[keep_from:].copy()
        self._base += keep_from
        return frames

    def _sc_peaks(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Schmidl & Cox candidates: (window starts d, correlations P(d), smoothed metric) per peak."""
        half = self.g.nfft // 2

        def window_sum(v: np.ndarray, w: int) -> np.ndarray:
            """Sliding sums of length w via a float64 running sum (numpy's complex cumsum is ~5x slower
            than two real ones, and float32 running sums drift over long buffers)."""
            c = np.empty(len(v) + 1)
            c[0] = 0.0
            np.cumsum(v, out=c[1:], dtype=np.float64)
            return c[w:] - c[:-w]

        prod = np.conj(x[:-half]) * x[half:]
        Pr, Pi = window_sum(prod.real, half), window_sum(prod.imag, half)  # P(d), d = 0 .. n - 2*half
        R = 0.5 * window_sum(x.real * x.real + x.imag * x.imag, 2 * half)  # mean half-window energy
        Pr, Pi = Pr[:len(R)], Pi[:len(R)]
        M = (Pr * Pr + Pi * Pi) / (R * R + _TINY)
        # average over the plateau length (CP + 1): the peak lands mid-plateau, inside the CP, and
        # noise-only fluctuations cross the threshold less often
        w = self.g.cp + 1
        M = window_sum(M, w) / w  # M[d] now averages d .. d + cp
        idx = np.flatnonzero(self.sc_threshold < M)
        if not len(idx):
            return idx, np.zeros(0, complex), M[:0]
        new_group = np.concatenate([[True], np.diff(idx) > self.g.nfft])
        gid = np.cumsum(new_group) - 1
        # A run longer than two symbols is not one preamble: a CW interferer holds the metric up in
        # the gaps too (a preamble under a tone need not even be a local maximum), and the run's
        # single top may lie there. Such runs are cut into symbol-length stretches, each giving its
        # top; the preamble validation rejects the ones that are only the tone, and of two readings
        # of one burst the assembly keeps the one with the higher metric (the plateau's top).
        heads = np.flatnonzero(new_group)
        long_run = (np.maximum.reduceat(idx, heads) - idx[heads] > 2 * self.g.sym)[gid]
        if long_run.any():
            sub = np.where(long_run, (idx - idx[heads][gid]) // self.g.sym, 0)
            new_group = np.concatenate([[True], (np.diff(gid) != 0) | (np.diff(sub) != 0)])
            gid = np.cumsum(new_group) - 1
        vals = M[idx]
        gmax = np.maximum.reduceat(vals, np.flatnonzero(new_group))
        first_max = np.flatnonzero(vals == gmax[gid])
        _, sel = np.unique(gid[first_max], return_index=True)
        peaks = idx[first_max[sel]]
        # P summed over the same window: a steadier fractional-CFO phase
        win = peaks[:, None] + np.arange(w)
        P_sum = Pr[win].sum(axis=1) + 1j * Pi[win].sum(axis=1)
        return peaks + self.g.cp // 2, P_sum, M[peaks]  # mid-plateau: inside sync_word1's CP

    def _fft_windows(self, x: np.ndarray, starts: np.ndarray, n_sym: int, eps: np.ndarray,
                     first: int = 0) -> np.ndarray:
        """FFT of n_sym windows per frame (K, n_sym, used carriers), CFO eps (subcarriers) removed;
        window i starts at starts + (first + i) * symbol_len, phase referenced to starts."""
        g = self.g
        sym_off = (first + np.arange(n_sym)) * g.sym
        rel = sym_off[:, None] + np.arange(g.nfft)[None, :]
        seg = x[starts[:, None, None] + rel[None]]
        # exp(-j2pi eps (s + m)/N) = per-symbol phase x in-window ramp: K*(n_sym + N) exps, not K*n_sym*N
        w = -2j * np.pi * eps[:, None] / g.nfft
        rot = np.exp(w * sym_off)[:, :, None] * np.exp(w * np.arange(g.nfft))[:, None, :]
        return np.fft.fft(seg * rot, axis=-1, norm="ortho")[..., g.used_bins]

    def _decide(self, x: np.ndarray, d: np.ndarray, corr: np.ndarray, metric: np.ndarray,
                end: _End | None) -> tuple[list[ReceivedFrame], int | None]:
        """Rounds from most to least obvious preamble. Payload symbols look like noise to Schmidl &
        Cox and raise many weak candidates inside each frame: once a round has found frames, later
        rounds skip the candidates inside them (no validation, no header decoding)."""
        parts: list[_Candidates] = []
        first = metric >= _SC_OBVIOUS
        if first.any():
            d1, eps1, _, m1, alt1 = self._validate(x, d[first], corr[first], metric[first])
            parts.append(self._refine_shifts(x, d1, eps1, alt1, m1, wide=False))
        rest = np.flatnonzero(~first)
        rest = rest[~self._inside(d[rest], parts)]
        d2, eps2, rho2, m2, alt2 = self._validate(x, d[rest], corr[rest], metric[rest])
        strong = rho2 >= self.report_threshold
        parts.append(self._refine_shifts(x, d2[strong], eps2[strong], alt2[strong], m2[strong]))
        weak = np.flatnonzero(~strong)
        weak = weak[~self._inside(d2[weak], parts)]
        parts.append(self._refine_shifts(x, d2[weak], eps2[weak], alt2[weak], m2[weak]))
        c = _Candidates.concat(parts)
        self._aid_headers(c)
        return self._assemble(x, end, c)

    def _aid_headers(self, c: _Candidates) -> None:
        """Sequence-aided header acquisition for validated candidates whose header failed (see the
        module docstring, step 7): frame numbers count up, so a burst between two good headers (or
        after the last one) can only carry one of a few (frame number, length) pairs; fewer still
        since each frame takes its own length of air time. The soft header values are correlated
        with those codewords and the best one is taken when its normalised correlation Z (about
        N(0, 1) on noise) reaches _AIDED_Z."""
        todo = np.flatnonzero(~c.crc_ok & (c.snr >= _MIN_HEADER_SNR_DB))
        ok = np.flatnonzero(c.crc_ok)
        refs = sorted(zip((self._base + c.start[ok]).tolist(), c.fn[ok].tolist(), c.ln[ok].tolist(),
                          c.pat[ok].tolist(), strict=True))
        if self._last_header is not None:
            refs.insert(0, self._last_header)
        if not len(todo) or not refs:
            return
        ref_starts = np.array([r[0] for r in refs])
        tol, wrap = self.g.cp, MAX_FRAME_NUMBER + 1
        for i in todo:
            s_i = self._base + int(c.start[i])
            hyp: list[tuple[int, int, int]] = []
            j = int(np.searchsorted(ref_starts, s_i - tol)) - 1  # the last good header before this burst
            if j >= 0:
                s_p, fn_p, ln_p, pat_p = refs[j]
                k_max = min(_AIDED_WINDOW, (s_i - s_p + tol) // self._frame_samples(ln_p, pat_p))
                hyp += [((fn_p + k) % wrap, ln_p, pat_p) for k in range(1, k_max + 1)]
            j = int(np.searchsorted(ref_starts, s_i + tol, side="right"))  # the first one after it
            if j < len(refs):
                s_n, fn_n, ln_n, pat_n = refs[j]
                k_max = min(_AIDED_WINDOW, (s_n - s_i + tol) // self._frame_samples(ln_n, pat_n))
                hyp += [((fn_n - k) % wrap, ln_n, pat_n) for k in range(1, k_max + 1)]
            if not hyp:
                continue
            hyp = sorted(set(hyp))
            code = np.real(encode_header(*np.array(hyp).T))
            soft = c.soft[i].reshape(self.fmt.n_header, -1)
            code = code.reshape(len(hyp), self.fmt.n_header, -1)
            # per header symbol, either sign: a symbol whose pi ambiguity was resolved wrongly still counts
            z = np.sum(np.abs(np.einsum("hsn,sn->hs", code, soft)), axis=1) / (np.sqrt(np.sum(soft * soft)) + _TINY)
            best = int(np.argmax(z))
            if z[best] >= _AIDED_Z:
                c.fn[i], c.ln[i], c.pat[i] = hyp[best]
                c.crc_ok[i] = c.aided[i] = True
                self.stats.headers_aided += 1

    def _inside(self, pos: np.ndarray, parts: list[_Candidates]) -> np.ndarray:
        """Which positions fall inside a frame with a good header found so far."""
        starts = [p.start[p.crc_ok] for p in parts]
        if not len(pos) or not sum(len(s) for s in starts):
            return np.zeros(len(pos), dtype=bool)
        ends = [p.start[p.crc_ok] + self._frame_symbols(p.ln[p.crc_ok], p.pat[p.crc_ok]) * self.g.sym for p in parts]
        iv_start, iv_end = np.concatenate(starts), np.concatenate(ends)
        order = np.argsort(iv_start)
        iv_start, iv_end = iv_start[order], np.maximum.accumulate(iv_end[order])
        j = np.searchsorted(iv_start, pos, side="right") - 1
        return (j >= 0) & (pos < iv_end[np.maximum(j, 0)])

    def _frame_symbols(self, ln: np.ndarray, pat: np.ndarray) -> np.ndarray:
        """OFDM symbols of frames of payload lengths ``ln`` and pilot patterns ``pat`` (header fields)."""
        n_pay = -(-np.asarray(ln) // self.num.n_data)
        every = np.asarray(MIDAMBLE_INTERVALS)[np.asarray(pat)]
        n_mid = np.where((every > 0) & (n_pay > 0), (n_pay - 1) // np.maximum(every, 1), 0)
        return self.fmt.n_overhead + n_pay + n_mid

    def _frame_samples(self, ln: int, pat: int) -> int:
        return int(self._frame_symbols(np.array([ln]), np.array([pat]))[0]) * self.g.sym

    def _validate(self, x: np.ndarray, d: np.ndarray, corr: np.ndarray,
                  metric: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Integer CFO + validation (rho) at coarse timing -> (d, CFO in subcarriers, rho, metric, runner-up
        CFOs) that pass. ``corr`` is the Schmidl & Cox correlation P at each candidate, ``metric`` its M.
        The runner-up CFOs (K, _ALT_SHIFTS) are the next integer shifts by rho that also reach
        ``detect_threshold`` (NaN where none).

        At low SNR (a preamble in a fade) the top of the smoothed Schmidl & Cox plateau wanders by tens
        of samples, and FFT windows that far from the cyclic prefix take in the neighbouring symbol:
        rho falls below the threshold although the preamble is there. A candidate that fails is tried
        again with its windows moved by _RETRY_OFFSETS (one cyclic prefix earlier, then later)."""
        eps_f = np.angle(corr) / np.pi
        d = d.copy()
        rho, shift, ok, spread_ok, alt = self._preamble_test(x, d, eps_f)
        retry = np.flatnonzero(~ok & spread_ok)  # not tones and the like: they fail anywhere
        for off in _RETRY_OFFSETS:
            if not len(retry):
                break
            dd = d[retry] + off
            fits = (dd >= 0) & (dd + self.g.sym + self.g.nfft <= len(x))
            retry, dd = retry[fits], dd[fits]
            r2, s2, ok2, _, a2 = self._preamble_test(x, dd, eps_f[retry])
            won = retry[ok2]
            d[won], rho[won], shift[won], ok[won], alt[won] = dd[ok2], r2[ok2], s2[ok2], True, a2[ok2]
            retry = retry[~ok2]
        self.stats.validated += int(ok.sum())
        return d[ok], eps_f[ok] + 2 * shift[ok], rho[ok], metric[ok], eps_f[ok, None] + 2 * alt[ok]

    def _preamble_test(self, x: np.ndarray, d: np.ndarray,
                       eps_f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """rho, integer CFO (in 2-subcarrier steps), pass/fail of the preamble test with sync_word1's
        FFT window at ``d`` and fractional CFO ``eps_f`` (see the module docstring, step 3), whether
        the energy checks alone passed, and the runner-up integer CFOs (K, _ALT_SHIFTS; NaN where
        their rho is below ``detect_threshold``)."""
        g = self.g
        rel = np.arange(g.sym + g.nfft)
        seg = x[d[:, None] + rel] * np.exp(-2j * np.pi * eps_f[:, None] * rel / g.nfft).astype(np.complex64)
        Y1 = np.fft.fft(seg[:, :g.nfft], axis=-1, norm="ortho")
        Y2 = np.fft.fft(seg[:, g.sym:], axis=-1, norm="ortho")
        shifts = np.arange(-self.int_range, self.int_range + 1)
        rho = np.empty((len(d), len(shifts)))
        for j, shift in enumerate(shifts):
            b = (g.even_bins + 2 * shift) % g.nfft
            A = Y2[:, b] * np.conj(g.x2[g.even])
            B = Y1[:, b] * np.conj(g.x1[g.even])
            rho[:, j] = np.abs(np.sum(A * np.conj(B), axis=1)) ** 2 / (
                np.sum(np.abs(A) ** 2, axis=1) * np.sum(np.abs(B) ** 2, axis=1) + _TINY)
        rank = np.argsort(-rho, axis=1, kind="stable")  # ties: the lowest shift, as a strict running max
        best_rho, best_g = np.take_along_axis(rho, rank[:, :1], axis=1)[:, 0], shifts[rank[:, 0]]
        alt_rank = rank[:, 1:1 + _ALT_SHIFTS]
        alt = np.full((len(d), _ALT_SHIFTS), np.nan)
        alt[:, :alt_rank.shape[1]] = np.where(np.take_along_axis(rho, alt_rank, axis=1) >= self.detect_threshold,
                                              shifts[alt_rank], np.nan)
        # energy per bin, all 64 (an even integer shift moves neither a tone's few bins nor the parity):
        # effective number of bins over both symbols; odd-to-even energy in sync_word2's window
        e2 = Y2.real ** 2 + Y2.imag ** 2
        e = Y1.real ** 2 + Y1.imag ** 2 + e2
        spread = np.sum(e, axis=1) ** 2 / (np.sum(e * e, axis=1) + _TINY)
        odd = np.sum(e2[:, 1::2], axis=1) / (np.sum(e2[:, ::2], axis=1) + _TINY)
        spread_ok = (spread >= _MIN_SPREAD) & (odd >= _MIN_ODD)
        return best_rho, best_g, (best_rho >= self.detect_threshold) & spread_ok, spread_ok, alt

    def _refine_shifts(self, x: np.ndarray, d: np.ndarray, eps: np.ndarray, eps_alt: np.ndarray,
                       metric: np.ndarray, wide: bool = True) -> _Candidates:
        """:meth:`_refine` at the best integer CFO ``eps``; a candidate whose header did not pass is refined
        again at its runner-up CFOs ``eps_alt`` (K, _ALT_SHIFTS; NaN: none), and the reading with a
        passing header, else the one with the best preamble-fit SNR, takes its place. At a wrong shift
        the preamble's "channel" is not the smooth response of a few taps, so the fit's SNR falls far
        below the true shift's: a sharper test than rho, which cancels the channel and with it that
        information. The sequence-aided header (:meth:`_aid_headers`) then reads the chosen one."""
        c = self._refine(x, d, eps, metric, wide)
        rows, cols = np.nonzero(~c.crc_ok[:, None] & np.isfinite(eps_alt[c.src]))  # by rho within a row
        if not len(rows):
            return c
        a = self._refine(x, d[c.src[rows]], eps_alt[c.src[rows], cols], metric[c.src[rows]], wide)
        rows = rows[a.src]
        score_a = np.where(a.crc_ok, np.inf, a.snr)
        order = np.lexsort((-score_a, rows))  # by row, best reading first
        rows_o, first = np.unique(rows[order], return_index=True)
        best = order[first]
        better = score_a[best] > c.snr[rows_o]
        if not better.any():
            return c
        keep = np.ones(len(c.fft0), dtype=bool)
        keep[rows_o[better]] = False
        return _Candidates.concat([c.take(np.flatnonzero(keep)), a.take(best[better])])

    def _refine(self, x: np.ndarray, d: np.ndarray, eps: np.ndarray, metric: np.ndarray,
                wide: bool = True) -> _Candidates:
        """Fine timing, fine CFO, channel estimate and header decoding for validated candidates."""
        g, n = self.g, len(x)
        # --- fine timing: correlation with sync_word2 over lags covering the whole CP plateau, and
        # generously more when the preamble is weak (the coarse peak wanders at 0 dB) ---
        lo, n_lags = (g.sym - 2 * g.cp, 3 * g.cp + 33) if wide else (g.sym - g.cp // 2, 2 * g.cp + 1)
        rel = lo + np.arange(n_lags + g.nfft - 1)
        seg = x[np.minimum(d[:, None] + rel, n - 1)]
        seg = seg * np.exp(-2j * np.pi * eps[:, None] * rel / g.nfft).astype(np.complex64)
        c = np.abs(sliding_window_view(seg, g.nfft, axis=1) @ g.ref2_conj) ** 2  # (K, lags)
        p = c.argmax(axis=1) if len(d) else np.zeros(0, np.int64)
        lag = np.arange(n_lags)[None, :]
        strong = (c >= 0.25 * c.max(axis=1, keepdims=True, initial=0.0)) & (lag >= p[:, None] - 10) & (
            lag <= p[:, None])
        first_path = d + lo + strong.argmax(axis=1)  # sync_word2's first FFT sample, first path
        fft0 = first_path - g.sym - self.timing_margin  # sync_word1's FFT window start
        start = first_path - g.sym - g.cp  # the frame's first sample
        inside = (fft0 >= 0) & (fft0 + self.fmt.n_overhead * g.sym <= n)
        src = np.flatnonzero(inside)
        fft0, start, eps, metric = fft0[inside], start[inside], eps[inside], metric[inside]
        # --- fine CFO from the preamble pair, then the overhead symbols at the final CFO ---
        Y = self._fft_windows(x, fft0, 2, eps)
        A = Y[:, 1, g.even] * np.conj(g.x2[g.even])
        B = Y[:, 0, g.even] * np.conj(g.x1[g.even])
        t, ea, eb = A * np.conj(B), np.abs(A) ** 2, np.abs(B) ** 2
        z = np.sum(t, axis=1)
        rho = np.abs(z) ** 2 / (np.sum(ea, axis=1) * np.sum(eb, axis=1) + _TINY)
        # robust rho where it matters (rho >= report_threshold): also without the _TRIM strongest carriers
        # (a tone in noise: noise-like; a preamble: ~rho)
        rho_rep, hi = rho.copy(), np.flatnonzero(rho >= self.report_threshold)
        keep = np.ones((len(hi), len(g.even)))
        np.put_along_axis(keep, np.argpartition(ea[hi] + eb[hi], -_TRIM, axis=1)[:, -_TRIM:], 0.0, axis=1)
        rho_rep[hi] = np.minimum(rho[hi], np.abs(np.sum(t[hi] * keep, axis=1)) ** 2 / (
            np.sum(ea[hi] * keep, axis=1) * np.sum(eb[hi] * keep, axis=1) + _TINY))
        eps = eps + np.angle(z) / (2 * np.pi * g.sym / g.nfft)
        Y = self._fft_windows(x, fft0, self.fmt.n_overhead, eps)
        H_raw = (Y[:, 0] * np.conj(g.x1) + Y[:, 1] * np.conj(g.x2)) / g.w_pre
        H = H_raw @ g.proj_pre if g.proj_pre is not None else H_raw
        Yh = Y[:, self.fmt.n_preamble:]
        # a second look at the preamble before paying for a Viterbi decode: the correlation again,
        # now at fine timing, and the SNR of the channel fit (noise candidates: < -5 dB; real
        # bursts at 0 dB: > -2 dB)
        r1 = Y[:, 0, g.even] - H[:, g.even] * g.x1[g.even]
        r2 = Y[:, 1] - H * g.x2
        noise = (np.sum(np.abs(r1) ** 2, axis=1) + np.sum(np.abs(r2) ** 2, axis=1)) / max(
            len(g.even) + len(g.x2) - g.taps, 1)
        snr_pre = self._snr_db(H, noise)
        rot = self._header_phase(Yh, H)
        soft = np.real(Yh[..., g.data_pos] * np.conj(H[:, None, g.data_pos]) * rot[..., None])
        hopeful = (rho >= self.detect_threshold) & (snr_pre >= _MIN_HEADER_SNR_DB)
        fn = np.full(len(fft0), -1, dtype=np.int64)
        ln = np.zeros(len(fft0), dtype=np.int64)
        pat = np.zeros(len(fft0), dtype=np.int64)
        crc_ok = np.zeros(len(fft0), dtype=bool)
        self.stats.headers_decoded += int(hopeful.sum())
        if hopeful.any():
            fn[hopeful], ln[hopeful], pat[hopeful], crc_ok[hopeful], _ = decode_header(
                soft[hopeful].reshape(int(hopeful.sum()), self.fmt.n_header * self.num.n_data))
        crc_ok &= ln <= self.max_payload_len
        return _Candidates(fft0, start, eps, rho, rho_rep, Y, H, noise, snr_pre, fn, ln, pat, crc_ok, metric,
                           soft.reshape(len(fft0), self.fmt.n_header * self.num.n_data), np.zeros(len(fft0), dtype=bool),
                           src)

    def _header_phase(self, yh: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Common phase of each header symbol as a unit phasor to multiply by (K, n_header).

        Four pilots alone give ~0.35 rad of phase noise at 0 dB, which costs the header decoder
        several dB. BPSK squared is phase-modulation free, so all 52 carriers (pilots made +1)
        estimate 2*phase; the pilots then only pick the branch (the pi ambiguity)."""
        g = self.g
        z = yh * np.conj(h[:, None, :])  # matched filter: BPSK/pilot symbol times |H|^2, rotated
        zp = z[..., g.pilot_pos] * np.conj(g.pilot_vals)
        pil = np.sum(zp, axis=-1)
        sq = np.sum(z[..., g.data_pos] ** 2, axis=-1) + np.sum(zp ** 2, axis=-1)
        half = np.sqrt(sq / (np.abs(sq) + _TINY))  # one of the two square roots of the phasor
        half = np.where(np.real(half * np.conj(pil)) < 0, -half, half)
        return np.conj(half)

    def _assemble(self, x: np.ndarray, end: _End | None, c: _Candidates) -> tuple[list[ReceivedFrame], int | None]:
        """Greedy walk in time order: accept non-overlapping frames, then demodulate payloads."""
        fft0, start, eps, rho, rho_rep, snr, ln, crc_ok, metric = (c.fft0, c.start, c.eps, c.rho, c.rho_rep, c.snr,
                                                                   c.ln, c.crc_ok, c.metric)
        g, sym = self.g, self.g.sym
        final = end is not None
        n = len(x) if end is None else min(len(x), end.valid_len)
        order = np.argsort(start, kind="stable")
        cursor = self._last_end - self._base
        good: list[int] = []
        failed: list[int] = []
        incomplete = None
        o = np.flatnonzero(crc_ok)[np.argsort(start[crc_ok], kind="stable")]  # good headers in time order
        ok_starts = start[o]
        # one burst read from two nearby candidates (a long run cut into stretches): keep the reading
        # from the higher Schmidl & Cox metric, the plateau's top, as a run that is not cut gives
        dominated: set[int] = set()
        if len(o) > 1:
            near, q = np.diff(ok_starts) <= sym, metric[o]
            dominated = set(o[np.concatenate([near & (q[:-1] < q[1:]), [False]])
                              | np.concatenate([[False], near & (q[1:] <= q[:-1])])].tolist())
        for i in order:
            if start[i] < cursor - g.cp:
                continue  # inside a frame already taken
            if crc_ok[i]:
                if i in dominated:
                    continue
                n_sym = int(self._frame_symbols(ln[i:i + 1], c.pat[i:i + 1])[0])
                if fft0[i] + (n_sym - 1) * sym + g.nfft > n:  # last FFT window not in the buffer yet
                    if not final or end.hold_len is not None:  # type: ignore[union-attr]
                        incomplete = int(start[i])
                        break
                    self.stats.cut_short += 1
                    continue
                good.append(i)
                cursor = start[i] + n_sym * sym
            elif rho_rep[i] >= self.report_threshold:
                k = np.searchsorted(ok_starts, start[i] - g.cp)
                if k < len(ok_starts) and ok_starts[k] < start[i] + self.fmt.n_overhead * sym:
                    continue  # the same burst seen from a worse position: a candidate there reads its header
                failed.append(i)
                cursor = start[i] + self.fmt.n_overhead * sym
            else:
                self.stats.rejected += 1
        self._last_end = max(self._last_end, self._base + cursor)
        if good:
            last = good[-1]
            self._last_header = (int(self._base + start[last]), int(c.fn[last]), int(ln[last]), int(c.pat[last]))
        self.stats.header_ok += len(good)
        self.stats.header_failed += len(failed)
        frames = [ReceivedFrame(-1, False, np.zeros(0, np.complex64), float(snr[i]),
                                float(eps[i]) * self.num.sample_rate / g.nfft, int(self._base + start[i]),
                                float(rho[i]), float(c.noise[i]), channel_snr_db=float(snr[i])) for i in failed]
        good_arr = np.array(good, dtype=np.int64)
        for length, pat in np.unique(np.stack([ln[good_arr], c.pat[good_arr]], axis=1), axis=0) if len(good) else []:
            idx = good_arr[(ln[good_arr] == length) & (c.pat[good_arr] == pat)]
            frames += self._demodulate(x, idx, int(length), int(pat), c)
        frames.sort(key=lambda f: f.start)
        return frames, incomplete

    def _snr_db(self, h: np.ndarray, noise: np.ndarray) -> np.ndarray:
        gain = np.mean(np.abs(h[:, self.g.data_pos]) ** 2, axis=1)
        return 10 * np.log10((gain + _TINY) / (noise + _TINY))

    @staticmethod
    def _linear_phase(c: np.ndarray) -> np.ndarray:
        """De-rotation exp(-j(a + b n)) from per-symbol phase correlations c (K, n_sym).

        A weighted LS line through the phases (weight |c|: the inverse phase-noise variance up to a
        constant), after a coarse de-rotation so the residual phases do not wrap. The header's
        correlations (all 52 carriers known) weigh ~13x a payload symbol's 4 pilots."""
        u = c[:, 1:] * np.conj(c[:, :-1])
        w0 = np.angle(np.sum(u / (np.abs(u) + _TINY), axis=1))  # coarse residual CFO per symbol
        t = np.arange(c.shape[1], dtype=np.float64)[None, :]
        c0 = c * np.exp(-1j * w0[:, None] * t)
        ph0 = np.angle(np.sum(c0, axis=1))
        psi = np.angle(c0 * np.exp(-1j * ph0[:, None]))
        wt = np.abs(c)
        sw = wt.sum(axis=1, keepdims=True) + _TINY
        tm = (wt * t).sum(axis=1, keepdims=True) / sw
        pm = (wt * psi).sum(axis=1, keepdims=True) / sw
        slope = (wt * (t - tm) * (psi - pm)).sum(axis=1, keepdims=True) / (
            (wt * (t - tm) ** 2).sum(axis=1, keepdims=True) + _TINY)
        phase = ph0[:, None] + w0[:, None] * t + pm + slope * (t - tm)
        return np.exp(-1j * phase)

    def _demodulate(self, x: np.ndarray, idx: np.ndarray, length: int, pat: int, c: _Candidates) -> list[ReceivedFrame]:
        """Equalised payloads of the good-header candidates ``idx`` (all of payload length ``length``
        and pilot pattern ``pat``)."""
        fmt = self.fmt
        n_rows = len(fmt.midamble_rows(length, MIDAMBLE_INTERVALS[pat]))
        Yp = self._fft_windows(x, c.fft0[idx], n_rows, c.eps[idx], first=fmt.n_overhead)
        Y = np.concatenate([c.y[idx], Yp], axis=1)
        w, snr, noise, channel_snr = self.equaliser(Y, c.fn[idx], length, pat)
        data = Yp[:, ~fmt.midamble_rows(length, MIDAMBLE_INTERVALS[pat])][..., self.g.data_pos]
        payload = (w * data).reshape(len(idx), -1)[:, :length].astype(np.complex64)
        cfo = c.eps[idx] * self.num.sample_rate / self.g.nfft
        return [ReceivedFrame(int(c.fn[j]), True, payload[row], float(snr[row]), float(cfo[row]),
                              int(self._base + c.start[j]), float(c.rho[j]), float(noise[row]), bool(c.aided[j]),
                              float(channel_snr[row]))
                for row, j in enumerate(idx)]

    def equaliser(self, Y: np.ndarray, frame_numbers: np.ndarray, length: int,  # noqa: N803 (Y: FFT outputs)
                  pattern: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Equaliser for synchronised frames: ``Y`` (K, symbols, used carriers) holds the FFT of every
        OFDM symbol of K frames (preamble, header, payload and mid-ambles, CFO removed), whose headers
        carry ``frame_numbers``, ``length`` and ``pattern``. Returns per-payload-resource-element
        weights W (K, payload symbols, data carriers) -- the equalised payload is W * Y on the data
        carriers of the payload symbols -- the payload SNR estimate in dB (K,), the noise variance (K,)
        and the channel's Es/N0 per subcarrier in dB (K,: mean |H|^2 / noise over the payload, what a
        simulation's SNR setting means; radio calibration measures that).

        Common phase per symbol from its known carriers (a line through all of them: residual CFO),
        then the channel on every symbol by :class:`semjscc.phy.tracking.ChannelTracker`, then ZF or
        MMSE with the estimate's own error variance added to the noise. The SNR estimate is what the
        payload's error against the symbols sent should be: mean over the payload of
        (N + V) / (|H|^2 + N + V) for MMSE, (N + V) / |H|^2 for ZF (N noise, V estimate variance).
        The torch OFDM channel uses this too, so training sees the receiver's estimator."""
        g, fmt = self.g, self.fmt
        mid = fmt.midamble_rows(length, MIDAMBLE_INTERVALS[pattern])
        k = Y.shape[0]
        Yo, Yp = Y[:, :fmt.n_overhead], Y[:, fmt.n_overhead:]
        # known header symbols (the CRC passed) on the used carriers
        Xh = np.zeros((k, fmt.n_header, len(g.used_bins)), dtype=np.complex128)
        Xh[..., g.data_pos] = encode_header(frame_numbers, np.full(k, length), pattern).reshape(k, fmt.n_header, -1)
        Xh[..., g.pilot_pos] = g.pilot_vals
        Yh = Yo[:, fmt.n_preamble:]
        # channel from preamble + header; header phases from a preamble-only estimate first
        H0 = (Yo[:, 0] * np.conj(g.x1) + Yo[:, 1] * np.conj(g.x2)) / g.w_pre
        ch = np.sum(Yh * np.conj(H0[:, None] * Xh), axis=-1)
        rot_h = np.conj(ch) / (np.abs(ch) + _TINY)
        H_raw = (Yo[:, 0] * np.conj(g.x1) + Yo[:, 1] * np.conj(g.x2)
                 + np.sum(Yh * rot_h[..., None] * np.conj(Xh), axis=1)) / g.w_full
        H = H_raw @ g.proj_full if g.proj_full is not None else H_raw
        # what is known after the header: pilots, and every carrier of a mid-amble
        Xp = np.zeros((len(mid), len(g.used_bins)), dtype=np.complex128)
        Xp[:, g.pilot_pos] = g.pilot_vals
        Xp[np.ix_(mid, g.data_pos)] = self.num.midamble_values
        Wp = (np.abs(Xp) > 0).astype(np.float64)
        # common phase per symbol from its known carriers, then a line through them all ('linear')
        ch = np.sum(Yh * np.conj(H[:, None] * Xh), axis=-1)
        cp_ = np.sum(Yp * np.conj(H[:, None] * Xp), axis=-1)
        cc = np.concatenate([ch, cp_], axis=1)  # (k, n_header + rows)
        rot = self._linear_phase(cc) if self.phase_tracking == "linear" else np.conj(cc) / (np.abs(cc) + _TINY)
        rot_h, rot_p = rot[:, :fmt.n_header], rot[:, fmt.n_header:]
        # first noise estimate: every known resource element of the overhead after the static fit
        r = [Yo[:, 0, g.even] - H[:, g.even] * g.x1[g.even], Yo[:, 1] - H * g.x2,
             (Yh * rot_h[..., None] - H[:, None] * Xh).reshape(k, -1)]
        n_re = sum(a.shape[1] for a in r)
        noise = sum(np.sum(np.abs(a) ** 2, axis=1) for a in r) / max(n_re - g.taps - fmt.n_header, 1)
        # channel tracking through the frame from every known resource element, common phase removed
        z = np.concatenate([Yo[:, :fmt.n_preamble], Yh * rot_h[..., None], Yp * rot_p[..., None]], axis=1)
        xk = np.empty(z.shape, dtype=np.complex128)
        xk[:, 0], xk[:, 1], xk[:, fmt.n_preamble:fmt.n_overhead], xk[:, fmt.n_overhead:] = g.x1, g.x2, Xh, Xp
        tr = g.tracker.track(z, xk, np.concatenate([g.w_overhead, Wp]), np.abs(H @ g.tap_fit) ** 2, noise)
        Hd = tr.h[:, fmt.n_overhead:][:, ~mid][..., g.data_pos]  # (k, payload symbols, data carriers)
        n_eff = tr.noise[:, None, None] + tr.est_var[:, fmt.n_overhead:][:, ~mid, None]
        g2 = np.abs(Hd) ** 2
        if self.equalizer == "zf":
            w, err = np.conj(Hd) / (g2 + _TINY), n_eff / (g2 + _TINY)
        else:
            w, err = np.conj(Hd) / (g2 + n_eff), n_eff / (g2 + n_eff)
        w = w * rot_p[:, ~mid, None]
        err = err.reshape(k, -1)[:, :length]
        snr = -10 * np.log10(np.mean(err, axis=1) + _TINY) if length else np.full(k, np.nan)
        channel_snr = 10 * np.log10(np.mean(g2.reshape(k, -1), axis=1) / tr.noise + _TINY)
        return w, snr, tr.noise, channel_snr


def receive(samples: np.ndarray, **kwargs: object) -> list[ReceivedFrame]:
    """Whole-array convenience: all frames in ``samples`` (``kwargs`` go to :class:`OFDMReceiver`)."""
    rx = OFDMReceiver(**kwargs)  # type: ignore[arg-type]
    return rx.process(samples) + rx.flush()
