"""SigMF recordings of over-the-air experiments, written with the ``sigmf`` library.

One recording per experiment: ``STEM.sigmf-data`` (cf32_le, the captures back to back, full scale 1.0)
and ``STEM.sigmf-meta``:

* global: core fields (datatype, sample_rate, hw, author, recorder, description, version, sha512) and
  the ``semjscc`` extension: the experiment (models, images), radio(s), calibration, PHY;
* one capture per cyclic batch: ``core:frequency`` (RF), ``core:datetime``, and ``semjscc:`` TX
  attenuation, RX gain, programmed LO, target SNR, the analysis window and the frames sent (what
  replay needs to decode it again);
* one annotation per frame sent: where the receiver found it (a lost frame covers the capture's
  window, one cyclic period, which held it somewhere), the signal's ``core:freq_lower_edge`` /
  ``core:freq_upper_edge``, its status, SNR estimate, label and prediction; header CRC failures too.

Crash safety, at any instant (SIGKILL included): each batch is appended to the data file and fsynced,
then the metadata file is replaced atomically (written beside it, fsynced, renamed). The metadata
records how many samples it covers (``semjscc:samples``) and the sha512 of exactly those bytes, so a
data file longer than its metadata (a batch appended, the process killed before the metadata was
replaced) is still a valid recording of every batch committed: :func:`open_recording` checks the
hash over the committed bytes and ignores the rest; :meth:`RecordingWriter.close` trims it.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import hashlib
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from semjscc.util.errors import OutputError, UsageError

EXTENSION = {"name": "semjscc", "version": "1.0.0", "optional": True}
DATATYPE = "cf32_le"
SAMPLES_KEY = "semjscc:samples"  # samples the metadata covers (and core:sha512 hashes)
ITEM_BYTES = 8  # one cf32_le sample


def _sigmf() -> Any:
    try:
        import sigmf
        from sigmf import SigMFFile
    except ImportError as e:
        raise UsageError(f"the sigmf package is missing ({e}); install the radio extra: "
                         "pip install 'gr-semjscc[radio]'") from None
    return sigmf, SigMFFile


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RecordingWriter:
    def __init__(self, stem: str | Path, global_info: dict[str, Any]) -> None:
        _, SigMFFile = _sigmf()
        self.stem = Path(stem)
        self.stem.parent.mkdir(parents=True, exist_ok=True)
        self.data_path = self.stem.with_name(self.stem.name + ".sigmf-data")
        self.meta_path = self.stem.with_name(self.stem.name + ".sigmf-meta")
        for p in (self.data_path, self.meta_path):
            if p.exists():
                p.unlink()
        self.data_path.touch()
        self._hash = hashlib.sha512()
        self.samples = 0  # committed: described by the metadata on disk
        info = {"core:datatype": DATATYPE, "core:extensions": [dict(EXTENSION)], **global_info}
        self.meta = SigMFFile(global_info=info)
        self._write_meta()

    def append(self, iq: np.ndarray, capture: dict[str, Any], annotations: list[tuple[int, int | None, dict]]) -> int:
        """Add one capture; annotation starts are relative to it. Returns the capture's first sample index."""
        data = np.ascontiguousarray(iq, dtype="<c8")
        start = self.samples
        try:
            with open(self.data_path, "r+b") as f:
                f.seek(start * 8)
                f.write(data.tobytes())
                f.truncate()
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:  # a full disk: the recording keeps what was committed before this batch
            with contextlib.suppress(OSError), open(self.data_path, "r+b") as f:
                f.truncate(start * 8)
            raise self._not_written(e) from None
        new_hash = self._hash.copy()
        new_hash.update(data.tobytes())
        previous = (self._hash, self.samples, copy.deepcopy(self.meta._metadata))
        self._hash = new_hash
        self.meta.add_capture(start, metadata=dict(capture))
        for rel, count, meta in annotations:
            self.meta.add_annotation(start + int(rel), length=count, metadata=dict(meta))
        self.samples = start + len(data)
        try:
            self._write_meta()
        except OSError as e:  # the metadata on disk still describes the batches before this one
            self._hash, self.samples, self.meta._metadata = previous
            raise self._not_written(e) from None
        return start

    def _not_written(self, e: OSError) -> OutputError:
        return OutputError(f"{self.data_path.parent}: recording stopped ({e.strerror}); it keeps the "
                           f"{len(self.meta.get_captures())} batches recorded before ({self.samples} samples), "
                           f"which replay reads", e.errno, e.strerror)

    def _write_meta(self) -> None:
        self.meta.set_global_field("core:sha512", self._hash.hexdigest())
        self.meta.set_global_field(SAMPLES_KEY, self.samples)
        tmp_stem = self.stem.with_name(f".{self.stem.name}.{os.getpid()}.tmp")
        tmp = tmp_stem.with_name(tmp_stem.name + ".sigmf-meta")
        try:
            self.meta.tofile(tmp_stem, overwrite=True)  # validates against the SigMF schema
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.meta_path)
        finally:
            tmp.unlink(missing_ok=True)

    def close(self) -> None:
        """Trim anything past the last committed capture (an interrupted append)."""
        if self.data_path.exists() and self.data_path.stat().st_size != self.samples * 8:
            with open(self.data_path, "r+b") as f:
                f.truncate(self.samples * 8)


def open_recording(path: str | Path) -> Any:
    """A SigMFFile from a .sigmf-meta (or .sigmf-data / stem) path: cf32_le only, the checksum verified
    over the samples the metadata covers (trailing bytes of a batch interrupted by a crash are ignored,
    with a warning), every capture inside the data."""
    import logging

    sigmf, _ = _sigmf()
    p = Path(path)
    if not (p.is_file() or p.with_name(p.name + ".sigmf-meta").is_file()):
        raise UsageError(f"{p}: no such recording (pass the .sigmf-meta file)")
    try:
        rec = sigmf.sigmffile.fromfile(str(p), skip_checksum=True)
    except Exception as e:  # the library raises its own error types, jsonschema's and OSError
        raise UsageError(f"{p}: not a readable SigMF recording ({type(e).__name__}: {str(e)[:200]})") from None
    data_fn = Path(sigmf.sigmffile.get_sigmf_filenames(str(p))["data_fn"])
    if getattr(rec, "data_file", None) is None or not data_fn.is_file():  # a lone .sigmf-meta: metadata only
        raise UsageError(f"{data_fn} is missing: the samples of {p.name} live there; put the .sigmf-data back beside "
                         f"the .sigmf-meta (a .sigmf-meta alone cannot be replayed)")
    datatype = rec.get_global_field("core:datatype")
    if datatype != DATATYPE:
        raise UsageError(f"{p}: samples are {datatype}; semjscc recordings are {DATATYPE} (complex float32, "
                         f"little-endian), as `semjscc ota` writes them")
    size = data_fn.stat().st_size
    committed = rec.get_global_field(SAMPLES_KEY)
    n_bytes = int(committed) * ITEM_BYTES if isinstance(committed, int) and committed >= 0 else size
    if n_bytes > size:
        raise UsageError(f"{p}: the metadata covers {n_bytes // ITEM_BYTES} samples but {data_fn.name} holds "
                         f"{size // ITEM_BYTES}: the data file was truncated; the recording cannot be replayed")
    h = hashlib.sha512()
    with open(data_fn, "rb") as f:
        left = n_bytes
        while left:
            chunk = f.read(min(left, 1 << 22))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    if h.hexdigest() != rec.get_global_field("core:sha512"):
        raise UsageError(f"{p}: the sha512 of {data_fn.name} does not match its metadata: the samples were changed "
                         f"or belong to another recording")
    if n_bytes < size:
        logging.getLogger("semjscc.ota").warning(
            "%s: %d bytes after the last committed batch (an interrupted run) are ignored", data_fn, size - n_bytes)
        rec.set_data_file(str(data_fn), size_bytes=n_bytes, skip_checksum=True)
    rate = rec.get_global_field("core:sample_rate")
    if not (isinstance(rate, (int, float)) and not isinstance(rate, bool) and math.isfinite(rate) and rate > 0):
        raise UsageError(f"{p}: core:sample_rate is {rate!r}, not a rate > 0; the metadata was edited")
    caps = rec.get_captures()
    if not caps:
        raise UsageError(f"{p}: the recording holds no captures (nothing was committed, or the metadata was edited)")
    total = n_bytes // ITEM_BYTES
    prev = -1
    for i, c in enumerate(caps):
        start = c.get("core:sample_start", -1)
        if not (isinstance(start, int) and not isinstance(start, bool) and 0 <= start <= total):
            raise UsageError(f"{p}: capture {i} starts at sample {start!r}, outside the {total} samples recorded")
        if start <= prev:  # each batch was appended after the last: out of order means edited
            raise UsageError(f"{p}: capture {i} starts at sample {start}, not after capture {i - 1} ({prev}); "
                             f"the metadata was edited")
        prev = start
    return rec


def capture_length(rec: Any, index: int) -> int:
    """How many samples capture ``index`` holds (up to the next capture's start), without reading them."""
    caps = rec.get_captures()
    stop = caps[index + 1]["core:sample_start"] if index + 1 < len(caps) else rec.sample_count
    return int(stop - caps[index]["core:sample_start"])


def capture_samples(rec: Any, index: int) -> np.ndarray:
    """The samples of capture ``index`` (up to the next capture's start) as complex64."""
    start = rec.get_captures()[index]["core:sample_start"]
    return np.asarray(rec.read_samples(start_index=start, count=capture_length(rec, index)), dtype=np.complex64)
