"""Model cards: the one definition of what a shipped model is and how to feed it.

A model directory under ``models/`` holds ONNX files and a ``card.yaml``::

    models/jscc-mse-kn6/
        encoder.onnx   images (B,3,32,32) float32 in [0,1], snr_db (B,) -> symbols (B,k,2)
        decoder.onnx   symbols (B,k,2), snr_db (B,) -> images (B,3,32,32) in [0,1]
        card.yaml      this card, with the sha256 of each file
    models/classifier/
        classifier.onnx  images (B,3,32,32) in [0,1] -> logits (B,10)
        card.yaml

The same card (less the file hashes, which a file cannot hold of itself) is embedded in every
ONNX file's ``metadata_props`` under the ``semjscc.`` prefix, so a bare .onnx copied out of its
directory still says what it is. This module imports neither torch nor onnx: the CLI's
``models`` listing and the runtime read cards with nothing but PyYAML.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from semjscc.data.imaging import IMAGE_SHAPE
from semjscc.util.errors import DataError, ModelError
from semjscc.util.files import load_yaml, read_regular

CARD_FILE = "card.yaml"
SIBLING_FIELDS = ("files", "weights", "weights_sha256", "int8")  # what only card.yaml knows: the files beside the ONNX
CARD_VERSION = 1
MAX_CARD_BYTES = 1 << 20  # a card is a few KB
META_PREFIX = "semjscc."
OPSET = 18  # ONNX Runtime >= 1.14 runs opset 18: old enough for distribution packages, new enough for the exporter
PIXEL_FORMAT = "float32 NCHW in [0,1]; classifier standardises internally"

# Which files a model directory of each kind holds: role -> file name.
KIND_FILES: dict[str, dict[str, str]] = {
    "jscc": {"encoder": "encoder.onnx", "decoder": "decoder.onnx"},
    "classifier": {"classifier": "classifier.onnx"},
}
ROLES = ("encoder", "decoder", "classifier")
PRECISIONS = ("fp32", "int8")  # what a file holds; "auto" (the runtime's choice) is not a file's precision


def int8_file_name(fp32_name: str) -> str:
    """encoder.onnx -> encoder.int8.onnx: the quantized file lies beside its fp32 source."""
    return fp32_name.removesuffix(".onnx") + ".int8.onnx"

# Graph input/output names, fixed so every consumer (runtime, GNU Radio blocks) can rely on them.
IO_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "encoder": (("images", "snr_db"), ("symbols",)),
    "decoder": (("symbols", "snr_db"), ("images",)),
    "classifier": (("images",), ("logits",)),
}


@dataclass
class ModelFile:
    """One ONNX file of a model directory, as the card records it."""

    file: str
    sha256: str
    bytes: int


@dataclass
class ModelCard:
    """Everything needed to use, trust and reproduce one model directory."""

    name: str
    kind: str  # "jscc" (encoder + decoder) or "classifier"
    files: dict[str, ModelFile] = field(default_factory=dict)  # role -> file; not embedded in the ONNX files
    dataset: str = "CIFAR-10"
    image_shape: list[int] = field(default_factory=lambda: list(IMAGE_SHAPE))
    pixels: str = PIXEL_FORMAT
    width: int | None = None  # architecture width (channels of the first stage)
    # deep JSCC only
    kn: float | None = None  # bandwidth ratio k/n (complex symbols per real source value)
    n_symbols: int | None = None  # complex channel symbols per image (k)
    snr_adaptive: bool | None = None  # SNR attention: one model for the whole training SNR range
    snr_db: list[float] | None = None  # training SNRs [lo, hi] in dB (Es/N0); lo == hi for fixed-SNR models
    loss: str | None = None  # "mse" or "semantic"
    channel: str | None = None  # training channel: awgn, rayleigh or ofdm
    classifier: str | None = None  # the clean classifier it was trained against: its model directory, relative
    receiver: str | None = None  # the receiver classifier it is meant for (adapted to decodes), relative
    weights: str | None = None  # the weights-only torch checkpoint beside the ONNX files (gradients, parity)
    weights_sha256: str | None = None
    adapted: dict[str, Any] | None = None  # a receiver classifier: what it was fine-tuned on (sources, start)
    # classifier only
    num_classes: int | None = None
    # provenance
    opset: int = OPSET
    exporter: str | None = None
    export_id: str | None = None  # shared by the files of one export: tells apart pairs that merely agree in shape
    source: dict[str, Any] | None = None  # checkpoint path, sha256 and epoch the export came from
    train_command: str | None = None
    export_command: str | None = None
    export_parity: dict[str, float] | None = None  # max |ONNX Runtime - torch| per file, checked at export
    eval: dict[str, Any] | None = None  # evaluation results (``semjscc eval`` JSON), optional
    # the numbers a file holds: "fp32" for ``files`` (and every file exported before int8 existed); an int8
    # file's embedded metadata says "int8", which is how a card that claims int8 for an fp32 file is caught
    precision: str = "fp32"
    # the int8 (ONNX Runtime static QDQ) files beside the fp32 ones and what is known of them: files (role ->
    # file, like ``files``), quantization, calibration (split, images, seed), export_parity, accuracy (the
    # measured paired int8 - fp32 difference) and use (role -> whether the runtime may pick it): see
    # semjscc.nn.quantize and semjscc.zoo.precision
    int8: dict[str, Any] | None = None
    card_version: int = CARD_VERSION

    # -- derived -------------------------------------------------------------------------------

    @property
    def int8_files(self) -> dict[str, ModelFile]:
        """role -> the int8 file the card lists (empty when it ships none)."""
        files = (self.int8 or {}).get("files") or {}
        return {role: ModelFile(**f) for role, f in files.items()}

    def int8_use(self, role: str) -> bool:
        """Whether the card says the role's int8 file held the accuracy tolerance (what ``auto`` needs)."""
        return bool(((self.int8 or {}).get("use") or {}).get(role, False))

    @property
    def kn_label(self) -> str | None:
        return kn_label(self.kn) if self.kn is not None else None

    def check(self, where: str) -> ModelCard:
        """Raise ModelError unless the card is internally consistent; ``where`` names its source."""
        if self.kind not in KIND_FILES:
            raise ModelError(f"{where}: kind {self.kind!r} is neither 'jscc' nor 'classifier'; re-export the model")
        if not isinstance(self.card_version, int) or isinstance(self.card_version, bool) or self.card_version < 1:
            raise ModelError(f"{where}: card_version must be a whole number >= 1, got {self.card_version!r}; "
                             f"re-export the model or restore card.yaml")
        if self.card_version > CARD_VERSION:
            raise ModelError(f"{where}: card version {self.card_version} is newer than this gr-semjscc understands "
                             f"({CARD_VERSION}); upgrade gr-semjscc")
        unknown = set(self.files) - set(KIND_FILES[self.kind])
        if unknown:
            raise ModelError(f"{where}: a {self.kind} model has no {'/'.join(sorted(unknown))} file; fix card.yaml")
        if self.kind == "jscc" and (self.kn is None or self.n_symbols is None):
            raise ModelError(f"{where}: a deep JSCC card needs kn and n_symbols; re-export the model")
        if self.precision not in PRECISIONS:
            raise ModelError(f"{where}: precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}; "
                             f"re-export the model or restore card.yaml")
        self._check_int8(where)
        self._check_values(where)
        return self

    def _check_values(self, where: str) -> None:
        """Types and ranges of what the runtime relies on: one ModelError line, never a traceback later."""
        def bad(field: str, what: str) -> ModelError:
            return ModelError(f"{where}: {field} must be {what}, got {getattr(self, field)!r}; re-export the model "
                              f"or restore card.yaml")

        def number(v: object) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        if not isinstance(self.name, str) or not self.name:
            raise bad("name", "a non-empty string")
        if self.kn is not None and not (number(self.kn) and 0 < self.kn < 1):
            raise bad("kn", "a number in (0, 1)")
        if self.n_symbols is not None and not (isinstance(self.n_symbols, int) and not isinstance(self.n_symbols, bool)
                                               and 0 < self.n_symbols <= 0xFFFF):
            raise bad("n_symbols", "an integer in 1..65535")
        if self.snr_db is not None and not (isinstance(self.snr_db, list) and 1 <= len(self.snr_db) <= 2
                                            and all(number(v) for v in self.snr_db)):
            raise bad("snr_db", "a list of one or two finite numbers of dB")
        if self.snr_adaptive is not None and not isinstance(self.snr_adaptive, bool):
            raise bad("snr_adaptive", "true or false")
        if not (isinstance(self.image_shape, list) and len(self.image_shape) == 3
                and all(isinstance(v, int) and 0 < v <= 4096 for v in self.image_shape)):
            raise bad("image_shape", "three positive integers")
        if self.num_classes is not None and not (isinstance(self.num_classes, int) and 0 < self.num_classes <= 100000):
            raise bad("num_classes", "a positive integer")
        for key in ("classifier", "receiver"):
            v = getattr(self, key)
            if v is not None and not isinstance(v, str):
                raise bad(key, "a model directory (text), relative to this card")
        for role, f in self.files.items():
            name = Path(str(f.file))
            if (not isinstance(f.file, str) or name.name != f.file or f.file in ("", ".", "..")
                    or not isinstance(f.sha256, str) or len(f.sha256) != 64
                    or not isinstance(f.bytes, int) or f.bytes < 0):
                raise ModelError(f"{where}: files.{role} must name a file in the card's own directory with its "
                                 f"sha256 (64 hex digits) and size, got file {str(f.file)[:80]!r}, a sha256 of "
                                 f"{len(str(f.sha256))} characters, bytes {str(f.bytes)[:20]}; re-export the model or "
                                 f"restore card.yaml")

    def _check_int8(self, where: str) -> None:
        if self.int8 is None:
            return
        files = self.int8.get("files") if isinstance(self.int8, dict) else None
        if not isinstance(files, dict) or not all(isinstance(f, dict) for f in files.values()):
            raise ModelError(f"{where}: int8 must be a mapping with files (role -> file, sha256, bytes); "
                             f"re-quantize with `semjscc export --model DIR --precision int8` or restore card.yaml")
        unknown = set(files) - set(KIND_FILES[self.kind])
        if unknown:
            raise ModelError(f"{where}: a {self.kind} model has no {'/'.join(sorted(unknown))} file; fix card.yaml")
        try:
            entries = self.int8_files
        except TypeError as e:
            raise ModelError(f"{where}: malformed int8 files ({e}); restore card.yaml") from None
        for role, f in entries.items():
            if not (isinstance(f.file, str) and Path(f.file).name == f.file and f.file.endswith(".onnx")
                    and isinstance(f.sha256, str) and len(f.sha256) == 64 and isinstance(f.bytes, int)):
                raise ModelError(f"{where}: int8.files.{role} must name an .onnx file in the card's own directory "
                                 f"with its sha256 and size; restore card.yaml")
            if role in self.files and self.files[role].file == f.file:
                raise ModelError(f"{where}: int8.files.{role} names the fp32 file {f.file}: a card claiming int8 "
                                 f"for its fp32 file; re-quantize with `semjscc export --model DIR --precision int8`")

    # -- YAML ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if v is not None}  # a classifier's card has no kn: null noise

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> ModelCard:
        if not isinstance(d, dict):
            raise ModelError(f"{where}: not a model card (expected a YAML mapping)")
        known = {f.name for f in dataclasses.fields(cls)}
        missing = {"name", "kind"} - set(d)
        if missing:
            raise ModelError(f"{where}: model card lacks {', '.join(sorted(missing))}; re-export the model")
        kwargs = {k: v for k, v in d.items() if k in known}  # keys from newer versions are ignored
        try:
            files = d.get("files") or {}
            if not isinstance(files, dict) or not all(isinstance(f, dict) for f in files.values()):
                raise TypeError("files must map each role to {file, sha256, bytes}")
            kwargs["files"] = {str(role): ModelFile(**f) for role, f in files.items()}
            card = cls(**kwargs)
        except TypeError as e:
            raise ModelError(f"{where}: malformed model card ({e}); re-export the model") from None
        return card.check(where)

    def save(self, directory: Path) -> Path:
        path = Path(directory) / CARD_FILE
        header = (f"# gr-semjscc model card ({self.kind}): written by `semjscc export`.\n"
                  "# The runtime refuses files whose sha256 differs from the one recorded here.\n")
        path.write_text(header + yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=4096))
        return path

    @classmethod
    def load(cls, directory: Path) -> ModelCard:
        path = Path(directory) / CARD_FILE
        if not path.exists() and not path.is_symlink():
            raise ModelError(f"{path} not found: not a model directory (`semjscc models` lists them)")
        try:
            text = read_regular(path, MAX_CARD_BYTES, "model card").decode("utf-8")
        except DataError as e:
            raise ModelError(str(e)) from None
        except UnicodeDecodeError:
            raise ModelError(f"{path} is not UTF-8 text; re-export the model") from None
        d = load_yaml(text, str(path), ModelError, "re-export the model")
        return cls.from_dict(d, str(path))

    # -- ONNX metadata_props -----------------------------------------------------------------------

    def to_metadata(self, role: str) -> dict[str, str]:
        """String key/values for one ONNX file's metadata_props (``semjscc.`` prefixed).

        Strings go in as they are (readable in Netron); everything else as JSON."""
        if role not in KIND_FILES[self.kind]:
            raise ValueError(f"a {self.kind} model has no {role} file")
        props = {META_PREFIX + "role": role}
        for k, v in self.to_dict().items():
            if k in SIBLING_FIELDS:  # a file cannot carry its own hash (nor its siblings'); the card holds them
                continue
            props[META_PREFIX + k] = v if k in _STR_FIELDS else json.dumps(v, sort_keys=True)
        return props

    @classmethod
    def from_metadata(cls, props: dict[str, str], where: str) -> tuple[ModelCard, str]:
        """(card without file hashes, role) from an ONNX file's metadata_props."""
        mine = {k[len(META_PREFIX):]: v for k, v in props.items() if k.startswith(META_PREFIX)}
        role = mine.pop("role", None)
        if role not in ROLES:
            raise ModelError(f"{where}: no gr-semjscc metadata (semjscc.role); export it with `semjscc export`")
        d: dict[str, Any] = {}
        for k, v in mine.items():
            if k in _STR_FIELDS:
                d[k] = v
            else:
                try:
                    d[k] = json.loads(v)
                except json.JSONDecodeError:
                    raise ModelError(f"{where}: metadata {META_PREFIX}{k} is not valid JSON; re-export the model") from None
        return cls.from_dict(d, where), role


def _str_fields() -> frozenset[str]:
    hints = typing.get_type_hints(ModelCard)
    return frozenset(k for k, t in hints.items() if t in (str, str | None))


_STR_FIELDS = _str_fields()


def kn_label(kn: float) -> str:
    """0.1666... -> '1/6' (the ratios the project uses are 1/N); other values as decimals."""
    inv = 1.0 / kn
    return f"1/{round(inv)}" if abs(inv - round(inv)) < 1e-6 else f"{kn:.4g}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
