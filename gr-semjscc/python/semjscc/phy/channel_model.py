"""Parameters of a simulated channel in the project's conventions: what GNU Radio's
``channels.channel_model`` is given, and the range of carrier offsets the receiver searches.

The .grc flowgraphs call these from their variables (``noise_voltage(snr_db)``,
``multipath_taps(multipath)``), so the flowgraphs, ``semjscc run``, the soak and the tests compute
them one way:

* noise voltage: the project's SNR is Es/N0 per subcarrier (:mod:`semjscc.phy.numerology`). The
  TX's IFFT is unitary and every data carrier has Es = 1, so per-sample noise variance equals
  per-subcarrier noise variance. (The time-domain power inside a burst is 52/64 of that, since 12
  of the 64 bins are empty: scaling the noise by it would make the link 0.9 dB better than it claims.)
* frequency offset: the CFO normalised to the sample rate;
* taps: a named multipath profile or a list of complex taps, normalised to unit energy so the mean
  per-subcarrier SNR stays the SNR asked for, and no longer than the cyclic prefix.
* Doppler (a time-varying channel): with ``doppler`` > 0 (normalised, GNU Radio's fD*Ts) the
  multipath profile becomes the power delay profile of GNU Radio's ``selective_fading_model``
  (every tap an independent Rayleigh fader, Clarke spectrum; "none" gives flat fading) ahead of
  the channel model, whose own taps are then [1]. A ``blocks.selector`` picks the faded or the
  plain stream (``fading_input``), so ``doppler`` 0 is exactly the static channel of before.
"""

from __future__ import annotations

import math

from semjscc.phy.numerology import DEFAULT_NUMEROLOGY
from semjscc.util.errors import UsageError

SAMPLE_RATE = DEFAULT_NUMEROLOGY.sample_rate  # the PHY's native rate (1 MS/s); CFOs in Hz refer to it
# The carrier offsets the receiver acquires by default: two stock ADALM-Plutos (+-25 ppm crystals) can be
# 50 ppm apart, 122.5 kHz at 2.45 GHz, and a two-radio link must work before anyone has calibrated.
# Stated in Hz at the PHY's rate; the receiver takes it in subcarrier spacings (8 at 1 MS/s, so its
# integer search reaches +-9 subcarriers, 140.6 kHz: see semjscc.phy.rx, step 3).
CFO_SEARCH_HZ = 125_000.0
MAX_CFO_SUBCARRIERS = DEFAULT_NUMEROLOGY.subcarriers(CFO_SEARCH_HZ)
# Normalised Doppler (Doppler frequency / sample rate, GNU Radio's fD*Ts) above which a channel changes
# within one FFT window enough to cause inter-carrier interference the receiver does not model:
# 0.01 = 10 kHz at 1 MS/s.
MAX_DOPPLER = 0.01

# Tap delays in samples (1 us at 1 MS/s), all well inside the 16-sample cyclic prefix.
MULTIPATH_PROFILES: dict[str, tuple[complex, ...]] = {
    "none": (1.0,),
    "two-ray": (1.0, 0, 0, 0.5 * complex(math.cos(2.0), math.sin(2.0))),
    # exponential power delay profile (about 2 us rms), fixed pseudo-random phases
    "indoor": tuple(math.exp(-d / 2.5) * complex(math.cos(1.7 * d * d + 0.4), math.sin(1.7 * d * d + 0.4))
                    for d in range(8)),
}


def noise_voltage(snr_db: float) -> float:
    """``channel_model`` noise voltage for ``snr_db`` Es/N0 per subcarrier (see the module docstring)."""
    return DEFAULT_NUMEROLOGY.noise_std_for_snr(float(snr_db))


def freq_offset(cfo_hz: float, sample_rate: float = SAMPLE_RATE) -> float:
    """``channel_model`` frequency offset: the CFO normalised to the sample rate."""
    return float(cfo_hz) / sample_rate


def multipath_taps(spec: str) -> list[complex]:
    """Channel taps for a profile name or a comma-separated list of complex numbers ("1, 0.3j"),
    normalised to unit energy. Taps beyond the cyclic prefix are refused (inter-symbol interference
    the receiver is not built for)."""
    text = str(spec).strip() or "none"
    if text in MULTIPATH_PROFILES:
        taps = [complex(t) for t in MULTIPATH_PROFILES[text]]
    else:
        try:
            taps = [complex(t.strip().replace(" ", "")) for t in text.split(",") if t.strip()]
        except ValueError:
            raise UsageError(f"multipath {spec!r}: give a profile ({', '.join(MULTIPATH_PROFILES)}) or complex taps "
                             f"like '1, 0.3j, 0.1'") from None
    energy = sum(abs(t) ** 2 for t in taps)
    if not taps or energy == 0 or not math.isfinite(energy):
        raise UsageError(f"multipath {spec!r}: the taps have no energy")
    if len(taps) > DEFAULT_NUMEROLOGY.cp_len:
        raise UsageError(f"multipath {spec!r}: {len(taps)} taps exceed the {DEFAULT_NUMEROLOGY.cp_len}-sample cyclic prefix")
    return [t / math.sqrt(energy) for t in taps]


def taps_text(spec: str) -> str:
    """:func:`multipath_taps` as the comma-separated text a .grc's ``multipath`` parameter takes."""
    return ",".join(repr(complex(t)).strip("()") for t in multipath_taps(spec))


def check_cfo_hz(cfo_hz: float, what: str = "the CFO") -> float:
    """``cfo_hz`` if it is a finite offset inside the receiver's search range, else a UsageError
    naming ``what`` (an option such as ``--cfo``)."""
    v = float(cfo_hz)
    if not (math.isfinite(v) and abs(v) < CFO_SEARCH_HZ):
        raise UsageError(f"{what} must stay within +-{MAX_CFO_SUBCARRIERS:g} subcarriers ({CFO_SEARCH_HZ:.0f} Hz at "
                         f"{SAMPLE_RATE / 1e6:g} MS/s), the receiver's search range; got {cfo_hz:g} Hz")
    return v


def check_doppler(doppler: float, what: str = "the Doppler") -> float:
    """``doppler`` if it is a normalised Doppler in [0, MAX_DOPPLER], else a UsageError naming ``what``."""
    try:
        v = float(doppler)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and 0.0 <= v <= MAX_DOPPLER):
        raise UsageError(f"{what} is a normalised Doppler (Doppler frequency / sample rate, e.g. 1e-4 = 100 Hz at "
                         f"{SAMPLE_RATE / 1e6:g} MS/s) in 0..{MAX_DOPPLER:g}; got {doppler!r}")
    return v


def fading_delays(spec: str) -> list[float]:
    """``selective_fading_model`` delays (samples) for a multipath profile: its taps with energy."""
    return [float(i) for i, t in enumerate(multipath_taps(spec)) if t != 0]


def fading_mags(spec: str) -> list[float]:
    """``selective_fading_model`` magnitudes: the profile's tap magnitudes (unit energy, so the mean
    SNR is the one asked for; each path is a unit-power fader)."""
    return [abs(t) for t in multipath_taps(spec) if t != 0]


def fading_ntaps(spec: str) -> int:
    """``selective_fading_model`` FIR length: the profile's length (integer delays: no sinc spread)."""
    return len(multipath_taps(spec))


def static_taps(spec: str, doppler: float) -> list[complex]:
    """The channel model's taps: the profile when static, [1] when the fading model carries it."""
    return multipath_taps(spec) if check_doppler(doppler, "doppler") == 0 else [1.0]


def fading_input(doppler: float) -> int:
    """The selector input: 0 = the transmitter's stream as it is, 1 = through the fading model."""
    return 1 if check_doppler(doppler, "doppler") > 0 else 0
