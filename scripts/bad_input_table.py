#!/usr/bin/env python3
"""Run every bad-input case of tests/bad_inputs.yaml and rewrite the tables of docs/bad-input.md.

    .venv/bin/python scripts/bad_input_table.py            # run all, rewrite the doc's tables
    .venv/bin/python scripts/bad_input_table.py --check    # run all, leave the doc alone
    .venv/bin/python scripts/bad_input_table.py --only run- --jobs 4

Two kinds of case (the data file's comment describes the fields):

* ``cli``: ``semjscc ARGV`` run as a subprocess (``python -m semjscc.cli``) in a scratch folder with
  ``QT_QPA_PLATFORM=offscreen``, a throwaway HOME and cache, and ``SEMJSCC_DATA`` set to a tiny fake
  CIFAR-10 (so no case decodes the real dataset); exit status, stdout and stderr are captured.
* ``blocks``: a Python snippet run in this process against the GNU Radio blocks (``g`` is
  ``semjscc.gr``, ``fx`` the fixtures, ``link()`` builds and starts encoder -> OFDM TX -> OFDM RX ->
  decoder in a top block); what it raises is captured.

Fixtures (``{name}`` in an argv or env value, ``fx["name"]`` in a snippet) are built on first use
under one temporary folder: truncated copies of the shipped ONNX models, a text file named ``.pt``,
a truncated ``.sigmf-meta``, pictures of the wrong size, a modified ``sim_loopback.grc``, tiny
untrained models with another symbol count, a short simulated ``semjscc ota`` recording, ...

A case fails when its exit status (or exception class) differs from the expected one, when the
expected text is missing from its message, or when a Python traceback shows. Cases marked ``xfail``
(known gaps, with the reason) are reported but do not fail; one that starts passing does (so the
data file and the table get updated). Exit status: 0 when every case behaves, 1 otherwise.

tests/test_bad_input.py runs the same cases (``load_cases``, ``Fixtures``, ``run_cli``,
``run_block``, ``problems``), most CLI ones in-process to stay fast.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pickle
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CASES_FILE = REPO / "tests" / "bad_inputs.yaml"
DOC = REPO / "docs" / "bad-input.md"
MARKERS = {
    "cli": ("<!-- bad-input-table:cli:start -->", "<!-- bad-input-table:cli:end -->"),
    "blocks": ("<!-- bad-input-table:blocks:start -->", "<!-- bad-input-table:blocks:end -->"),
}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_FX_REF = re.compile(r"""fx\[["'](\w+)["']\]""")
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# --- cases --------------------------------------------------------------------------------------

@dataclass
class Case:
    kind: str  # "cli" or "blocks"
    id: str
    expect: str  # text the message must contain
    argv: list[str] = field(default_factory=list)  # cli
    env: dict[str, str] = field(default_factory=dict)  # cli
    exit: int = 2  # cli: expected exit status
    code: str = ""  # blocks: Python snippet
    error: str | None = None  # blocks: expected semjscc.errors class name, None = must not raise
    test: str = "inprocess"  # how tests/test_bad_input.py runs it: inprocess, subprocess or skip
    xfail: str = ""  # a known gap: why it does not behave yet
    note: str = ""
    timeout: float = 120.0  # cli: seconds before the subprocess is killed (a hang is a failure)

    def fixtures(self) -> set[str]:
        texts = [*self.argv, *self.env.values()]
        return {m for t in texts for m in _PLACEHOLDER.findall(t)} | set(_FX_REF.findall(self.code))


def load_cases(path: Path = CASES_FILE) -> list[Case]:
    import yaml

    doc = yaml.safe_load(path.read_text())
    cases: list[Case] = []
    for kind in ("cli", "blocks"):
        for raw in doc.get(kind) or []:
            raw = dict(raw)
            if kind == "cli":
                raw["argv"] = [str(a) for a in raw["argv"]]
                raw["env"] = {str(k): str(v) for k, v in (raw.get("env") or {}).items()}
            cases.append(Case(kind=kind, **raw))
    ids = [c.id for c in cases]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise SystemExit(f"{path}: duplicate case ids {sorted(dup)}")
    return cases


# --- fixtures -----------------------------------------------------------------------------------

class Fixtures:
    """Files the cases use, built on first use under ``root``. ``overrides`` maps a fixture name to
    a ready path (the tests pass their session-wide tiny model zoo)."""

    def __init__(self, root: Path, overrides: dict[str, Path] | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._paths: dict[str, Path] = {k: Path(v) for k, v in (overrides or {}).items()}
        self._lock = threading.RLock()

    def __getitem__(self, name: str) -> str:
        with self._lock:
            if name not in self._paths:
                make = getattr(self, f"_make_{name}", None)
                if make is None:
                    raise KeyError(f"unknown fixture {name!r}")
                self._paths[name] = Path(make())
            return str(self._paths[name])

    def fill(self, text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: self[m.group(1)], text)

    def env(self) -> dict[str, str]:
        """The environment every case runs in (a case's own env goes on top)."""
        home = self.root / "home"
        home.mkdir(exist_ok=True)
        return {"HOME": str(home), "XDG_RUNTIME_DIR": str(home), "QT_QPA_PLATFORM": "offscreen", "MPLBACKEND": "Agg",
                "SEMJSCC_CACHE": str(self.root / "cache"), "SEMJSCC_DATA": self["cifar"], "PYTHONUNBUFFERED": "1"}

    def _file(self, name: str, data: bytes | str) -> Path:
        p = self.root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        return p

    # each _make_NAME builds fixture NAME and returns its path
    def _make_scratch(self) -> Path:
        p = self.root / "scratch"
        p.mkdir(exist_ok=True)
        return p

    def _make_repo(self) -> Path:
        return REPO

    def _make_bad_pt(self) -> Path:
        return self._file("bad.pt", "not a checkpoint\n")

    def _make_bad_meta(self) -> Path:
        return self._file("bad.sigmf-meta", '{\n  "global": {"core:datatype": "cf32_le", "core:ver')

    def _make_notes_txt(self) -> Path:
        return self._file("notes.txt", "a text file, not a flowgraph\n")

    def _make_broken_grc(self) -> Path:
        return self._file("broken.grc", "options: [this is: not, a flowgraph\n")

    def _make_broken_tar(self) -> Path:
        return self._file("broken.tar.gz", b"\x1f\x8b\x08\x00 not really gzip" * 4)

    def _make_a_directory(self) -> Path:
        p = self.root / "a-directory"
        p.mkdir(exist_ok=True)
        return p

    def _make_models_with_classifier(self) -> Path:
        """A models folder that already holds a 'classifier' directory (export must not replace it)."""
        p = self.root / "models-existing"
        (p / "classifier").mkdir(parents=True, exist_ok=True)
        return p

    def _make_bad_models(self) -> Path:
        """Copies of jscc-semantic-kn6 and classifier with every .onnx cut to a third."""
        p = self.root / "bad-models"
        if not p.is_dir():
            for name in ("jscc-semantic-kn6", "classifier"):
                shutil.copytree(REPO / "models" / name, p / name)
                for f in (p / name).glob("*.onnx"):
                    data = f.read_bytes()
                    f.write_bytes(data[: len(data) // 3])
        return p

    def _make_truncated_onnx(self) -> Path:
        """A lone encoder .onnx (no card beside it) cut to a third: ONNX Runtime must refuse it."""
        data = (REPO / "models" / "jscc-semantic-kn6" / "encoder.onnx").read_bytes()
        return self._file("lone/encoder.onnx", data[: len(data) // 3])

    def _make_cifar(self) -> Path:
        """A tiny CIFAR-10 look-alike (torchvision pickles, 2 images per class and split)."""
        import numpy as np

        d = self.root / "cifar-fake" / "cifar-10-batches-py"
        if not d.is_dir():
            d.mkdir(parents=True)
            rng = np.random.default_rng(0)
            for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
                n = 10 if name == "test_batch" else 4
                labels = [i % 10 for i in range(n)]
                data = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)
                with open(d / name, "wb") as f:
                    pickle.dump({b"data": data, b"labels": labels}, f, protocol=2)
        return d.parent

    def _png(self, path: Path, side: int, seed: int) -> None:
        import numpy as np
        from PIL import Image

        path.parent.mkdir(parents=True, exist_ok=True)
        img = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(img).save(path)

    def _make_pictures_64px(self) -> Path:
        """Three 64x64 PNGs in a plain folder (not a CIFAR-10 layout)."""
        p = self.root / "pictures-64px"
        for i in range(3):
            self._png(p / f"picture{i}.png", 64, i)
        return p

    def _make_cifar_64px(self) -> Path:
        """A CIFAR-10 folder layout (train/<class>/, test/<class>/) holding 64x64 PNGs."""
        p = self.root / "cifar-64px"
        for split in ("train", "test"):
            for k, cls in enumerate(CLASSES[:2]):
                self._png(p / split / cls / "0000.png", 64, k)
        return p

    def _make_grc_tx256(self) -> Path:
        """flowgraphs/sim_loopback.grc with the OFDM TX's max_payload_len cut to 256 symbols
        (the shipped models send 512 per frame)."""
        text = (REPO / "flowgraphs" / "sim_loopback.grc").read_text()
        start = text.index("- name: semjscc_ofdm_tx_0")
        key = "max_payload_len: '8192'"
        at = text.index(key, start)
        return self._file("sim_loopback_tx256.grc", text[:at] + "max_payload_len: '256'" + text[at + len(key):])

    def _make_zoo(self) -> Path:
        """tests/gr_tiny_zoo.py's tiny untrained models: jscc-kn6 (512 symbols), jscc-kn12 (256), classifier."""
        sys.path.insert(0, str(REPO / "tests"))
        try:
            from gr_tiny_zoo import tiny_zoo
        finally:
            sys.path.pop(0)
        root = self.root

        class _Base:
            def getbasetemp(self) -> Path:
                return root

        return tiny_zoo(_Base())  # type: ignore[arg-type]

    def _make_recording(self) -> Path:
        """A 2-image `semjscc ota --uri sim` recording made with jscc-semantic-kn6 (512 symbols)."""
        out = self.root / "ota-recording"
        meta = out / "recording.sigmf-meta"
        if not meta.is_file():
            env = {**os.environ, **self.env()}
            r = subprocess.run([sys.executable, "-m", "semjscc.cli", "ota", "--uri", "sim", "--snr", "10", "--images",
                                "2", "--batch", "2", "--no-sim", "--no-progress", "--out", str(out)],
                               cwd=self["scratch"], env=env, capture_output=True, text=True, timeout=300)
            if r.returncode != 0 or not meta.is_file():
                raise RuntimeError(f"could not record the ota fixture: {r.stderr[-2000:]}")
        return meta

    def _make_recording_without_data(self) -> Path:
        """The recording's .sigmf-meta alone, its .sigmf-data missing."""
        p = self.root / "orphan" / "recording.sigmf-meta"
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self["recording"], p)
        return p


# --- running ------------------------------------------------------------------------------------

@dataclass
class Outcome:
    exit: int | None  # cli: exit status; blocks: the error's exit_code (0 when nothing was raised)
    stdout: str = ""
    stderr: str = ""
    error: str | None = None  # blocks: class name of what was raised
    traceback: bool = False
    seconds: float = 0.0

    @property
    def message(self) -> str:
        """The last non-empty line of stderr, else of stdout."""
        for text in (self.stderr, self.stdout):
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            if lines:
                return lines[-1]
        return ""


def run_cli(case: Case, fx: Fixtures, inprocess: bool = False, timeout: float | None = None) -> Outcome:
    """Run ``semjscc ARGV`` for a cli case: as a subprocess, or (``inprocess``) through
    ``semjscc.cli.main`` in this process with stdout/stderr captured, SystemExit caught and the
    environment and cwd restored afterwards."""
    argv = [fx.fill(a) for a in case.argv]
    env = {**fx.env(), **{k: fx.fill(v) for k, v in case.env.items()}}
    cwd = fx["scratch"]
    timeout = case.timeout if timeout is None else timeout
    t0 = time.monotonic()
    if not inprocess:
        try:
            r = subprocess.run([sys.executable, "-m", "semjscc.cli", *argv], cwd=cwd, env={**os.environ, **env},
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            return Outcome(None, out, f"(killed: no exit within {timeout:g} s)", seconds=time.monotonic() - t0)
        return Outcome(r.returncode, r.stdout, r.stderr, traceback="Traceback (most recent call last)" in r.stderr,
                       seconds=time.monotonic() - t0)
    from semjscc import cli

    saved_env = {k: os.environ.get(k) for k in env}
    saved_cwd = os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    tb = False
    try:
        os.environ.update(env)
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as e:  # argparse
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except Exception:
                traceback.print_exc()
                code, tb = 1, True
    finally:
        os.chdir(saved_cwd)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return Outcome(code, out.getvalue(), err.getvalue(), traceback=tb or "Traceback (most recent call last)"
                   in err.getvalue(), seconds=time.monotonic() - t0)


def link(enc: str, dec: str | None = None, tx_max: int = 8192, rx_max: int = 8192) -> str:
    """Build deep JSCC encoder -> OFDM TX -> OFDM RX -> decoder in a top block and start it; stops
    it again and returns 'started' when starting succeeded (for the snippets of block cases)."""
    from gnuradio import gr
    from semjscc import gr as sg

    class _Link(gr.top_block):
        def __init__(self) -> None:
            gr.top_block.__init__(self, "bad-input link")
            self.enc = sg.jscc_encoder(enc, device="cpu")
            self.tx = sg.ofdm_tx(max_payload_len=tx_max)
            self.rx = sg.ofdm_rx(max_payload_len=rx_max)
            self.dec = sg.jscc_decoder(dec or enc, device="cpu")
            self.connect(self.tx, self.rx)
            self.msg_connect(self.enc, "out", self.tx, "pdus")
            self.msg_connect(self.rx, "pdus", self.dec, "in")

    tb = _Link()
    tb.start()
    tb.stop()
    tb.wait()
    return "started"


def run_block(case: Case, fx: Fixtures) -> Outcome:
    """Run a blocks case's snippet in this process. Its ``result`` variable (if any) becomes the
    message when nothing is raised."""
    import numpy as np
    from semjscc import gr as sg
    from semjscc.errors import SemJSCCError

    ns: dict[str, Any] = {"g": sg, "fx": fx, "link": link, "np": np}
    t0 = time.monotonic()
    try:
        exec(compile(case.code, f"<case {case.id}>", "exec"), ns)
    except SemJSCCError as e:
        return Outcome(e.exit_code, stderr=f"{type(e).__name__}: {e}", error=type(e).__name__,
                       seconds=time.monotonic() - t0)
    except Exception as e:
        return Outcome(1, stderr=traceback.format_exc() + f"{type(e).__name__}: {e}", error=type(e).__name__,
                       traceback=True, seconds=time.monotonic() - t0)
    return Outcome(0, stdout=str(ns.get("result", "")), seconds=time.monotonic() - t0)


def problems(case: Case, o: Outcome) -> list[str]:
    """What is wrong with an outcome (empty: the case behaves)."""
    found = []
    if o.traceback:
        found.append("a Python traceback")
    if case.kind == "cli":
        if o.exit != case.exit:
            found.append(f"exit status {o.exit}, expected {case.exit}")
    else:
        from semjscc import errors

        if case.error is None and o.error is not None:
            found.append(f"raised {o.error}, expected no error")
        elif case.error is not None:
            want = getattr(errors, case.error)
            got = getattr(errors, o.error or "", None)
            if not (isinstance(got, type) and issubclass(got, want)):
                found.append(f"raised {o.error or 'nothing'}, expected {case.error}")
    if case.expect not in o.message:
        found.append(f"message lacks {case.expect!r}")
    return found


# --- the document ----------------------------------------------------------------------------------

def _shown(text: str, fx: Fixtures) -> str:
    """A path-independent rendering: the fixture folder as $TMP, the checkout as $REPO."""
    root = str(fx.root)
    real = os.path.realpath(root)
    text = text.replace(real, "$TMP").replace(root, "$TMP") if root else text
    return text.replace(str(REPO), "$REPO")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def _code(text: str) -> str:
    return f"`{text}`" if "`" not in text else f"``{text}``"


def _status(case: Case, found: list[str]) -> str:
    if case.xfail:
        return "known gap" if found else "**passes: update the data file**"
    return "ok" if not found else "**FAIL: " + "; ".join(found) + "**"


def render_cli(results: list[tuple[Case, Outcome, list[str]]], fx: Fixtures) -> str:
    rows = ["| env | command | exit | traceback | message | check |", "|---|---|---:|---|---|---|"]
    for case, o, found in results:
        env = " ".join(f"{k}={_shown(fx.fill(v), fx)}" for k, v in case.env.items())
        cmd = _shown("semjscc " + " ".join(shlex.quote(fx.fill(a)) for a in case.argv), fx)
        msg = _shown(o.message, fx) or "(no output)"
        if not o.stderr.strip() and o.stdout.strip():
            msg = "(stdout) " + msg
        check = _status(case, found)
        if case.xfail:
            check += f": {case.xfail}"
        elif case.note:
            check += f" ({case.note})"
        rows.append(f"| {_code(env) if env else ''} | {_code(_cell(cmd))} | {o.exit} | "
                    f"{'**yes**' if o.traceback else 'no'} | {_cell(msg)} | {_cell(check)} |")
    return "\n".join(rows)


def render_blocks(results: list[tuple[Case, Outcome, list[str]]], fx: Fixtures) -> str:
    rows = ["| case | code | raises | message | check |", "|---|---|---|---|---|"]
    for case, o, found in results:
        code = "; ".join(ln.strip() for ln in case.code.strip().splitlines() if ln.strip())
        check = _status(case, found)
        if case.xfail:
            check += f": {case.xfail}"
        elif case.note:
            check += f" ({case.note})"
        raised = o.error or "nothing"
        if o.traceback:
            raised += " (**traceback**)"
        msg = o.message.removeprefix(f"{o.error}: ") if o.error else (f"result: {o.message}" if o.message else "")
        rows.append(f"| {case.id} | {_code(_cell(code))} | {raised} | {_cell(_shown(msg, fx))} | {_cell(check)} |")
    return "\n".join(rows)


def rewrite_doc(text: str, tables: dict[str, str]) -> str:
    """Replace what lies between each table's markers; everything else is kept."""
    for kind, table in tables.items():
        start, end = MARKERS[kind]
        i, j = text.find(start), text.find(end)
        if i < 0 or j < i:
            raise SystemExit(f"{DOC}: markers {start} ... {end} not found; add them where the table goes")
        text = text[: i + len(start)] + "\n" + table + "\n" + text[j:]
    return text


# --- main -----------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="run the cases but leave docs/bad-input.md alone")
    ap.add_argument("--only", nargs="+", default=None, metavar="PREFIX", help="only cases whose id starts so")
    ap.add_argument("--jobs", type=int, default=2, help="CLI subprocesses at once (default 2)")
    ap.add_argument("--keep", action="store_true", help="keep the fixture folder (printed)")
    ap.add_argument("--json", type=Path, default=None, help="also write every outcome here")
    args = ap.parse_args(argv)
    cases = load_cases()
    if args.only:
        cases = [c for c in cases if c.id.startswith(tuple(args.only))]
        args.check = True  # a partial run never rewrites the tables
    tmp = Path(tempfile.mkdtemp(prefix="semjscc-bad-input-"))
    fx = Fixtures(tmp)
    try:
        t0 = time.monotonic()
        for name in sorted({n for c in cases for n in c.fixtures()} | {"scratch", "cifar"}):
            fx[name]
        print(f"fixtures ready in {time.monotonic() - t0:.1f} s under {tmp}", file=sys.stderr)
        cli = [c for c in cases if c.kind == "cli"]
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            cli_out = list(pool.map(lambda c: run_cli(c, fx), cli))
        os.environ.update(fx.env())  # the block snippets run here, in the same environment
        os.chdir(fx["scratch"])
        blk = [c for c in cases if c.kind == "blocks"]
        blk_out = [run_block(c, fx) for c in blk]
        results = {"cli": [(c, o, problems(c, o)) for c, o in zip(cli, cli_out, strict=True)],
                   "blocks": [(c, o, problems(c, o)) for c, o in zip(blk, blk_out, strict=True)]}
        bad = 0
        for kind, rows in results.items():
            for c, o, found in rows:
                failed = bool(found) != bool(c.xfail)
                bad += failed
                mark = "FAIL" if failed else ("gap " if c.xfail else "ok  ")
                print(f"{mark} {kind:6} {c.id:42} exit {o.exit!s:4} {o.seconds:5.1f} s  {_shown(o.message, fx)[:150]}")
                if failed:
                    print(f"     -> {'; '.join(found) or 'passes although marked xfail: ' + c.xfail}")
                    if o.traceback:
                        print("     " + "\n     ".join((o.stderr or "").strip().splitlines()[-12:]))
        n_gaps = sum(bool(c.xfail) for rows in results.values() for c, _o, _f in rows)
        print(f"{len(cases)} cases, {bad} failing, {n_gaps} known gaps, {time.monotonic() - t0:.0f} s")
        if args.json:
            args.json.write_text(json.dumps([{"id": c.id, "kind": c.kind, "exit": o.exit, "error": o.error,
                                              "traceback": o.traceback, "message": _shown(o.message, fx),
                                              "problems": found, "seconds": round(o.seconds, 2)}
                                             for rows in results.values() for c, o, found in rows], indent=2) + "\n")
        if not args.check:
            DOC.write_text(rewrite_doc(DOC.read_text(), {"cli": render_cli(results["cli"], fx),
                                                          "blocks": render_blocks(results["blocks"], fx)}))
            print(f"wrote {DOC}")
        return 1 if bad else 0
    finally:
        os.chdir(REPO)
        if args.keep:
            print(f"fixtures kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
