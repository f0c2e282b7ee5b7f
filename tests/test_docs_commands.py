"""docs/hardware.md's commands run as written: every fenced shell command that needs no radio is run
in a scratch copy of the project (its own git repository) with simulated radios in place of the
Pluto URIs and fewer images, and afterwards `git status` there shows nothing changed: results,
profiles and compiled flowgraphs all land in ignored folders."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gnuradio.gr")

from conftest import fake_split, write_pickles

pytestmark = [pytest.mark.slow, pytest.mark.gnuradio]
REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "hardware.md"
# the doc's radios -> simulated ones: two radios whose crystals differ by 25 ppm, as in the text
URIS = {"ip:192.168.2.1": "sim", "usb:1.4.5": "sim:seed=1,ppm=15", "usb:1.5.5": "sim:seed=2,ppm=-10"}
# commands that drive a real Pluto through gr-iio (no simulated radio there): compiled, not run
NEEDS_A_RADIO = re.compile(r"^\.venv/bin/python build/pluto_\w+\.py ")


def fenced_commands(text: str) -> list[str]:
    """The commands of the ```sh blocks: comments dropped, backslash continuations joined."""
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        out += [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]
    return out


def simulated(cmd: str) -> list[str]:
    args = shlex.split(cmd)
    args = [URIS.get(a, a) for a in args]
    for i, a in enumerate(args[:-1]):
        if a == "--images":
            args[i + 1] = "4"  # the point is that the command works, not the statistics
    return args


def test_hardware_md_commands_run_on_simulated_radios(tmp_path: Path) -> None:
    commands = fenced_commands(DOC.read_text())
    assert len(commands) >= 8, commands
    skipped = [c for c in commands if NEEDS_A_RADIO.match(c)]
    assert len(skipped) == 1, skipped  # only the live-flowgraph run needs the hardware
    for c in commands:
        assert c.startswith("semjscc ") or c in skipped, f"docs/hardware.md: a command the test cannot run: {c}"

    copy = tmp_path / "project"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        if (REPO / f).is_file():
            (copy / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, copy / f)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=copy, check=True)
    subprocess.run([*git, "add", "-A"], cwd=copy, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=copy, check=True)

    home = tmp_path / "home"
    (home / "xdg").mkdir(parents=True, mode=0o700)
    data = write_pickles(tmp_path / "cifar", fake_split(2, 1), fake_split(2, 2))
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(home / "xdg"), "SEMJSCC_DATA": str(data),
           "PYTHONPATH": str(copy / "gr-semjscc" / "python"), "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}"}
    for c in commands:
        if c in skipped:
            continue
        r = subprocess.run(simulated(c), cwd=copy, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{c}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert (copy / "results" / "ota-first" / "summary.json").is_file()
    assert (copy / "build" / "pluto_loopback.py").is_file()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=copy, capture_output=True, text=True, check=True)
    assert status.stdout == "", status.stdout
