"""ONNX Runtime sessions for the three model roles, with the checks a flowgraph needs.

Each session is opened once from the file's bytes (hashed against the card on the way, so
the file is read only once), logs the execution provider it actually got, and checks every
call's inputs against the model's metadata before ONNX Runtime sees them: a wrong shape or
dtype becomes one ModelError line instead of an ONNX Runtime stack trace from inside a
GNU Radio work() call.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semjscc.util.devices import check_device
from semjscc.util.errors import ModelError, UsageError
from semjscc.zoo.card import IO_NAMES, ModelCard, kn_label, sha256_bytes

log = logging.getLogger("semjscc.runtime")

DEVICE_ENV = "SEMJSCC_ORT_DEVICE"
THREADS_ENV = "SEMJSCC_ORT_THREADS"
# One intra-op thread by default: a flowgraph runs several blocks (and GNU Radio's own
# scheduler threads) at once, and these small convnets gain little from more threads at
# batch 1, so larger pools only steal cores from the rest of the radio. The other session
# options were chosen by `semjscc bench runtime --session-sweep` (docs/results.md, Throughput):
# full graph optimisation, sequential execution (the parallel executor only adds scheduling for
# these chain-shaped graphs; inter-op threads matter only to it).
DEFAULT_THREADS = 1
DEFAULT_INTER_THREADS = 1
GRAPH_OPTIMIZATIONS = ("all", "extended", "basic", "none")
EXECUTION_MODES = ("sequential", "parallel")
DEFAULT_GRAPH_OPTIMIZATION = "all"
DEFAULT_EXECUTION_MODE = "sequential"
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


@dataclass(frozen=True)
class RuntimeOptions:
    """How sessions are opened. ``device``: auto (CUDA when onnxruntime-gpu sees a GPU, else
    CPU), cpu, cuda or cuda:N. ``threads``/``inter_threads``: ONNX Runtime intra/inter-op
    thread counts. ``verify``: check sha256 against card.yaml."""

    device: str = "auto"
    threads: int = DEFAULT_THREADS
    inter_threads: int = DEFAULT_INTER_THREADS
    verify: bool = True
    graph_optimization: str = DEFAULT_GRAPH_OPTIMIZATION  # one of GRAPH_OPTIMIZATIONS
    execution_mode: str = DEFAULT_EXECUTION_MODE  # one of EXECUTION_MODES
    precision: str = "auto"  # auto, fp32 or int8 (semjscc.zoo.precision decides per file what auto means)

    @classmethod
    def make(cls, device: str | None = None, threads: int | None = None, inter_threads: int | None = None,
             verify: bool = True, graph_optimization: str = DEFAULT_GRAPH_OPTIMIZATION,
             execution_mode: str = DEFAULT_EXECUTION_MODE, precision: str | None = None) -> RuntimeOptions:
        """Options from arguments, falling back to $SEMJSCC_ORT_DEVICE / $SEMJSCC_ORT_THREADS /
        $SEMJSCC_PRECISION."""
        from semjscc.zoo.precision import check_request

        device = device or os.environ.get(DEVICE_ENV) or "auto"
        if threads is None:
            env = os.environ.get(THREADS_ENV)
            try:
                threads = int(env) if env else DEFAULT_THREADS
            except ValueError:
                raise UsageError(f"${THREADS_ENV}={env!r} is not an integer") from None
        inter_threads = DEFAULT_INTER_THREADS if inter_threads is None else inter_threads
        if threads < 1 or inter_threads < 1:
            raise UsageError(f"thread counts must be >= 1 (got threads={threads}, inter_threads={inter_threads})")
        if graph_optimization not in GRAPH_OPTIMIZATIONS or execution_mode not in EXECUTION_MODES:
            raise UsageError(f"graph optimisation must be one of {', '.join(GRAPH_OPTIMIZATIONS)} and execution mode "
                             f"one of {', '.join(EXECUTION_MODES)}, got {graph_optimization!r}, {execution_mode!r}")
        device = check_device(device)
        return cls(device, threads, inter_threads, verify, graph_optimization, execution_mode,
                   check_request(precision))


def _requested_providers(device: str) -> tuple[list[Any], bool, str]:
    """(providers to ask ONNX Runtime for, whether CUDA was asked for explicitly, why CUDA
    cannot work when that is already known)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return [CPU], False, ""
    explicit = device.startswith("cuda")
    if CUDA not in available:
        why = (f"this onnxruntime build has no CUDAExecutionProvider (available: {', '.join(available)}); "
               f"install onnxruntime-gpu in place of onnxruntime (pip install 'gr-semjscc[gpu]') or pass device=cpu")
        return [CPU], explicit, why
    device_id = int(device.partition(":")[2] or 0)
    return [(CUDA, {"device_id": device_id}), CPU], explicit, "no GPU visible, or CUDA/cuDNN libraries missing"


def open_session(data: bytes, label: str, options: RuntimeOptions) -> Any:
    """An onnxruntime.InferenceSession from model bytes; ModelError (one line, naming ``label``)
    when the bytes are not a loadable model."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = options.threads
    so.inter_op_num_threads = options.inter_threads
    so.execution_mode = {"sequential": ort.ExecutionMode.ORT_SEQUENTIAL,
                         "parallel": ort.ExecutionMode.ORT_PARALLEL}[options.execution_mode]
    so.graph_optimization_level = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                                   "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                   "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                   "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}[options.graph_optimization]
    # Idle pool threads must sleep, not spin: spinning burns the cores the flowgraph needs.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3  # ORT's own warnings are replaced by the log lines below
    providers, explicit_cuda, why = _requested_providers(options.device)
    try:
        sess = ort.InferenceSession(data, sess_options=so, providers=providers)
    except Exception as e:  # ORT raises Fail/InvalidProtobuf/RuntimeException for bad files
        reason = (str(e).strip().splitlines() or [type(e).__name__])[-1][:200]
        raise ModelError(f"{label} is not a loadable ONNX model (truncated or corrupt? {reason}); "
                         f"re-export it with `semjscc export` or restore the file") from None
    active = sess.get_providers()
    wanted_cuda = explicit_cuda or len(providers) > 1
    if wanted_cuda and CUDA not in active:
        # never a silent fallback: a radio that silently runs on the CPU misses its deadlines.
        # Asked for explicitly -> error; under device=auto with onnxruntime-gpu installed -> warning.
        (log.error if explicit_cuda else log.warning)(
            "%s: CUDA requested (device=%s) but NOT active, RUNNING ON CPU: %s", label, options.device, why)
    log.info("%s: running on %s (intra_op_threads=%d, inter_op_threads=%d, graph optimisation %s, %s execution)",
             label, active[0], options.threads, options.inter_threads, options.graph_optimization,
             options.execution_mode)
    return sess


class OnnxModel:
    """One ONNX file of a gr-semjscc model: the session, its card and checked ``run``."""

    role = ""

    def __init__(self, path: Path, *, expected_sha256: str | None = None, card: ModelCard | None = None,
                 options: RuntimeOptions | None = None, precision: str = "fp32") -> None:
        self.path = Path(path)
        self.options = options or RuntimeOptions.make()
        self.label = f"{self.role} {self.path}"
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise ModelError(f"{self.path} not found: the model directory is incomplete; re-export it") from None
        except OSError as e:
            raise ModelError(f"{self.path} cannot be read ({e.strerror})") from None
        if expected_sha256 is not None and self.options.verify:
            actual = sha256_bytes(data)
            if actual != expected_sha256:
                raise ModelError(f"{self.path}: sha256 {actual[:16]}... differs from card.yaml's {expected_sha256[:16]}... "
                                 f"(file changed or truncated); re-export the model or restore the file")
        elif self.options.verify:
            log.warning("%s: no card.yaml entry for this file, so its sha256 is not verified", self.label)
        self.session = open_session(data, self.label, self.options)
        self.provider: str = self.session.get_providers()[0]
        try:
            meta = self.session.get_modelmeta().custom_metadata_map
        except (UnicodeDecodeError, RuntimeError) as e:
            raise ModelError(f"{self.path}: unreadable metadata ({type(e).__name__}), the file is corrupt; "
                             f"re-export the model or restore the file") from None
        embedded, role = ModelCard.from_metadata(meta, str(self.path))
        if role != self.role:
            raise ModelError(f"{self.path} is a {role} model, not a {self.role}; check which file you load")
        if card is not None and embedded.precision != precision:
            # the card lists this file as `precision`; the file's own metadata says what it holds
            raise ModelError(f"{self.path}: card.yaml lists it as {precision} but the file holds {embedded.precision} "
                             f"weights; re-quantize with `semjscc export --model DIR --precision int8` or restore it")
        self.precision: str = embedded.precision
        if card is not None:
            # card.yaml is what people read and edit; the file's own metadata is what it was exported with
            for key in ("kind", "export_id", "kn", "n_symbols", "snr_adaptive"):
                if getattr(card, key) != getattr(embedded, key):
                    raise ModelError(f"{self.path}: card.yaml says {key}={getattr(card, key)!r} but the file's metadata "
                                     f"says {getattr(embedded, key)!r}; re-export the model or restore card.yaml")
            embedded.files = card.files  # the hashes live only in card.yaml
            embedded.int8 = card.int8
        self.card = embedded
        self._in_names = [i.name for i in self.session.get_inputs()]
        self._out_names = [o.name for o in self.session.get_outputs()]
        self._in_tails = self._input_tails()
        self._check_graph()
        self._probe()
        self.nonfinite = 0  # rows of finite inputs that came out NaN or inf
        self.last_nonfinite = np.zeros(0, dtype=bool)

    # -- shapes ------------------------------------------------------------------------------

    def _input_tails(self) -> list[tuple[int, ...]]:
        """Expected per-sample shape of each input, from the metadata (not from the graph, so
        a graph that disagrees with its metadata is caught in _check_graph)."""
        raise NotImplementedError

    def output_tail(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _check_graph(self) -> None:
        names = list(IO_NAMES[self.role][0])
        if self._in_names != names:
            raise ModelError(f"{self.label}: graph inputs {self._in_names}, expected {names}; re-export the model")
        outs = self.session.get_outputs()
        tail = self.output_tail()
        if not outs or outs[0].type != "tensor(float)":
            raise ModelError(f"{self.label}: the graph has no float32 output; re-export the model")
        declared = tuple(outs[0].shape[1:])
        if len(declared) != len(tail) or any(isinstance(d, int) and d != t for d, t in zip(declared, tail, strict=False)):
            raise ModelError(f"{self.label}: the graph outputs {outs[0].shape} but its card says (B, "
                             f"{', '.join(map(str, tail))}); re-export the model or restore card.yaml")
        for inp, tail in zip(self.session.get_inputs(), self._in_tails, strict=True):
            fixed = tuple(inp.shape[1:])
            if fixed != tail or inp.type != "tensor(float)":
                raise ModelError(f"{self.label}: graph input {inp.name} is {inp.type} {inp.shape} but its metadata "
                                 f"says float32 (B, {', '.join(map(str, tail))}); re-export the model")

    def _feed(self, arrays: tuple[np.ndarray, ...]) -> tuple[dict[str, np.ndarray], int]:
        batch = None
        feed = {}
        for name, tail, a in zip(self._in_names, self._in_tails, arrays, strict=True):
            want = f"(B, {', '.join(map(str, tail))})" if tail else "(B,)"
            if not isinstance(a, np.ndarray):
                raise ModelError(f"{self.role} input {name} must be a numpy array {want} float32, got {type(a).__name__}")
            if a.dtype != np.float32:
                raise ModelError(f"{self.role} input {name} must be float32, got {a.dtype}: convert with .astype(np.float32)")
            if a.ndim != len(tail) + 1 or tuple(a.shape[1:]) != tail:
                raise ModelError(f"{self.role} input {name} must have shape {want}, got {a.shape}")
            if batch is None:
                batch = a.shape[0]
            elif a.shape[0] != batch:
                raise ModelError(f"{self.role} inputs disagree on the batch size ({batch} vs {a.shape[0]} for {name})")
            feed[name] = np.ascontiguousarray(a)
        return feed, int(batch or 0)

    def _run(self, *arrays: np.ndarray) -> np.ndarray:
        feed, batch = self._feed(arrays)
        if batch == 0:  # ORT rejects empty batches on some kernels; the answer is known anyway
            return np.zeros((0, *self.output_tail()), dtype=np.float32)
        out = self.session.run(self._out_names, feed)[0]
        if out.shape != (batch, *self.output_tail()):  # a graph whose dims are symbolic can still lie
            raise ModelError(f"{self.label} returned {out.shape} for a batch of {batch}, but its card says (B, "
                             f"{', '.join(map(str, self.output_tail()))}); re-export the model or restore card.yaml")
        self._check_finite(out, feed, batch)
        return out

    def _check_finite(self, out: np.ndarray, feed: dict[str, np.ndarray], batch: int) -> None:
        """NaN or inf out of finite inputs (the load-time probe passed, so the model fails on some inputs
        only): the rows are left in ``last_nonfinite`` for the caller to count as corrupt, and counted in
        ``nonfinite``."""
        bad = ~np.isfinite(out.reshape(batch, -1)).all(axis=1)
        if bad.any():
            finite_in = np.ones(batch, dtype=bool)
            for a in feed.values():
                finite_in &= np.isfinite(a.reshape(batch, -1)).all(axis=1)
            bad &= finite_in  # what garbage in gives is the caller's to judge
        self.last_nonfinite = bad
        if bad.any():
            self.nonfinite += int(bad.sum())
            log.warning("%s: NaN or inf out of finite inputs for %d of %d (%d so far); those frames count as corrupt",
                        self.label, int(bad.sum()), batch, self.nonfinite)

    def _probe(self) -> None:
        """One ordinary input through the graph at load (mid-grey images, zero symbols, 10 dB): a model
        that answers it with NaN or inf is broken (a bad export, edited weights) and is refused here,
        before it can produce numbers that look like results."""
        feed = {name: np.full((1, *tail), 0.5 if len(tail) == 3 else 0.0 if tail else 10.0, dtype=np.float32)
                for name, tail in zip(self._in_names, self._in_tails, strict=True)}
        try:
            out = self.session.run(self._out_names, feed)[0]
        except Exception as e:  # ORT raises its own types; the graph cannot run at all
            raise ModelError(f"{self.label} fails on a plain input ({type(e).__name__}): re-export the model or "
                             f"restore the shipped files") from None
        if not np.all(np.isfinite(out)):
            raise ModelError(f"{self.label} gives NaN or inf for a plain input: the model is broken; re-export it or "
                             f"restore the shipped files")

    def settings(self) -> dict[str, Any]:
        """How this session runs: provider and session options (benchmarks record them)."""
        o = self.options
        return {"file": str(self.path), "precision": self.precision, "provider": self.provider,
                "intra_op_threads": o.threads,
                "inter_op_threads": o.inter_threads, "graph_optimization": o.graph_optimization,
                "execution_mode": o.execution_mode}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} ({self.precision}) on {self.provider}>"


def _snr_vector(snr_db: float | np.ndarray, batch: int) -> np.ndarray:
    """One SNR for the whole batch (a Python float or 0-d array) is broadcast; arrays pass as they are."""
    if isinstance(snr_db, (int, float, np.floating)) or (isinstance(snr_db, np.ndarray) and snr_db.ndim == 0):
        return np.full(batch, float(snr_db), dtype=np.float32)
    return snr_db


def _batch_of(a: Any) -> int:
    return a.shape[0] if isinstance(a, np.ndarray) and a.ndim > 0 else 0


class _JSCCSession(OnnxModel):
    """What the encoder and decoder share: the symbol count and k/n of the card, and an SNR input
    (a float is broadcast over the batch)."""

    @property
    def n_symbols(self) -> int:
        return int(self.card.n_symbols or 0)

    @property
    def kn(self) -> float:
        return float(self.card.kn or 0.0)

    def run(self, x: np.ndarray, snr_db: float | np.ndarray) -> np.ndarray:
        return self._run(x, _snr_vector(snr_db, _batch_of(x)))


class EncoderSession(_JSCCSession):
    """images (B,3,32,32) float32 in [0,1], snr_db (B,) or a float -> symbols (B, k, 2) float32
    (real, imag) with unit average power per image."""

    role = "encoder"

    def _input_tails(self) -> list[tuple[int, ...]]:
        return [tuple(self.card.image_shape), ()]

    def output_tail(self) -> tuple[int, ...]:
        return (self.n_symbols, 2)


class DecoderSession(_JSCCSession):
    """symbols (B, k, 2) float32 (equalised), snr_db (B,) or a float -> images (B,3,32,32) in [0,1]."""

    role = "decoder"

    def _input_tails(self) -> list[tuple[int, ...]]:
        return [(self.n_symbols, 2), ()]

    def output_tail(self) -> tuple[int, ...]:
        return tuple(self.card.image_shape)


class ClassifierSession(OnnxModel):
    """images (B,3,32,32) float32 in [0,1] -> logits (B, num_classes)."""

    role = "classifier"

    def _input_tails(self) -> list[tuple[int, ...]]:
        return [tuple(self.card.image_shape)]

    def output_tail(self) -> tuple[int, ...]:
        return (int(self.card.num_classes or 10),)

    def run(self, images: np.ndarray) -> np.ndarray:
        return self._run(images)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class indices (B,) int64."""
        return self.run(images).argmax(axis=1)


def check_pair(encoder: EncoderSession, decoder: DecoderSession) -> None:
    """Refuse an encoder and a decoder that cannot work together (ModelError, one line)."""
    e, d = encoder.card, decoder.card
    if e.n_symbols != d.n_symbols or round(e.kn or 0, 9) != round(d.kn or 0, 9):
        raise ModelError(f"encoder {encoder.path} (k/n {kn_label(e.kn or 1)}, {e.n_symbols} symbols) and decoder "
                         f"{decoder.path} (k/n {kn_label(d.kn or 1)}, {d.n_symbols} symbols) do not belong together: "
                         f"load both from one model directory")
    if e.export_id != d.export_id:
        # same shapes, different exports: it runs, but the decoder was not trained for this encoder
        log.warning("encoder %s and decoder %s come from different exports (%s, %s): the decoder was not "
                    "trained with this encoder", encoder.path, decoder.path, e.export_id, d.export_id)
