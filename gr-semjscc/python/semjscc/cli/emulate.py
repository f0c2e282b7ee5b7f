"""``semjscc emulate-pluto``: emulated ADALM-Plutos on loopback addresses, reachable by every libiio client
(``iio_info -u ip:127.0.0.1``, pyadi-iio, gr-iio's Pluto blocks) until stopped."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

from semjscc.cli.common import finite_float, nonnegative_float, nonnegative_int, positive_float


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("emulate-pluto", help="run emulated Plutos (libiio network protocol) on 127.x addresses",
                       description="Serve an emulated ADALM-Pluto on ADDRESS:30431 (iiod's protocol, libiio 0.24), "
                                   "and with --peer a second one: both on one simulated air, so what one transmits "
                                   "the other receives (and itself, as through a cable), with each radio's "
                                   "oscillator error as carrier and sample-clock offset, TX attenuation, path loss, "
                                   "noise, RX gain or AGC, IQ imbalance, DC offset and the 12-bit ADC, in real time. "
                                   "Only loopback addresses (127.x.y.z). Stop with Ctrl-C.")
    p.add_argument("--address", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    p.add_argument("--peer", default=None, metavar="ADDRESS",
                   help="a second emulated Pluto on this address (default: none)")
    p.add_argument("--xo-ppm", type=finite_float, nargs="+", default=None, metavar="PPM",
                   help="oscillator error of each radio in ppm (default: drawn from --seed, within +-20)")
    p.add_argument("--seed", type=nonnegative_int, default=1, help="seed of the first radio, the peer gets seed + 1 (default 1)")
    p.add_argument("--loss", type=finite_float, default=50.0,
                   help="path loss TX to RX in dB, cable and attenuators (default 50: ~25 dB SNR at 1 MS/s "
                        "with 40 dB TX attenuation)")
    p.add_argument("--nf", type=nonnegative_float, default=6.0, help="receiver noise figure in dB (default 6)")
    p.add_argument("--chip", choices=("ad9363", "ad9364"), default="ad9363",
                   help="ranges the driver enforces: a stock Pluto (ad9363: LO 325 MHz-3.8 GHz, 20 MHz "
                        "bandwidth; the default) or one switched to ad9364 (70 MHz-6 GHz, 56 MHz)")
    p.add_argument("--duration", type=positive_float, default=None, metavar="S", help="stop after S seconds (default: Ctrl-C)")
    p.add_argument("run_command", nargs=argparse.REMAINDER, metavar="-- COMMAND ...",
                   help="run COMMAND while the radios serve, then stop them and exit with its status "
                        "(e.g. -- semjscc ota --uri ip:127.0.0.1 ...)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from semjscc.radio.emulator import Air, EmulatedPluto, serve
    from semjscc.radio.sim import SimParams
    from semjscc.util.errors import UsageError

    addresses = [args.address] + ([args.peer] if args.peer else [])
    ppms = args.xo_ppm or [None] * len(addresses)
    if len(ppms) != len(addresses):
        raise UsageError(f"--xo-ppm: give one value per radio ({len(addresses)}), got {len(ppms)}")
    if args.duration is not None and not args.duration > 0:
        raise UsageError(f"--duration must be > 0 seconds, got {args.duration:g}")
    command = args.run_command[1:] if args.run_command[:1] == ["--"] else args.run_command
    if command and shutil.which(command[0]) is None:
        raise UsageError(f"command not found: {command[0]}")
    air = Air()
    plutos: list[EmulatedPluto] = []
    try:
        for i, (addr, ppm) in enumerate(zip(addresses, ppms, strict=True)):
            params = SimParams(seed=args.seed + i, ppm=ppm, path_loss_db=args.loss, noise_figure_db=args.nf)
            plutos.append(EmulatedPluto(addr, params, args.chip, air).start())
            print(f"emulated Pluto ({args.chip}) at {plutos[-1].uri}, oscillator {plutos[-1].ppm:+.3f} ppm",
                  file=sys.stderr, flush=True)
    except BaseException:
        for p in plutos:
            p.stop()
        raise
    if not command:
        serve(plutos, args.duration)
        return 0
    try:  # the servers are threads of this process: they answer while the command runs
        return subprocess.run(command, timeout=args.duration).returncode
    except subprocess.TimeoutExpired:
        raise UsageError(f"{command[0]} still ran after --duration {args.duration:g} s; stopped it") from None
    finally:
        for p in plutos:
            p.stop()
