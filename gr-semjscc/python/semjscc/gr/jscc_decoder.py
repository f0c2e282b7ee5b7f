"""Deep JSCC decoder block: equalised symbol PDUs from the OFDM RX in, image PDUs out."""

from __future__ import annotations

from typing import Any

import numpy as np

from semjscc.gr.batched import DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_S, BatchedPduBlock, ort_threads, triage_received
from semjscc.gr.params import as_float, as_int, one_of, payload_limit
from semjscc.gr.pdus import check_image_format, empty_like_u8, image_vector, make_pdu
from semjscc.link.snr import decoder_snr
from semjscc.phy.frame import DEFAULT_MAX_PAYLOAD_LEN, MAX_PAYLOAD_LEN
from semjscc.phy.symbols import to_pairs
from semjscc.util.errors import ModelError
from semjscc.zoo import load_decoder

SNR_MODES = ("estimate", "fixed")


class jscc_decoder(BatchedPduBlock):  # noqa: N801 (GNU Radio block naming)
    """Input ``in``: PDUs from ``ofdm_rx`` (meta {frame_number, snr_est_db, cfo_hz, header_ok}, c32vector).
    Output ``out``: the same metadata plus ``decoder_snr_db``, with the decoded image as a u8vector
    (32*32*3 HWC) or f32vector (3*32*32 CHW in [0, 1]) per ``output``.

    * ``snr_mode`` 'estimate': SNR-adaptive models get the receiver's ``snr_est_db``, clipped to the
      model's training range (no extrapolation), or ``snr_db`` when the estimate is missing;
      'fixed': always ``snr_db``. Fixed-SNR models always get their training SNR.
    * A PDU with ``header_ok`` False passes through unchanged (the sink counts header failures).
    * A vector that is not ``n_symbols`` complex values is published with ``corrupt: True`` and an
      empty vector, and counted in ``corrupt``: never an exception.
    * ``max_batch`` / ``max_wait_s``: batching (see :mod:`semjscc.gr.batched`; 0 s: never wait)."""

    def __init__(self, model: str = "jscc-semantic-kn6", snr_mode: str = "estimate", snr_db: float = 10.0,
                 output: str = "u8", device: str = "auto", threads: int = 0, max_batch: int = DEFAULT_MAX_BATCH,
                 max_payload_len: int = DEFAULT_MAX_PAYLOAD_LEN, max_wait_s: float = DEFAULT_MAX_WAIT_S,
                 precision: str = "") -> None:
        name = "jscc_decoder"
        snr_mode = one_of(name, "snr_mode", snr_mode, SNR_MODES)
        snr_db = as_float(name, "snr_db", snr_db)
        max_payload_len = payload_limit(name, max_payload_len)
        super().__init__("semjscc_jscc_decoder", as_int(name, "max_batch", max_batch, 1),
                         as_float(name, "max_wait_s", max_wait_s, 0.0, 1.0))
        self.output = check_image_format(output)
        self.decoder = load_decoder(model, device=device or None, threads=ort_threads(as_int(name, "threads", threads)),
                                    precision=precision or None)  # '' = $SEMJSCC_PRECISION, else auto
        self.n_symbols = self.decoder.n_symbols
        if not 0 < self.n_symbols <= max_payload_len:
            raise ModelError(f"decoder {self.decoder.path} expects {self.n_symbols} symbols per image but the OFDM "
                             f"RX delivers at most {max_payload_len} (max_payload_len): raise max_payload_len here "
                             f"and on the OFDM TX/RX (up to {MAX_PAYLOAD_LEN}), or use a model with a smaller k/n")
        self.snr_mode, self.snr_db = snr_mode, snr_db

    def set_snr_db(self, snr_db: float) -> None:
        self.snr_db = as_float("jscc_decoder", "snr_db", snr_db)

    def process(self, items: list[tuple[Any, dict[str, Any], Any]]) -> list[Any]:
        out, rows, ys = triage_received(self, items, self.n_symbols)
        snrs = [decoder_snr(self.decoder.card, items[i][1].get("snr_est_db"), self.snr_db, self.snr_mode) for i in rows]
        if rows:
            images = self.decoder.run(to_pairs(np.stack(ys)), np.asarray(snrs, dtype=np.float32))
            for i, img, snr, bad in zip(rows, images, snrs, self.decoder.last_nonfinite, strict=True):
                if bad:  # NaN / inf out of the model: no image to classify (zoo.session counts it)
                    self.corrupt += 1
                    out[i] = make_pdu(items[i][1], empty_like_u8(), corrupt=True, nonfinite=True)
                    continue
                out[i] = make_pdu(items[i][1], image_vector(img, self.output), decoder_snr_db=snr)
        return out
