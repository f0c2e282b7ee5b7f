"""Vectorised numpy reference transmitter: JSCC symbols + frame number -> complex baseband burst.

Unitary IFFT (``norm="ortho"``): a unit-power symbol on a subcarrier keeps unit energy per
subcarrier, so channel noise of per-sample variance ``numerology.noise_std_for_snr(snr_db) ** 2``
gives exactly ``snr_db`` Es/N0 per subcarrier at the receiver's (unitary) FFT. The JSCC symbols
are sent as they are (no power normalisation here: the encoder already emits unit average power).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from semjscc.phy.frame import DEFAULT_FRAME_FORMAT, MAX_FRAME_NUMBER, FrameFormat, encode_header


def _grid_template(fmt: FrameFormat, n_symbols: int) -> np.ndarray:
    """Frequency grid (n_symbols, fft) with the preamble and all pilots in place, data zero."""
    num = fmt.numerology
    grid = np.zeros((n_symbols, num.fft_len), dtype=np.complex64)
    grid[0] = np.asarray(num.sync_word1, dtype=np.complex64)
    grid[1] = np.asarray(num.sync_word2, dtype=np.complex64)
    grid[fmt.n_preamble:, num.pilot_bins] = np.asarray(num.pilot_values, dtype=np.complex64)
    return grid


def modulate_frames(symbols: np.ndarray, frame_numbers: Sequence[int] | np.ndarray,
                    fmt: FrameFormat = DEFAULT_FRAME_FORMAT) -> np.ndarray:
    """A batch of equal-length frames: symbols (K, n) complex, frame numbers (K,) ->
    time-domain frames (K, frame_samples(n)) complex64, without padding."""
    num = fmt.numerology
    x = np.atleast_2d(np.asarray(symbols, dtype=np.complex64))
    k, n = x.shape
    fn = np.asarray(frame_numbers, dtype=np.int64).reshape(k)
    n_pay = fmt.n_payload_symbols(n)
    n_sym = fmt.frame_symbols(n)
    grid = np.broadcast_to(_grid_template(fmt, n_sym), (k, n_sym, num.fft_len)).copy()
    data = np.zeros((k, (fmt.n_header + n_pay) * num.n_data), dtype=np.complex64)
    data[:, :fmt.n_header * num.n_data] = encode_header(fn, np.full(k, n), fmt.pattern)
    data[:, fmt.n_header * num.n_data:fmt.n_header * num.n_data + n] = x
    data = data.reshape(k, -1, num.n_data)
    mid = np.concatenate([np.zeros(fmt.n_header, dtype=bool), fmt.midamble_rows(n)])
    rows = np.empty((k, len(mid), num.n_data), dtype=np.complex64)
    rows[:, ~mid], rows[:, mid] = data, num.midamble_values
    grid[:, fmt.n_preamble:, num.data_bins] = rows
    time = np.fft.ifft(grid, axis=-1, norm="ortho")
    time = np.concatenate([time[..., -num.cp_len:], time], axis=-1)  # cyclic prefix
    return time.reshape(k, -1).astype(np.complex64)


def modulate_burst(symbols: np.ndarray, frame_number: int, fmt: FrameFormat = DEFAULT_FRAME_FORMAT) -> np.ndarray:
    """One burst: pad_before zeros, the frame, pad_after zeros."""
    frame = modulate_frames(np.asarray(symbols)[None], [frame_number], fmt)[0]
    return np.concatenate([np.zeros(fmt.pad_before, np.complex64), frame, np.zeros(fmt.pad_after, np.complex64)])


def modulate_stream(payloads: Sequence[np.ndarray], first_frame_number: int = 0,
                    fmt: FrameFormat = DEFAULT_FRAME_FORMAT) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive padded bursts for a list of payloads (frame numbers count up, wrapping at 2^16).

    Returns (samples, burst_starts) where burst_starts[i] is the index of frame i's first sample
    (after its leading padding). Frames of equal length are modulated in one vectorised batch."""
    lengths = np.array([len(p) for p in payloads], dtype=np.int64)
    fns = (first_frame_number + np.arange(len(payloads))) % (MAX_FRAME_NUMBER + 1)
    sizes = np.array([fmt.burst_samples(int(n)) for n in lengths], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    out = np.zeros(int(offsets[-1]), dtype=np.complex64)
    for n in np.unique(lengths):
        idx = np.flatnonzero(lengths == n)
        frames = modulate_frames(np.stack([np.asarray(payloads[i]) for i in idx]) if n else np.zeros((len(idx), 0)),
                                 fns[idx], fmt)
        for row, i in enumerate(idx):
            start = offsets[i] + fmt.pad_before
            out[start:start + frames.shape[1]] = frames[row]
    return out, offsets[:-1] + fmt.pad_before
