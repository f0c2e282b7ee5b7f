#!/usr/bin/env python3
"""Check the canvas layout of .grc flowgraphs as GNU Radio Companion draws them: no block (with its
ports) or comment overlaps another, and nothing sticks out left of or above the canvas (ports there
are cut off).

It loads each flowgraph into GRC's own GUI model and asks GRC for the extents it draws, so block
sizes, port widths and comment text are GRC's, not guesses. GTK needs an X display:

    xvfb-run -a .venv/bin/python scripts/grc_layout.py flowgraphs/*.grc

Prints one line per problem and exits 1 if there is any; ``--json`` prints the rectangles instead.
``--fix`` moves blocks until nothing overlaps, keeping the drawing's order: blocks are taken row by
row (by their y), a block that hits one of its own row moves right, one that hits an earlier row
moves down; positions stay on GRC's 8-pixel grid. Only ``coordinate:`` lines of the file change.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from itertools import combinations
from pathlib import Path

Rect = tuple[float, float, float, float]  # x0, y0, x1, y1


def _platform():
    import gi

    gi.require_version("Gtk", "3.0")
    gi.require_version("PangoCairo", "1.0")
    from gi.repository import Gtk
    from gnuradio import gr
    from gnuradio.grc.gui.canvas import flowgraph as canvas_flowgraph
    from gnuradio.grc.gui.Platform import Platform

    platform = Platform(version=gr.version(), version_parts=(gr.major_version(), gr.api_version(),
                                                             gr.minor_version()),
                        prefs=gr.prefs(), install_prefix=gr.prefix())
    platform.build_library()
    from gnuradio.grc.gui import Actions

    # what a new GRC user sees (GRC's defaults): comments on, block IDs and complexity off
    for action, on in ((Actions.TOGGLE_SHOW_BLOCK_COMMENTS, True), (Actions.TOGGLE_SHOW_BLOCK_IDS, False),
                       (Actions.TOGGLE_SHOW_FLOWGRAPH_COMPLEXITY, False)):
        action.set_active(on)
    # a canvas flow graph wants the main window for its context menu: there is none here
    canvas_flowgraph._ContextMenu = lambda _window: None
    app = Gtk.Application(application_id="org.semjscc.grclayout")
    app.register(None)
    app.set_default()
    return platform


def rectangles(platform, grc: Path) -> dict[str, Rect]:
    """name -> extent of each enabled block (ports included) and ``name (comment)`` -> its comment."""
    fg = platform.make_flow_graph(str(grc))
    out: dict[str, Rect] = {}
    for b in fg.blocks:
        if b.state != "enabled":
            continue
        b.create_labels()
        b.create_shapes()
        out[b.name] = tuple(float(v) for v in b.get_extents())  # type: ignore[assignment]
        c = tuple(float(v) for v in b.get_extents_comment())
        if c[2] > c[0] and c[3] > c[1]:
            out[f"{b.name} (comment)"] = c  # type: ignore[assignment]
    return out


def render(platform, grc: Path, png: Path) -> None:
    """The whole canvas as GRC draws it (blocks, ports, connections, comments) into a PNG."""
    import cairo

    fg = platform.make_flow_graph(str(grc))
    blocks = [b for b in fg.blocks if b.state == "enabled"]
    for b in blocks:
        b.create_labels()
        b.create_shapes()
    for c in fg.connections:
        c.create_shapes()
    ext = [b.get_extents() for b in blocks] + [b.get_extents_comment() for b in blocks]
    w, h = int(max(e[2] for e in ext)) + 16, int(max(e[3] for e in ext)) + 16
    surface = cairo.ImageSurface(cairo.FORMAT_RGB24, w, h)
    cr = cairo.Context(surface)
    cr.set_source_rgb(1, 1, 1)
    cr.paint()
    cr.set_line_width(1.0)
    for draw in [b.draw_comment for b in blocks] + [c.draw for c in fg.connections] + [b.draw for b in blocks]:
        cr.save()
        draw(cr)
        cr.restore()
    surface.write_to_png(str(png))


def problems(rects: dict[str, Rect]) -> list[str]:
    found = []
    for name, (x0, y0, _, _) in rects.items():
        if x0 < 0 or y0 < 0:
            found.append(f"{name} sticks out of the canvas at ({x0:g}, {y0:g}): move it right/down")
    for (a, ra), (b, rb) in combinations(rects.items(), 2):
        if ra[0] < rb[2] and rb[0] < ra[2] and ra[1] < rb[3] and rb[1] < ra[3]:
            found.append(f"{a} {_fmt(ra)} overlaps {b} {_fmt(rb)}")
    return found


GRID, GAP = 8, 16


def _overlap(a: Rect, b: Rect, gap: float) -> bool:
    return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


def arrange(platform, grc: Path) -> dict[str, tuple[int, int]]:
    """New coordinates (block name -> x, y) such that no block-with-comment overlaps another."""
    fg = platform.make_flow_graph(str(grc))
    units = []  # (name, original x, y, offsets of the unit's extent from the coordinate)
    for b in fg.blocks:
        if b.state != "enabled":
            continue
        b.create_labels()
        b.create_shapes()
        x, y = b.coordinate
        e, c = b.get_extents(), b.get_extents_comment()
        if c[2] > c[0] and c[3] > c[1]:
            e = (min(e[0], c[0]), min(e[1], c[1]), max(e[2], c[2]), max(e[3], c[3]))
        units.append((b.name, x, y, (e[0] - x, e[1] - y, e[2] - x, e[3] - y)))
    units.sort(key=lambda u: (u[2], u[1]))
    placed: list[tuple[Rect, float]] = []  # rectangle, original y of its block (its row)
    moved = {}
    for name, x, y, (dx0, dy0, dx1, dy1) in units:
        x = max(x, GAP - dx0)
        y = max(y, GAP - dy0)
        x, y = -(-x // GRID) * GRID, -(-y // GRID) * GRID
        while True:
            rect = (x + dx0, y + dy0, x + dx1, y + dy1)
            hits = [(r, row) for r, row in placed if _overlap(rect, r, GAP)]
            if not hits:
                break
            same_row = [r for r, row in hits if row == units_row(name, units)]
            if same_row:
                x = max(r[2] for r in same_row) + GAP - dx0
            else:
                y = max(r[3] for r, _ in hits) + GAP - dy0
            x, y = -(-x // GRID) * GRID, -(-y // GRID) * GRID
        placed.append((rect, units_row(name, units)))
        moved[name] = (int(x), int(y))
    return moved


def units_row(name: str, units: list) -> float:
    return next(u[2] for u in units if u[0] == name)


def rewrite(grc: Path, coords: dict[str, tuple[int, int]]) -> int:
    """Set the ``coordinate:`` of each named block (the options block is named by its id)."""
    lines = grc.read_text().splitlines(keepends=True)
    current, changed = None, 0
    for i, line in enumerate(lines):
        m = re.match(r"^- name: (\S+)", line) or re.match(r"^    id: (\S+)", line if current is None else "")
        if m:
            current = m.group(1)
        m = re.match(r"^(\s+coordinate: )\[(-?\d+), (-?\d+)\]", line)
        if m and current in coords:
            new = f"{m.group(1)}[{coords[current][0]}, {coords[current][1]}]\n"
            changed += new != line
            lines[i] = new
            current = None
    grc.write_text("".join(lines))
    return changed


def _fmt(r: Rect) -> str:
    return "[{:g},{:g} .. {:g},{:g}]".format(*r)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("grc", type=Path, nargs="+")
    p.add_argument("--json", action="store_true", help="print the rectangles as JSON")
    p.add_argument("--fix", action="store_true", help="move blocks until nothing overlaps (rewrites the files)")
    p.add_argument("--png", type=Path, metavar="DIR", help="also draw each canvas into DIR/NAME.png")
    args = p.parse_args(argv)
    if not os.environ.get("DISPLAY"):
        print("grc_layout: GTK needs an X display; run it under xvfb-run -a", file=sys.stderr)
        return 2
    platform = _platform()
    bad = 0
    every = {}
    for grc in args.grc:
        if args.fix:
            print(f"{grc.name}: moved {rewrite(grc, arrange(platform, grc))} blocks")
        rects = rectangles(platform, grc)
        if args.png:
            args.png.mkdir(parents=True, exist_ok=True)
            render(platform, grc, args.png / f"{grc.stem}.png")
        every[grc.name] = rects
        for line in problems(rects):
            print(f"{grc.name}: {line}")
            bad += 1
    if args.json:
        print(json.dumps(every, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
