"""Every GRC block description matches its Python block: the make template calls a class that
``semjscc.gr`` exports, with keyword arguments the constructor takes, one per declared parameter."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
pytest.importorskip("gnuradio.gr")

from semjscc.grc.install import blocks_dir  # noqa: E402

YMLS = sorted(Path(blocks_dir()).glob("semjscc_*.block.yml"))


def test_every_block_has_a_description() -> None:
    import semjscc.gr

    described = {_make(p)[0] for p in YMLS}
    assert described == set(semjscc.gr.__all__)


def _make(path: Path) -> tuple[str, str]:
    """(class name, the call) of a block's make template."""
    t = yaml.safe_load(path.read_text())["templates"]
    assert t["imports"].strip() == "from semjscc import gr as semjscc_gr"  # one import style: no clash with gnuradio.gr
    m = re.search(r"semjscc_gr\.(\w+)\(([^)]*)\)", " ".join(t["make"].split()))
    assert m, t["make"]
    return m.group(1), m.group(2)


@pytest.mark.parametrize("path", YMLS, ids=[p.name for p in YMLS])
def test_block_yaml_matches_constructor(path: Path) -> None:
    import semjscc.gr

    doc = yaml.safe_load(path.read_text())
    assert doc["id"] == path.name.removesuffix(".block.yml") and doc["file_format"] == 1
    name, make = _make(path)
    kwargs = dict(re.findall(r"(\w+)=\$\{\s*(\w+)\s*\}", make))
    accepted = set(inspect.signature(getattr(semjscc.gr, name).__init__).parameters) - {"self"}
    assert set(kwargs) <= accepted, f"{path.name}: make passes {set(kwargs) - accepted} that {name}() does not take"
    declared = {p["id"] for p in doc.get("parameters", [])}
    assert set(kwargs.values()) <= declared, f"{path.name}: make uses undeclared {set(kwargs.values()) - declared}"
    assert declared <= set(kwargs.values()) | {"gui_hint"}, f"{path.name}: parameters never passed: {declared - set(kwargs.values())}"
