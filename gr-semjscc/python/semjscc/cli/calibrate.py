"""``semjscc calibrate``: measure a radio (oscillator offset, DC, IQ imbalance, noise floor, SNR versus TX
attenuation and RX gain) and write calibration/<serial>.yaml."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from semjscc.cli.common import finite_float
from semjscc.util.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="measure a Pluto (or the simulated radio) and write its calibration profile",
                       description="Calibrate a radio with its TX cabled to its RX through an attenuator (or "
                                   "antennas), or with a second radio transmitting (--peer): oscillator offset, "
                                   "residual DC offset and IQ imbalance, RX noise floor, and SNR versus TX "
                                   "attenuation and RX gain. Writes calibration/<serial>.yaml.")
    p.add_argument("--uri", required=True, help="the radio: ip:192.168.2.1, usb:1.2.5, ... or sim[:SEED] (simulated)")
    p.add_argument("--peer", default=None, metavar="URI",
                   help="a second radio that transmits instead (measures this radio's oscillator relative to it)")
    p.add_argument("--freq", type=float, default=2.45e9, help="centre frequency in Hz (default 2.45e9)")
    p.add_argument("--rate", type=float, default=1e6, help="sample rate in S/s (default 1e6, the PHY's)")
    p.add_argument("--rf-bw", type=float, default=None, help="RF bandwidth in Hz (default: the sample rate)")
    p.add_argument("--rx-gains", type=float, nargs="+", default=[20.0, 40.0, 60.0], metavar="DB",
                   help="manual RX gains to measure (default 20 40 60)")
    p.add_argument("--tx-attens", type=float, nargs="+", default=None, metavar="DB",
                   help="TX attenuations to sweep (default 0 to 85 in 5 dB steps)")
    p.add_argument("--out", type=Path, default=None,
                   help="profile file or directory (default calibration/<serial>.yaml; $SEMJSCC_CALIBRATION)")
    p.add_argument("--write-xo", action="store_true",
                   help="with --peer: write this radio's xo_correction so its LOs and sample clock match the "
                        "peer's (until it reboots), re-measure, and keep only the residual as the profile's ppm")
    p.add_argument("--connect-timeout", type=finite_float, default=None, metavar="S",
                   help="seconds to wait for a radio to answer (default 10; ip:pluto.local may need more)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from semjscc.radio import SimAir, open_radio
    from semjscc.radio.calib.procedure import CalibrationPlan, calibrate
    from semjscc.radio.calib.profile import calibration_dir
    from semjscc.radio.calib.xo import write_xo_correction

    plan = CalibrationPlan(center_freq_hz=args.freq, sample_rate=args.rate, rf_bandwidth=args.rf_bw,
                           rx_gains_db=tuple(args.rx_gains))
    if args.tx_attens:
        plan.tx_attens_db = tuple(sorted(args.tx_attens))
    for gain in plan.rx_gains_db:  # bad settings (a gain past the band's table) fail before touching a radio
        plan.config(0.0, gain).validate()
    if args.write_xo and not args.peer:
        raise UsageError("--write-xo needs --peer URI: only a second radio shows this one's oscillator error")
    if args.connect_timeout is not None and args.connect_timeout <= 0:
        raise UsageError(f"--connect-timeout {args.connect_timeout:g} must be a number of seconds > 0")
    air = SimAir()
    radio = open_radio(args.uri, air, args.connect_timeout)
    peer = open_radio(args.peer, air, args.connect_timeout) if args.peer else None
    say = None if args.quiet else lambda m: print(m, file=sys.stderr)
    try:
        profile = calibrate(radio, plan, peer, progress=say)
        if args.write_xo and peer is not None:
            profile = write_xo_correction(radio, peer, plan, profile, progress=say)
    finally:
        if peer is not None:
            peer.close()
        radio.close()
    path = profile.save(args.out if args.out is not None else calibration_dir())
    osc, iq = profile.oscillator, profile.iq_imbalance
    ppm = "not measurable in a one-radio loopback" if osc["ppm"] is None else f"{osc['ppm']:+.3f} ppm vs {osc['reference']}"
    print(f"{profile.serial}: oscillator {ppm} (offset {osc['offset_hz']:+.1f} Hz); DC {profile.dc_offset['dbfs']:.1f} dBFS; "
          f"IQ {iq['gain_db']:+.3f} dB / {iq['phase_deg']:+.3f} deg (image rejection {iq['image_rejection_db']:.1f} dB)")
    if "xo_correction_hz" in osc:
        print(f"wrote xo_correction = {osc['xo_correction_hz']} Hz on {args.uri} (was {osc['xo_correction_before_hz']}; "
              f"{osc['ppm_before_xo_correction']:+.3f} ppm), residual offset {osc['offset_hz']:+.1f} Hz; it lasts "
              "until the radio reboots")
    print(f"wrote {path}")
    return 0
