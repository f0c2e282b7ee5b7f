"""The bad-input harness: every case of tests/bad_inputs.yaml, its fixtures, how it runs and how it is
judged. tests/test_bad_input.py runs the cases; scripts/bad_input_table.py renders what they did as
the tables of docs/bad-input.md (:func:`table_row` gives each case's row).

Two kinds of case (the data file's comment describes the fields):

* ``cli``: ``semjscc ARGV``, in this process through ``semjscc.cli.main.main`` (``test: inprocess``, the
  default) or as a ``python -m semjscc.cli.main`` subprocess (``test: subprocess``), in a scratch folder
  with ``QT_QPA_PLATFORM=offscreen``, a throwaway HOME and cache, and ``SEMJSCC_DATA`` set to a tiny
  fake CIFAR-10 (so no case decodes the real dataset); exit status, stdout and stderr are captured.
* ``blocks``: a Python snippet run in this process against the GNU Radio blocks (``g`` is
  ``semjscc.gr``, ``fx`` the fixtures, ``link()`` sends frames through encoder -> OFDM TX -> OFDM RX
  -> decoder); what it raises is captured.

Fixtures (``{name}`` in an argv or env value, ``fx["name"]`` in a snippet) are built on first use
under one temporary folder: truncated copies of the shipped ONNX models, a text file named ``.pt``,
a truncated ``.sigmf-meta``, pictures of the wrong size, a modified ``sim_loopback.grc``, tiny
untrained models with another symbol count, a short simulated ``semjscc ota`` recording, ...

A case fails when its exit status (or exception class) differs from the expected one, when the
expected text is missing from its message, or when a Python traceback shows. Cases marked ``xfail``
(known gaps, with the reason) are reported but do not fail; one that starts passing does.
"""

from __future__ import annotations

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
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CASES_FILE = REPO / "tests" / "bad_inputs.yaml"
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
    error: str | None = None  # blocks: expected semjscc.util.errors class name, None = must not raise
    test: str = "inprocess"  # how tests/test_bad_input.py runs it: inprocess, subprocess or skip
    xfail: str = ""  # a known gap: why it does not behave yet
    slow: bool = False  # takes seconds (a subprocess that loads models or compiles a flowgraph): not in test-fast
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

    def _make_grc_mismatch(self) -> Path:
        """flowgraphs/sim_loopback.grc whose receive half decodes with the tiny k/n 1/12 model (256 symbols)
        while its transmit half sends the shipped model's 512: every frame is a length mismatch."""
        import yaml

        doc = yaml.safe_load((REPO / "flowgraphs" / "sim_loopback.grc").read_text())
        rx = next(b for b in doc["blocks"] if b["id"] == "semjscc_jscc_rx")
        rx["parameters"]["model"] = repr(self["zoo"] + "/jscc-kn12")
        rx["parameters"]["classifier"] = repr(self["zoo"] + "/classifier")
        return self._file("sim_loopback_mismatch.grc", yaml.safe_dump(doc, sort_keys=False))

    def _make_grc_errors(self) -> Path:
        """flowgraphs/sim_loopback.grc with two parameters GRC cannot evaluate."""
        import yaml

        doc = yaml.safe_load((REPO / "flowgraphs" / "sim_loopback.grc").read_text())
        for b in doc["blocks"]:
            if b["id"] == "semjscc_image_source":
                b["parameters"]["max_in_flight"] = "bogus_variable"
            if b["id"] == "semjscc_metrics_sink":
                b["parameters"]["loss_timeout_s"] = "1/0"
        return self._file("sim_loopback_errors.grc", yaml.safe_dump(doc, sort_keys=False))

    def _int8_classifier(self, name: str, edit: Any) -> Path:
        """A copy of the shipped classifier (fp32 + int8 files) with its int8 file edited by
        ``edit(directory, int8 path)``."""
        d = self.root / name
        if not d.is_dir():
            shutil.copytree(REPO / "models" / "classifier", d)
            edit(d, d / "classifier.int8.onnx")
        return d

    def _make_int8_claims_fp32(self) -> Path:
        """The card's int8 entry names a copy of the fp32 file, its sha256 and size updated to match."""
        def edit(d: Path, f: Path) -> None:
            from semjscc.zoo.card import ModelCard, sha256_file

            shutil.copyfile(d / "classifier.onnx", f)
            card = ModelCard.load(d)
            card.int8["files"]["classifier"].update(sha256=sha256_file(f), bytes=f.stat().st_size)
            card.save(d)

        return self._int8_classifier("int8-claims-fp32", edit)

    def _make_int8_tampered(self) -> Path:
        """The int8 file with one byte changed after quantization (card untouched)."""
        def edit(_d: Path, f: Path) -> None:
            data = bytearray(f.read_bytes())
            data[len(data) // 2] ^= 0xFF
            f.write_bytes(bytes(data))

        return self._int8_classifier("int8-tampered", edit)

    def _make_zoo(self) -> Path:
        """tests/gr_tiny_zoo.py's tiny untrained models: jscc-kn6 (512 symbols), jscc-kn12 (256), classifier."""
        from gr_tiny_zoo import tiny_zoo

        root = self.root

        class _Base:
            def getbasetemp(self) -> Path:
                return root

        return tiny_zoo(_Base())  # type: ignore[arg-type]

    def _make_ota_results(self) -> Path:
        """The folder of the recording fixture: an ota run's results."""
        return Path(self["recording"]).parent

    def _make_recording(self) -> Path:
        """A 2-image `semjscc ota --uri sim` recording made with jscc-semantic-kn6 (512 symbols)."""
        return self._ota_recording("ota-recording", 2)

    def _ota_recording(self, name: str, images: int) -> Path:
        """The .sigmf-meta of a `semjscc ota --uri sim` run of ``images`` images in batches of 2."""
        out = self.root / name
        meta = out / "recording.sigmf-meta"
        if not meta.is_file():
            env = {**os.environ, **self.env()}
            r = subprocess.run([sys.executable, "-m", "semjscc.cli.main", "ota", "--uri", "sim", "--snr", "10", "--images",
                                str(images), "--calibration", str(REPO / "calibration" / "examples" / "sim-0.yaml"),
                                "--batch", "2", "--no-sim", "--no-progress", "--out", str(out)],
                               cwd=self["scratch"], env=env, capture_output=True, text=True, timeout=300)
            if r.returncode != 0 or not meta.is_file():
                raise RuntimeError(f"could not record the ota fixture {name}: {r.stderr[-2000:]}")
        return meta

    # --- hostile inputs (issue: bounded readers, crash-safe files, honest replays) -------------------
    def _cifar_folder_with(self, name: str, member: str, data: bytes | None = None) -> Path:
        """A CIFAR-10 folder layout with one odd test image (``data``: bytes; None: leave it to the caller)."""
        root = self.root / name
        for split in ("train", "test"):
            self._png(root / split / "cat" / "0000.png", 32, 1)
        if data is not None:
            (root / "test" / "cat" / member).write_bytes(data)
        return root

    def _make_cifar_train_postscript(self) -> Path:
        """A CIFAR-10 folder whose *training* split holds a PostScript file named .jpg (what int8 calibrates on)."""
        root = self._cifar_folder_with("cifar-train-eps", "0000.png")
        (root / "train" / "cat" / "0001.jpg").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\n")
        return root

    def _make_tar_huge_member(self) -> Path:
        """A tiny .tar.gz whose header declares a 64 GiB image member (the body is missing)."""
        import gzip
        import io as _io
        import tarfile as _tarfile

        info = _tarfile.TarInfo("cifar/test/cat/0000.jpg")
        info.size = 64 << 30
        raw = info.tobuf(format=_tarfile.GNU_FORMAT) + b"\0" * 512
        buf = _io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb") as gz:
            gz.write(raw)
        return self._file("huge-member.tar.gz", buf.getvalue())

    def _make_pickle_huge_array(self) -> Path:
        """A cifar-10-batches-py folder whose test_batch (under 100 bytes) asks numpy for a 16 TiB array."""
        import numpy as np

        class Huge:
            def __reduce__(self) -> tuple:
                return (np.ndarray, ((1 << 44,), "u1"))

        return self._pickles("pickle-huge", pickle.dumps({b"data": Huge(), b"labels": [0]}, protocol=2))

    def _make_pickle_float_nan(self) -> Path:
        """Batches whose pixel data are float64 NaN (numpy would cast them to bytes with a warning only)."""
        import numpy as np

        return self._pickles("pickle-nan", pickle.dumps({b"data": np.full((1, 3072), np.nan), b"labels": [0]}, protocol=2))

    def _make_tar_dotdot_member(self) -> Path:
        """A .tar.gz whose image member is named ../test/cat/x.png."""
        import io
        import tarfile

        p = self.root / "dotdot.tar.gz"
        if not p.exists():
            with tarfile.open(p, "w:gz") as t:
                ti = tarfile.TarInfo("../test/cat/x.png")
                ti.size = 4
                t.addfile(ti, io.BytesIO(b"\x89PNG"))
        return p

    def _pickles(self, name: str, data: bytes) -> Path:
        """A cifar-10-batches-py folder whose six batch files all hold ``data``."""
        d = self.root / name / "cifar-10-batches-py"
        d.mkdir(parents=True, exist_ok=True)
        for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            (d / f).write_bytes(data)
        return d.parent

    def _make_pickle_ragged(self) -> Path:
        """A test_batch whose data is not a whole number of 32x32x3 images."""
        import numpy as np

        return self._pickles("pickle-ragged", pickle.dumps({b"data": np.zeros((1, 3000), np.uint8), b"labels": [0]},
                                                           protocol=2))

    def _make_pickle_bad_labels(self) -> Path:
        import numpy as np

        return self._pickles("pickle-labels", pickle.dumps({b"data": np.zeros((2, 3072), np.uint8),
                                                            b"labels": [0, 12]}, protocol=2))

    def _make_cifar_huge_png(self) -> Path:
        """A CIFAR-10 folder with a 10000x10000 PNG (a few KB: one bit per pixel, all zero)."""
        import io as _io

        from PIL import Image

        buf = _io.BytesIO()
        Image.new("1", (10000, 10000)).save(buf, format="PNG")
        return self._cifar_folder_with("cifar-huge-png", "0001.png", buf.getvalue())

    def _make_cifar_postscript(self) -> Path:
        """A CIFAR-10 folder with a PostScript file named .jpg (never handed to PIL's EPS reader)."""
        return self._cifar_folder_with("cifar-eps", "0001.jpg", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\n")

    def _make_cifar_dir_named_jpg(self) -> Path:
        root = self._cifar_folder_with("cifar-dir-jpg", "x")
        (root / "test" / "cat" / "0001.jpg").mkdir(exist_ok=True)
        return root

    def _make_cifar_dangling_jpg(self) -> Path:
        root = self._cifar_folder_with("cifar-dangling", "x")
        link = root / "test" / "cat" / "0001.jpg"
        if not link.is_symlink():
            link.symlink_to(self.root / "nowhere.jpg")
        return root

    def _make_cifar_macos(self) -> Path:
        """A CIFAR-10 folder with macOS ._ metadata beside the images: skipped, not refused."""
        return self._cifar_folder_with("cifar-macos", "._0000.png", b"\x00\x05\x16\x07 AppleDouble")

    def _make_pictures_huge(self) -> Path:
        import io as _io

        from PIL import Image

        p = self.root / "pictures-huge"
        p.mkdir(exist_ok=True)
        buf = _io.BytesIO()
        Image.new("1", (10000, 10000)).save(buf, format="PNG")
        (p / "big.png").write_bytes(buf.getvalue())
        return p

    def _make_pictures_zero_link(self) -> Path:
        p = self.root / "pictures-zero"
        p.mkdir(exist_ok=True)
        if not (p / "x.png").is_symlink():
            (p / "x.png").symlink_to("/dev/zero")
        return p

    def _make_fifo(self) -> Path:
        """A named pipe with nobody writing to it: whoever opens it for reading blocks."""
        p = self.root / "pipe.pt"
        if not p.exists():
            os.mkfifo(p)
        return p

    def _make_pictures_fifo(self) -> Path:
        p = self.root / "pictures-fifo"
        p.mkdir(exist_ok=True)
        if not (p / "x.png").exists():
            os.mkfifo(p / "x.png")
        return p

    def _card_dir(self, name: str, edit: Any) -> Path:
        """A copy of the tiny zoo's jscc-kn6 whose card.yaml is edited by ``edit(text) -> text``."""
        d = self.root / name
        if not d.is_dir():
            shutil.copytree(Path(self["zoo"]) / "jscc-kn6", d)
            card = d / "card.yaml"
            card.write_text(edit(card.read_text()))
        return d

    def _make_card_version_string(self) -> Path:
        import re as _re

        return self._card_dir("card-version-string",
                              lambda text: _re.sub(r"^card_version: .*$", "card_version: '2'", text, flags=_re.M))

    def _make_zoo_with_bad_card(self) -> Path:
        """A models folder holding one good model and one whose card_version is a string."""
        d = self.root / "zoo-bad-card"
        if not d.is_dir():
            shutil.copytree(Path(self["zoo"]) / "classifier", d / "classifier")
            shutil.copytree(self["card_version_string"], d / "zz-broken")  # listed last
        return d

    def _make_card_alias_bomb(self) -> Path:
        bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
        return self._card_dir("card-bomb", lambda text: bomb + text)

    def _make_card_nan_kn(self) -> Path:
        import re as _re

        return self._card_dir("card-nan", lambda text: _re.sub(r"^kn: .*$", "kn: .nan", text, flags=_re.M))

    def _make_card_files_list(self) -> Path:
        import re as _re

        return self._card_dir("card-files-list",
                              lambda text: _re.sub(r"^files:\n(?:  .*\n)+", "files: [1, 2]\n", text, flags=_re.M))

    def _make_card_outside(self) -> Path:
        return self._card_dir("card-outside", lambda text: text.replace("file: encoder.onnx", "file: ../x/encoder.onnx"))

    def _make_card_receiver_gone(self) -> Path:
        """The tiny jscc-kn6 beside its clean classifier, its card naming a receiver that is not there."""
        d = self.root / "receiver-gone"
        if not d.is_dir():
            shutil.copytree(Path(self["zoo"]) / "classifier", d / "classifier")
            shutil.copytree(Path(self["zoo"]) / "jscc-kn6", d / "jscc-kn6")
            card = d / "jscc-kn6" / "card.yaml"
            card.write_text(card.read_text() + "receiver: ../gone\n")
        return d / "jscc-kn6"

    def _make_profile_nan_rate(self) -> Path:
        """The example sim-0 profile with its sample rate edited to NaN."""
        import re as _re

        p = self.root / "profile-nan-rate.yaml"
        text = (REPO / "calibration" / "examples" / "sim-0.yaml").read_text()
        p.write_text(_re.sub(r"^sample_rate: .*$", "sample_rate: .nan", text, flags=_re.M))
        return p

    def _make_model_without_card(self) -> Path:
        """The tiny jscc-kn6 with its card.yaml removed."""
        d = self.root / "no-card" / "jscc-kn6"
        if not d.is_dir():
            shutil.copytree(Path(self["zoo"]) / "jscc-kn6", d)
            (d / "card.yaml").unlink()
        return d

    def _make_onnx_wrong_output(self) -> Path:
        """A model directory whose encoder's metadata and card say 512 symbols, but whose graph emits 256
        (the tiny k/n 1/12 encoder with edited metadata)."""
        import onnx

        d = self.root / "onnx-wrong-output"
        if not d.is_dir():
            shutil.copytree(Path(self["zoo"]) / "jscc-kn6", d)
            m = onnx.load(str(Path(self["zoo"]) / "jscc-kn12" / "encoder.onnx"))
            ref = {p.key: p.value for p in onnx.load(str(d / "encoder.onnx")).metadata_props}
            del m.metadata_props[:]
            for k, v in ref.items():
                m.metadata_props.add(key=k, value=v)
            onnx.save(m, str(d / "encoder.onnx"))
            import hashlib as _hashlib
            import re as _re

            data = (d / "encoder.onnx").read_bytes()
            card = (d / "card.yaml").read_text()
            card = _re.sub(r"(encoder:\n    file: encoder.onnx\n    sha256: )\w+(\n    bytes: )\d+",
                           lambda mm: f"{mm.group(1)}{_hashlib.sha256(data).hexdigest()}{mm.group(2)}{len(data)}", card)
            (d / "card.yaml").write_text(card)
        return d

    def _nonfinite_model(self, name: str, role: str, value: float) -> Path:
        """The tiny jscc-kn6 whose ``role`` ONNX graph adds ``value`` (NaN or inf) to its output: a broken
        export that still matches its card (sha256 re-recorded)."""
        import hashlib as _hashlib
        import re as _re

        import numpy as _np
        import onnx
        from onnx import helper, numpy_helper

        d = self.root / name / "jscc-kn6"  # beside a copy of its classifier, as in a models/ folder
        if not d.is_dir():
            shutil.copytree(Path(self["zoo"]) / "classifier", d.parent / "classifier")
            shutil.copytree(Path(self["zoo"]) / "jscc-kn6", d)
            f = d / f"{role}.onnx"
            m = onnx.load(str(f))
            out = m.graph.output[0].name
            for node in m.graph.node:
                node.output[:] = [f"{out}_pre" if o == out else o for o in node.output]
            m.graph.initializer.append(numpy_helper.from_array(_np.array(value, dtype=_np.float32), f"{out}_bad"))
            m.graph.node.append(helper.make_node("Add", [f"{out}_pre", f"{out}_bad"], [out]))
            onnx.save(m, str(f))
            data = f.read_bytes()
            card = (d / "card.yaml").read_text()
            card = _re.sub(rf"({role}:\n    file: {role}.onnx\n    sha256: )\w+(\n    bytes: )\d+",
                           lambda mm: f"{mm.group(1)}{_hashlib.sha256(data).hexdigest()}{mm.group(2)}{len(data)}", card)
            (d / "card.yaml").write_text(card)
        return d

    def _make_encoder_out_nan(self) -> Path:
        return self._nonfinite_model("enc-out-nan", "encoder", float("nan"))

    def _make_decoder_out_inf(self) -> Path:
        return self._nonfinite_model("dec-out-inf", "decoder", float("inf"))

    def _make_jscc_wrong_shapes(self) -> Path:
        """A jscc checkpoint whose weights do not fit its config."""
        import torch

        p = self.root / "wrong-shapes.pt"
        if not p.exists():
            from dataclasses import asdict

            from semjscc.nn.config import JSCCConfig
            from semjscc.nn.jscc import JSCC

            torch.save({"kind": "jscc", "config": asdict(JSCCConfig(width=8)), "model": JSCC(1 / 6, 4).state_dict()}, p)
        return p

    def _recording_edit(self, name: str, edit: Any, source: str = "recording") -> Path:
        """A copy of the ``source`` recording fixture whose .sigmf-meta JSON is changed by ``edit(doc)``."""
        d = self.root / name
        meta = d / "recording.sigmf-meta"
        if not meta.is_file():
            d.mkdir(parents=True, exist_ok=True)
            src = Path(self[source])
            shutil.copy(src.with_suffix(".sigmf-data"), d / "recording.sigmf-data")
            doc = json.loads(src.read_text())
            edit(doc)
            meta.write_text(json.dumps(doc))
        return meta

    def _make_recording_ri16(self) -> Path:
        return self._recording_edit("rec-ri16", lambda d: d["global"].__setitem__("core:datatype", "ri16_le"))

    def _make_recording_negative_index(self) -> Path:
        def edit(d: dict) -> None:
            d["captures"][0]["semjscc:frames"][0]["image_index"] = -1

        return self._recording_edit("rec-negative", edit)

    def _make_recording_no_window(self) -> Path:
        return self._recording_edit("rec-no-window", lambda d: d["captures"][0].pop("semjscc:window"))

    def _make_recording_short(self) -> Path:
        """Metadata claiming more samples than the data file holds."""
        def edit(d: dict) -> None:
            d["global"]["semjscc:samples"] = int(d["global"]["semjscc:samples"]) + 1000

        return self._recording_edit("rec-short", edit)

    def _make_recording_two_captures(self) -> Path:
        """A 4-image recording in two batches (two captures)."""
        return self._ota_recording("ota-recording-2", 4)

    def _make_recording_captures_swapped(self) -> Path:
        """The two-capture recording with its captures' starts swapped (out of order)."""
        def edit(d: dict) -> None:
            a, b = d["captures"][0], d["captures"][1]
            a["core:sample_start"], b["core:sample_start"] = b["core:sample_start"], a["core:sample_start"]

        return self._recording_edit("rec-swapped", edit, source="recording_two_captures")

    def _make_recording_no_captures(self) -> Path:
        return self._recording_edit("rec-no-captures", lambda d: d.__setitem__("captures", []))

    def _make_recording_nan_window(self) -> Path:
        return self._recording_edit("rec-nan-window", lambda d: d["captures"][0].__setitem__("semjscc:window",
                                                                                             [0, float("nan")]))

    def _make_recording_zero_rate(self) -> Path:
        return self._recording_edit("rec-zero-rate", lambda d: d["global"].__setitem__("core:sample_rate", 0))

    def _make_recording_relabelled(self) -> Path:
        def edit(d: dict) -> None:
            f = d["captures"][0]["semjscc:frames"][0]
            f["label"] = (int(f["label"]) + 1) % 10

        return self._recording_edit("rec-relabelled", edit)

    def _make_recording_symbols_text(self) -> Path:
        return self._recording_edit("rec-symbols-text", lambda d: d["global"]["semjscc:experiment"]["models"]
                                    .__setitem__("n_symbols", "abc"))

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
    ``semjscc.cli.main.main`` in this process with stdout/stderr captured, SystemExit caught and the
    environment and cwd restored afterwards."""
    argv = [fx.fill(a) for a in case.argv]
    env = {**fx.env(), **{k: fx.fill(v) for k, v in case.env.items()}}
    cwd = fx["scratch"]
    timeout = case.timeout if timeout is None else timeout
    t0 = time.monotonic()
    if not inprocess:
        try:
            r = subprocess.run([sys.executable, "-m", "semjscc.cli.main", *argv], cwd=cwd, env={**os.environ, **env},
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            return Outcome(None, out, f"(killed: no exit within {timeout:g} s)", seconds=time.monotonic() - t0)
        return Outcome(r.returncode, r.stdout, r.stderr, traceback="Traceback (most recent call last)" in r.stderr,
                       seconds=time.monotonic() - t0)
    from semjscc.cli import main as cli

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


def link(enc: str, dec: str | None = None, frames: int = 3) -> str:
    """Send ``frames`` random images through JSCC TX (encoder -> OFDM TX) -> OFDM RX -> JSCC decoder;
    what the decoder saw, as text (for the snippets of block cases)."""
    from semjscc import gr as sg

    return link_blocks(sg.jscc_tx(enc, device="cpu"), sg.jscc_decoder(dec or enc, device="cpu"), frames)


def link_blocks(tx: Any, dec: Any, frames: int = 3) -> str:
    """``frames`` random images through a transmit half ``tx`` -> OFDM RX -> decoder ``dec``."""
    import numpy as np
    import pmt
    from gnuradio import gr
    from semjscc import gr as sg
    from semjscc.gr.pdus import u8_vector

    class _Link(gr.top_block):
        def __init__(self) -> None:
            gr.top_block.__init__(self, "bad-input link")
            self.tx, self.rx, self.dec = tx, sg.ofdm_rx(), dec
            self.connect(self.tx, self.rx)
            self.msg_connect(self.rx, "pdus", self.dec, "in")

    tb = _Link()
    tb.start()
    try:
        rng = np.random.default_rng(0)
        for i in range(frames):
            img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            tx.enc.to_basic_block()._post(pmt.intern("in"), pmt.cons(pmt.to_pmt({"frame_number": i}), u8_vector(img)))
        t0 = time.monotonic()
        while dec.frames_in < frames and time.monotonic() - t0 < 20:
            time.sleep(0.02)
    finally:
        tb.stop()
        tb.wait()
    return f"decoded {dec.frames_in - dec.corrupt - dec.header_failures}, length_mismatch {dec.length_mismatch}"


def run_block(case: Case, fx: Fixtures) -> Outcome:
    """Run a blocks case's snippet in this process. Its ``result`` variable (if any) becomes the
    message when nothing is raised."""
    import numpy as np
    from semjscc import gr as sg
    from semjscc.util.errors import SemJSCCError

    ns: dict[str, Any] = {"g": sg, "fx": fx, "link": link, "link_blocks": link_blocks, "np": np}
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
        from semjscc.util import errors

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


# --- a row of the document's tables ------------------------------------------------------------------

def shown(text: str, fx: Fixtures) -> str:
    """A path-independent rendering: the fixture folder as $TMP, the checkout as $REPO."""
    root = str(fx.root)
    real = os.path.realpath(root)
    text = text.replace(real, "$TMP").replace(root, "$TMP") if root else text
    text = re.sub(r"/tmp/pytest-of-[^/]+/pytest-\d+", "$TMP", text)  # pytest's base folder (the tiny zoo)
    return text.replace(str(REPO), "$REPO")


def table_row(case: Case, o: Outcome, found: list[str], fx: Fixtures) -> dict[str, Any]:
    """What docs/bad-input.md shows of a case (paths made machine-independent)."""
    row: dict[str, Any] = {"id": case.id, "kind": case.kind, "exit": o.exit, "error": o.error,
                           "traceback": o.traceback, "problems": found, "xfail": case.xfail, "note": case.note,
                           "seconds": round(o.seconds, 2)}
    if case.kind == "cli":
        row["env"] = " ".join(f"{k}={shown(fx.fill(v), fx)}" for k, v in case.env.items())
        row["command"] = shown("semjscc " + " ".join(shlex.quote(fx.fill(a)) for a in case.argv), fx)
        msg = shown(o.message, fx) or "(no output)"
        row["message"] = "(stdout) " + msg if not o.stderr.strip() and o.stdout.strip() else msg
    else:
        row["code"] = "; ".join(ln.strip() for ln in case.code.strip().splitlines() if ln.strip())
        msg = o.message.removeprefix(f"{o.error}: ") if o.error else (f"result: {o.message}" if o.message else "")
        row["message"] = shown(msg, fx)
    return row
