#!/usr/bin/env python3
"""Rewrite the tables of docs/bad-input.md from what the bad-input cases do.

    scripts/bad_input_table.py                 # run tests/test_bad_input.py, rewrite the doc's tables
    scripts/bad_input_table.py --rows R.json   # render rows written by an earlier test run

The cases, their fixtures and how they are judged live in tests/ (bad_inputs.yaml, bad_input_harness.py,
test_bad_input.py); this script only runs that test file with $SEMJSCC_BAD_INPUT_TABLE set, so every
case's row is written, and renders the rows. Exit status: the test run's (0 when every case behaves).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "bad-input.md"
MARKERS = {
    "cli": ("<!-- bad-input-table:cli:start -->", "<!-- bad-input-table:cli:end -->"),
    "blocks": ("<!-- bad-input-table:blocks:start -->", "<!-- bad-input-table:blocks:end -->"),
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def _code(text: str) -> str:
    return f"`{text}`" if "`" not in text else f"``{text}``"


def _check(row: dict) -> str:
    found = row["problems"]
    if row["xfail"]:
        return ("known gap" if found else "**passes: update the data file**") + f": {row['xfail']}"
    status = "ok" if not found else "**FAIL: " + "; ".join(found) + "**"
    return status + (f" ({row['note']})" if row.get("note") else "")


def render(rows: list[dict], kind: str) -> str:
    if kind == "cli":
        lines = ["| env | command | exit | traceback | message | check |", "|---|---|---:|---|---|---|"]
        for r in rows:
            env = _code(r["env"]) if r["env"] else ""
            lines.append(f"| {env} | {_code(_cell(r['command']))} | {r['exit']} | "
                         f"{'**yes**' if r['traceback'] else 'no'} | {_cell(r['message'])} | {_cell(_check(r))} |")
    else:
        lines = ["| case | code | raises | message | check |", "|---|---|---|---|---|"]
        for r in rows:
            raised = (r["error"] or "nothing") + (" (**traceback**)" if r["traceback"] else "")
            lines.append(f"| {r['id']} | {_code(_cell(r['code']))} | {raised} | {_cell(r['message'])} | "
                         f"{_cell(_check(r))} |")
    return "\n".join(lines)


def rewrite_doc(text: str, tables: dict[str, str]) -> str:
    """Replace what lies between each table's markers; everything else is kept."""
    for kind, table in tables.items():
        start, end = MARKERS[kind]
        i, j = text.find(start), text.find(end)
        if i < 0 or j < i:
            raise SystemExit(f"{DOC}: markers {start} ... {end} not found; add them where the table goes")
        text = text[: i + len(start)] + "\n" + table + "\n" + text[j:]
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=Path, default=None, help="render these rows instead of running the tests")
    args = ap.parse_args(argv)
    rc = 0
    rows_file = args.rows
    if rows_file is None:
        rows_file = Path(tempfile.mkdtemp(prefix="semjscc-bad-input-")) / "rows.json"
        env = {**os.environ, "SEMJSCC_BAD_INPUT_TABLE": str(rows_file)}
        rc = subprocess.run([str(REPO / "scripts" / "test.sh"), "-q", "tests/test_bad_input.py"], env=env,
                            cwd=REPO).returncode
    rows = json.loads(rows_file.read_text())
    order = {"cli": [], "blocks": []}
    for r in rows:
        order[r["kind"]].append(r)
    DOC.write_text(rewrite_doc(DOC.read_text(), {k: render(v, k) for k, v in order.items()}))
    print(f"wrote {DOC} ({len(rows)} cases)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
