"""Find, compile and run GRC flowgraphs headless (``semjscc run FILE.grc``).

A .grc is code: GRC evaluates its expressions (variables, imports, block parameters) when it is
compiled and when it runs, so run only flowgraphs you trust, as you would a Python script.

A .grc is compiled with ``grcc`` under this interpreter (the venv's: the flowgraphs' imports need
semjscc) into a cache keyed by the content of the .grc and of the SemJSCC block definitions, and
the generated script is run with this interpreter, its GRC parameters given as command-line
options. A failure in the script (a missing model, say) is turned back into the one line its
exception carried; grcc's own errors are passed on in full. Ctrl-C, SIGTERM and SIGHUP are passed
on to the script, which stops its top block (its metrics sink then writes what was measured),
before they stop this process; the script is killed if this process dies (SIGKILL), so no flowgraph
runs on unattended and nothing is left half written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from semjscc import __version__
from semjscc.grc.install import blocks_dir, gnuradio_script, grc_env
from semjscc.util.errors import DataError, ModelError, UsageError
from semjscc.util.files import load_yaml, read_regular
from semjscc.util.paths import REPO_ROOT, cache_dir
from semjscc.util.stopping import RunOutcome, run_until_done

FLOWGRAPHS_DIR = REPO_ROOT / "flowgraphs"
_OPTION = re.compile(r'parser\.add_argument\(\s*(?:"-\w",\s*)?"(--[\w-]+)"')
_ERROR = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception))\s*:\s*(.+)$")
MAX_GRC_BYTES = 16 << 20  # a large flowgraph is a few hundred KB
STOP_GRACE_S = 30.0  # how long a stopped flowgraph script gets to stop its top block and write its JSON


def shipped_flowgraphs() -> list[str]:
    return sorted(p.stem for p in FLOWGRAPHS_DIR.glob("*.grc"))


def find_grc(ref: str) -> Path:
    """A .grc file from a path or the name of a shipped flowgraph."""
    p = Path(ref)
    if p.suffix == ".grc":
        if not p.is_file():
            raise UsageError(f"flowgraph {p} not found")
        return p
    cand = FLOWGRAPHS_DIR / f"{ref}.grc"
    if cand.is_file():
        return cand
    raise UsageError(f"flowgraph {ref!r} is neither a .grc file nor a shipped flowgraph "
                     f"({', '.join(shipped_flowgraphs()) or 'none found in ' + str(FLOWGRAPHS_DIR)})")


def read_grc(grc: Path) -> dict[str, Any]:
    """The parsed .grc: a YAML mapping with an ``options`` block (its ``parameters``) and
    ``metadata: file_format``, as GNU Radio Companion 3.10 saves it; UsageError otherwise."""
    fix = "give a .grc file saved by GNU Radio Companion 3.10"
    try:
        text = read_regular(grc, MAX_GRC_BYTES, "flowgraph").decode("utf-8")
    except (DataError, UnicodeDecodeError) as e:
        raise UsageError(f"{grc}: not a GRC 3.10 flowgraph ({e if isinstance(e, DataError) else 'not UTF-8 text'}); "
                         f"{fix}") from None
    doc = load_yaml(text, str(grc), UsageError, fix)
    if not isinstance(doc, dict):
        raise UsageError(f"{grc}: not a GRC 3.10 flowgraph (not a YAML mapping); {fix}")
    options, metadata = doc.get("options"), doc.get("metadata")
    if not isinstance(options, dict) or not isinstance(options.get("parameters"), dict):
        raise UsageError(f"{grc}: not a GRC 3.10 flowgraph (no options block); {fix}")
    if not isinstance(metadata, dict) or "file_format" not in metadata:
        raise UsageError(f"{grc}: not a GRC 3.10 flowgraph (no metadata: file_format); {fix}")
    return doc


def grc_options(grc: Path) -> dict[str, Any]:
    """The .grc's options block parameters (id, generate_options, ...)."""
    return dict(read_grc(grc)["options"]["parameters"])


def compiled_script(grc: Path, timeout_s: float = 180.0) -> Path:
    """The generated script of ``grc`` from the compile cache, compiling it on a miss. The key covers
    the .grc's bytes, the SemJSCC block definitions and this semjscc version, so an edited flowgraph
    or block is recompiled; entries are written whole (a scratch folder renamed into place)."""
    h = hashlib.sha256(grc.read_bytes())
    for yml in sorted(blocks_dir().glob("*.block.yml")):
        h.update(yml.name.encode() + yml.read_bytes())
    h.update(__version__.encode())
    entry = cache_dir() / "grc" / f"{grc.stem}-{h.hexdigest()[:16]}"
    script = entry / f"{grc_options(grc).get('id', grc.stem)}.py"
    if script.is_file():
        return script
    entry.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        built = compile_grc(grc, scratch, timeout_s)
        os.replace(scratch, entry)  # atomic: a concurrent run sees a whole entry or none
    except OSError:
        if not script.is_file():  # another run put the entry in place first: use that one
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return entry / built.name


def compile_grc(grc: Path, out_dir: Path, timeout_s: float = 180.0) -> Path:
    """grcc ``grc`` into ``out_dir``; the generated Python script. When grcc fails, every line it
    printed about the problem goes into the error (GRC lists one error per line)."""
    grcc = gnuradio_script("grcc")
    if grcc is None:
        raise UsageError("grcc not found: GNU Radio is not installed (run scripts/setup.sh)")
    out_dir.mkdir(parents=True, exist_ok=True)
    # grcc under this interpreter: expressions in a .grc may import semjscc, which Debian's python lacks
    try:
        r = subprocess.run([sys.executable, grcc, "-o", str(out_dir), str(grc)], capture_output=True, text=True,
                           env=grc_env(), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise UsageError(f"grcc took more than {timeout_s:.0f} s on {grc}") from None
    script = out_dir / f"{grc_options(grc).get('id', grc.stem)}.py"
    if r.returncode != 0 or not script.is_file():
        out = re.sub(r"(?<=\S)(?=(?:Block|Param|Connection) - )", "\n", r.stdout + r.stderr)  # one error per line
        lines = [ln.strip() for ln in out.splitlines()
                 if ln.strip() and not ln.startswith(("<<<", ">>>")) and not set(ln.strip()) <= {"*"}]
        first = next((i for i, ln in enumerate(lines) if "rror" in ln), max(len(lines) - 1, 0))
        detail = " ".join(lines[first:first + 16]) if lines else "no output"
        raise UsageError(f"grcc could not compile {grc}: {detail}")
    return script


def script_options(script: Path) -> set[str]:
    """The command-line options (GRC parameters) a generated flowgraph script accepts."""
    return set(_OPTION.findall(script.read_text()))


def error_line(output: str) -> str:
    """The last ``SomethingError: message`` line of a traceback, or the last line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for ln in reversed(lines):
        m = _ERROR.match(ln)
        if m:
            return f"{m.group(1)}: {m.group(2)}"
    return lines[-1] if lines else "no output"


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the parent dies (Linux prctl PR_SET_PDEATHSIG), so a
    flowgraph script never outlives a killed ``semjscc run`` (whose own stop path, for every signal it
    can catch, passes the signal on and collects the results first)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the process group still gets Ctrl-C passed on


def run_script(script: Path, args: list[str], timeout_s: float, env: dict[str, str] | None = None,
               grace_s: float = STOP_GRACE_S) -> str:
    """Run a generated flowgraph to completion with this interpreter; its output (stdout + stderr).

    The script runs in its own process group, so a Ctrl-C at the terminal reaches only this
    process, which passes it on once: on SIGINT, SIGTERM or SIGHUP the script gets the same signal
    (GRC's generated ``main`` then stops its top block, and the metrics sink writes its JSON on
    stop), is waited for up to ``grace_s`` (then killed), and only then is the signal delivered here
    (``KeyboardInterrupt`` under ``semjscc``): whatever the script measured is on disk by then."""
    with tempfile.TemporaryFile("w+") as log:
        proc: subprocess.Popen | None = None
        output = {"text": ""}

        def start() -> None:
            nonlocal proc
            proc = subprocess.Popen([sys.executable, "-u", str(script), *args], stdout=log, stderr=subprocess.STDOUT,
                                    text=True, env=env or grc_env(), process_group=0, preexec_fn=_die_with_parent)

        def finished(wait_s: float) -> bool:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait_s)  # type: ignore[union-attr]
            return proc.poll() is not None  # type: ignore[union-attr]

        def stop(held: list[int]) -> None:
            if proc is None or proc.poll() is not None:
                return
            if held:  # pass the stop on, and give the script time to write what it measured
                proc.send_signal(held[0])
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(grace_s)
            if proc.poll() is None:
                proc.kill()
                proc.wait()

        def finalize(_outcome: RunOutcome) -> None:
            log.seek(0)
            output["text"] = log.read()

        outcome = run_until_done(start, finished, stop, timeout_s=timeout_s, finalize=finalize)
    if outcome.timed_out:
        raise UsageError(f"{script.name} did not finish within {timeout_s:.0f} s (raise --timeout, or check "
                         f"that its image source stops and its metrics sink acks back)")
    if proc is not None and proc.returncode != 0:
        line = error_line(output["text"])
        cls = ModelError if line.startswith("ModelError") else UsageError
        raise cls(f"{script.stem} failed: {line.split(': ', 1)[-1] if cls is ModelError else line}")
    return output["text"]
