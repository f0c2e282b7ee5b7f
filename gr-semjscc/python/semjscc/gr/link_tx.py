"""The transmit half of a link as one block: source-channel encoder + OFDM TX.

    image PDUs (in) -> jscc_encoder | separate_encoder -> ofdm_tx -> complex bursts (out)

Both ends of the TX are built together here, so the OFDM TX is sized from the encoder: its
``max_payload_len`` is the encoder's symbol count, and a model the frame header cannot carry is
refused now, with one line, rather than every frame being dropped later. Every shipped flowgraph
uses these halves (and ``link_rx``); ``semjscc.gr.sim_loopback`` is built from the same pieces.
"""

from __future__ import annotations

from gnuradio import gr

from semjscc.gr.batched import DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_S
from semjscc.gr.jscc_encoder import jscc_encoder
from semjscc.gr.ofdm_tx import ofdm_tx
from semjscc.gr.params import midamble_interval
from semjscc.gr.separate_blocks import separate_encoder
from semjscc.phy.frame import MAX_PAYLOAD_LEN


class _LinkTX(gr.hier_block2):
    """Message input ``in`` (image PDUs), complex stream output (bursts)."""

    def __init__(self, name: str, encoder: gr.basic_block, n_symbols: int, pad_before: int, pad_after: int,
                 midamble: int = 0) -> None:
        gr.hier_block2.__init__(self, name, gr.io_signature(0, 0, 0), gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.message_port_register_hier_in("in")
        self.enc = encoder
        self.tx = ofdm_tx(input_type="pdu", pad_before=pad_before, pad_after=pad_after, max_payload_len=n_symbols,
                          midamble=midamble)
        self.n_symbols = n_symbols
        self.msg_connect(self, "in", self.enc, "in")
        self.msg_connect(self.enc, "out", self.tx, "pdus")
        self.connect(self.tx, self)

    @property
    def frames_framed(self) -> int:
        return self.tx.frames_framed


class jscc_tx(_LinkTX):  # noqa: N801 (GNU Radio block naming)
    """Deep JSCC encoder (``model``, design SNR ``snr_db``) + OFDM TX (``midamble``: payload symbols
    between mid-ambles, 0 = none; see :mod:`semjscc.phy.frame`)."""

    def __init__(self, model: str = "jscc-semantic-kn6", snr_db: float = 10.0, device: str = "auto", threads: int = 0,
                 max_batch: int = DEFAULT_MAX_BATCH, pad_before: int = 160, pad_after: int = 160,
                 max_wait_s: float = DEFAULT_MAX_WAIT_S, midamble: int = 0) -> None:
        midamble = midamble_interval("jscc_tx", midamble)  # before the model is loaded
        enc = jscc_encoder(model, snr_db=snr_db, device=device, threads=threads, max_batch=max_batch,
                           max_payload_len=MAX_PAYLOAD_LEN, max_wait_s=max_wait_s)
        super().__init__("semjscc_jscc_tx", enc, enc.n_symbols, pad_before, pad_after, midamble)

    def set_snr_db(self, snr_db: float) -> None:
        self.enc.set_snr_db(snr_db)


class separate_tx(_LinkTX):  # noqa: N801 (GNU Radio block naming)
    """Separate source-channel encoder (codec + LDPC + QAM, ``n_symbols`` channel uses) + OFDM TX
    (``midamble`` as for :class:`jscc_tx`)."""

    def __init__(self, codec: str = "jpeg", quality: int = 50, modulation: str = "qpsk", rate: str = "1/2",
                 n_symbols: int = 512, max_batch: int = DEFAULT_MAX_BATCH, pad_before: int = 160, pad_after: int = 160,
                 midamble: int = 0) -> None:
        midamble = midamble_interval("separate_tx", midamble)
        enc = separate_encoder(codec, quality, modulation, rate, n_symbols, max_batch=max_batch,
                               max_payload_len=MAX_PAYLOAD_LEN)
        super().__init__("semjscc_separate_tx", enc, enc.n_symbols, pad_before, pad_after, midamble)
