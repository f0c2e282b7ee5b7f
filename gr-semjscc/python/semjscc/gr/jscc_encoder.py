"""Deep JSCC encoder block: image PDUs in, PDUs of unit-power complex channel symbols out."""

from __future__ import annotations

from typing import Any

import numpy as np

from semjscc.data.imaging import IMAGE_SHAPE
from semjscc.gr.batched import DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_S, BatchedPduBlock, collect_images, ort_threads
from semjscc.gr.params import as_float, as_int, payload_limit
from semjscc.gr.pdus import c32_vector, make_pdu
from semjscc.link.snr import encoder_snr
from semjscc.phy.frame import DEFAULT_MAX_PAYLOAD_LEN, MAX_PAYLOAD_LEN
from semjscc.phy.symbols import from_pairs
from semjscc.util.errors import ModelError
from semjscc.zoo import load_encoder


class jscc_encoder(BatchedPduBlock):  # noqa: N801 (GNU Radio block naming)
    """Input ``in``: PDUs (meta, u8vector 32*32*3 HWC or f32vector 3*32*32 CHW). Output ``out``: the
    same metadata with a c32vector of the model's ``n_symbols`` channel symbols (unit average power
    per image, as the encoder normalises them).

    ``snr_db`` is the channel SNR the transmitter designs for; SNR-adaptive models use it, fixed-SNR
    models always get their training SNR. ``max_payload_len`` is the OFDM TX/RX limit in symbols.
    ``max_batch`` / ``max_wait_s``: batching (see :mod:`semjscc.gr.batched`; 0 s: never wait)."""

    def __init__(self, model: str = "jscc-semantic-kn6", snr_db: float = 10.0, device: str = "auto",
                 threads: int = 0, max_batch: int = DEFAULT_MAX_BATCH, max_payload_len: int = DEFAULT_MAX_PAYLOAD_LEN,
                 max_wait_s: float = DEFAULT_MAX_WAIT_S, precision: str = "") -> None:
        name = "jscc_encoder"
        snr_db = as_float(name, "snr_db", snr_db)
        max_payload_len = payload_limit(name, max_payload_len)
        super().__init__("semjscc_jscc_encoder", as_int(name, "max_batch", max_batch, 1),
                         as_float(name, "max_wait_s", max_wait_s, 0.0, 1.0))
        self.encoder = load_encoder(model, device=device or None, threads=ort_threads(as_int(name, "threads", threads)),
                                    precision=precision or None)  # '' = $SEMJSCC_PRECISION, else auto
        card = self.encoder.card
        if tuple(card.image_shape) != IMAGE_SHAPE:
            raise ModelError(f"encoder {self.encoder.path} takes images of shape {tuple(card.image_shape)}, but SemJSCC "
                             f"image PDUs are {IMAGE_SHAPE} (CHW); use a 32x32 RGB model")
        if not 0 < self.encoder.n_symbols <= max_payload_len:
            raise ModelError(f"encoder {self.encoder.path} sends {self.encoder.n_symbols} symbols per image but the "
                             f"OFDM TX/RX carry at most {max_payload_len} (max_payload_len): raise max_payload_len "
                             f"here and on the OFDM TX/RX (up to {MAX_PAYLOAD_LEN}), or use a model with a smaller k/n")
        self.n_symbols = self.encoder.n_symbols
        self.snr_db = snr_db

    def set_snr_db(self, snr_db: float) -> None:
        self.snr_db = as_float("jscc_encoder", "snr_db", snr_db)

    def process(self, items: list[tuple[Any, dict[str, Any], Any]]) -> list[Any]:
        metas, images = collect_images(self, items)
        if not images:
            return []
        sym = from_pairs(self.encoder.run(np.stack(images), encoder_snr(self.encoder.card, self.snr_db)))
        # NaN / inf symbols (zoo.session counts them) go out as silence: the PHY never carries NaN, the
        # frame's header still arrives and its payload decodes to whatever zeros give
        sym[self.encoder.last_nonfinite] = 0
        return [make_pdu(meta, c32_vector(s)) for meta, s in zip(metas, sym, strict=True)]
