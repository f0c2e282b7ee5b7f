#!/usr/bin/env python3
"""Screenshots of the GUI flowgraph (flowgraphs/sim_loopback_gui.grc) at several SNRs, moved with its
own SNR slider, and what its spectrum shows, read back from the pixels.

Run it on an X display (a desktop, or a virtual one):

    xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python scripts/gui_screenshot.py --out build/gui

It writes ``gui-snr<S>.png`` per SNR and ``gui.json``: for each SNR, the level of the "noise alone"
trace and of the received trace inside the OFDM band, in dB on the plot's axis (the median over the
plot's columns of each trace's pixel row, mapped through the canvas geometry and the y range). The
test suite uses it to check that the spectrum follows the slider; docs/figures/gui.png comes from it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TRACE_RGB = {"received": (0, 0, 255), "noise": (255, 0, 0)}  # the .grc's color1 / color2


def _load(script: Path) -> Any:
    spec = importlib.util.spec_from_file_location(script.stem, script)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def _pixels(widget: Any) -> np.ndarray:
    """The widget as an (h, w, 3) RGB array."""
    img = widget.grab().toImage().convertToFormat(4)  # QImage.Format_RGB32: bytes B, G, R, 0xff
    ptr = img.constBits()
    ptr.setsize(img.byteCount())
    a = np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine())[:, : 4 * img.width()]
    return a.reshape(img.height(), img.width(), 4)[..., 2::-1].copy()


def trace_levels(sink_widget: Any, ymin: float, ymax: float, band: float) -> dict[str, float]:
    """Median level (dB) of each trace over the plot's columns; the received trace only over the
    central ``band`` fraction of the width (inside the OFDM band)."""
    from PyQt5 import QtWidgets

    canvases = [w for w in sink_widget.findChildren(QtWidgets.QWidget) if type(w).__name__ == "QwtPlotCanvas"
                or w.metaObject().className() == "QwtPlotCanvas"]
    if not canvases:
        raise RuntimeError("no QwtPlotCanvas inside the spectrum widget")
    canvas = max(canvases, key=lambda w: w.width() * w.height())
    rgb = _pixels(canvas).astype(int)
    h, w, _ = rgb.shape
    out = {}
    for name, colour in TRACE_RGB.items():
        hit = (np.abs(rgb - np.array(colour)).sum(axis=2) < 90)
        cols = range(int(w * (1 - band) / 2), int(w * (1 + band) / 2)) if name == "received" else range(w)
        rows = [np.flatnonzero(hit[:, c]).mean() for c in cols if hit[:, c].any()]
        if len(rows) < w // 10:
            raise RuntimeError(f"the {name} trace is not on the plot ({len(rows)} of {w} columns)")
        out[f"{name}_db"] = float(ymax - np.median(rows) / (h - 1) * (ymax - ymin))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--grc", type=Path, default=REPO / "flowgraphs" / "sim_loopback_gui.grc", help="default: %(default)s")
    p.add_argument("--script", type=Path, help="an already generated .py of --grc (default: compile it)")
    p.add_argument("--snr", type=float, nargs="+", default=[0.0, 10.0, 25.0], help="default: %(default)s")
    p.add_argument("--settle", type=float, default=4.0, help="seconds after each slider move (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("build/gui"), help="default: %(default)s")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                   help="a flowgraph parameter (e.g. model=jscc-kn6, source=PATH); repeatable")
    args = p.parse_args(argv)
    if not os.environ.get("DISPLAY"):
        print("gui_screenshot: no X display; run it under xvfb-run -a", file=sys.stderr)
        return 2
    script = args.script
    if script is None:
        from semjscc.grc.run import compiled_script

        script = compiled_script(args.grc)
    mod = _load(script)
    from PyQt5 import QtCore, QtWidgets

    app = QtWidgets.QApplication(sys.argv[:1])
    kwargs = dict(s.split("=", 1) for s in args.sets)
    tb = mod.sim_loopback_gui(snr_db=args.snr[0], **kwargs)
    mod.snippets_main_after_init(tb)
    tb.start()
    tb.show()
    args.out.mkdir(parents=True, exist_ok=True)
    sink = tb._qtgui_freq_sink_x_0_win
    result: dict[str, Any] = {"grc": args.grc.name, "settle_s": args.settle, "points": []}
    pending = list(args.snr)
    error: list[str] = []

    def step() -> None:
        try:
            snr = pending.pop(0)
            tb._snr_win.d_widget.counter.setValue(float(snr))  # as a user types it: the slider follows
            t0 = time.monotonic()
            while time.monotonic() - t0 < args.settle:
                app.processEvents()
                time.sleep(0.02)
            png = args.out / f"gui-snr{snr:g}.png"
            tb.grab().save(str(png))
            levels = trace_levels(sink, -90.0, 0.0, band=0.7)
            result["points"].append({"snr_db": snr, "slider": tb.snr, "png": png.name, **levels,
                                     "frames_received": tb.semjscc_image_display_0.shown,
                                     "status": tb.semjscc_image_display_0._widget.status.text()})
            print(f"SNR {snr:g} dB: noise {levels['noise_db']:.1f} dB, received {levels['received_db']:.1f} dB "
                  f"on the plot; {png}", flush=True)
        except Exception as e:  # reported, then the flowgraph is stopped cleanly
            error.append(f"{type(e).__name__}: {e}")
            pending.clear()
        if pending:
            QtCore.QTimer.singleShot(0, step)
        else:
            tb.stop()
            tb.wait()
            app.quit()

    QtCore.QTimer.singleShot(1500, step)  # let frames flow at the first SNR
    app.exec_()
    if error:
        print(f"gui_screenshot: {error[0]}", file=sys.stderr)
        return 1
    (args.out / "gui.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
