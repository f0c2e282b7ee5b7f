"""Every `semjscc` command documents itself: a description per (sub)command, a help text per option
that names its default, one placeholder per kind of value, and examples in the help that work."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from semjscc.cli.main import build_parser

REPO = Path(__file__).resolve().parents[1]

PLACEHOLDERS = {"--data": "PATH", "--classifier": ("NAME_OR_DIR", "CHECKPOINT"), "--model": ("NAME_OR_DIR", "LABEL=MODEL"),
                "--frames": "N", "--limit": "N", "--json": "PATH"}


def _walk(parser: argparse.ArgumentParser, prefix: str):  # -> Iterator[(command, parser, action)]
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield f"{prefix} {name}", sub, None
                yield from _walk(sub, f"{prefix} {name}")
        elif not isinstance(a, (argparse._HelpAction, argparse._VersionAction)):
            yield prefix, parser, a


ITEMS = list(_walk(build_parser(), "semjscc"))


def test_every_command_has_a_description() -> None:
    missing = [cmd for cmd, p, a in ITEMS if a is None and not p.description]
    assert not missing, missing


def test_help_texts_render_percent_signs_once() -> None:
    """argparse %-formats option help but not descriptions: '%%' in a description prints as it stands."""
    doubled = [cmd for cmd, p, a in ITEMS if a is None and "%%" in p.format_help()]
    assert not doubled, doubled


@pytest.mark.parametrize(("cmd", "action"), [(c, a) for c, _p, a in ITEMS if a is not None],
                         ids=lambda x: x if isinstance(x, str) else (x.option_strings or [x.dest])[0])
def test_every_option_says_what_it_is_and_its_default(cmd: str, action: argparse.Action) -> None:
    name = (action.option_strings or [action.dest])[0]
    assert action.help, f"{cmd} {name}: no help text"
    if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
        assert "default" in action.help, f"{cmd} {name}: default {action.default!r} not shown"
    want = PLACEHOLDERS.get(name)
    if want and action.metavar:
        assert action.metavar in (want if isinstance(want, tuple) else (want,)), f"{cmd} {name}: {action.metavar}"


def test_examples_in_help_texts_parse() -> None:
    """`run --help` once suggested `--set rate=1/2`, which sim_separate.grc does not take."""
    text = " ".join(a.help or "" for _c, _p, a in ITEMS if a is not None)
    assert "--set rate=" not in text and "--set code_rate=1/2" in text


def test_the_runtime_install_runs_the_cli_without_torch() -> None:
    """`scripts/setup.sh runtime` installs no torch (make demo): building the parser, every help text
    and the demo's imports must not need it."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"  # `import torch` now raises ImportError
            "from semjscc.cli.main import build_parser, main\n"
            "build_parser()\n"
            "import semjscc.cli.demo, semjscc.gr.sim_loopback\n"
            "for cmd in (['--help'], ['train', 'receiver', '--help'], ['run', '--help'], ['demo', '--help']):\n"
            "    try:\n"
            "        main(cmd)\n"
            "    except SystemExit as e:\n"
            "        assert e.code == 0, (cmd, e.code)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]


def test_commands_that_need_torch_say_what_installs_it(tmp_path: Path) -> None:
    """On the runtime install (`make demo`: no torch), training, export and importance maps end with
    one line naming the set-up command, exit 2, instead of a ModuleNotFoundError traceback."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "from semjscc.cli.main import main\n"
            f"out = {str(tmp_path)!r}\n"
            "for cmd in (['train', 'jscc', '--limit', '4', '--epochs', '1', '--out', out + '/j.pt'],\n"
            "            ['importance', '--n', '2', '--out', out + '/i.png'],\n"
            "            ['export', '--classifier', 'models/classifier/classifier.pt', '--name', 'c', '--out', out]):\n"
            "    assert main(cmd) == 2, cmd\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in r.stderr
    needs = [ln for ln in lines if "this command needs torch" in ln and "make setup-dev" in ln]
    assert len(needs) == 3, lines
