"""The receive half of a link as one block: OFDM RX + source-channel decoder + classifier.

    complex samples (in) -> ofdm_rx -> jscc_decoder | separate_decoder -> classifier -> PDUs (out)

The chain mirrors the transmit half (``link_tx``) in reverse. The OFDM RX accepts frames of any
length up to ``DEFAULT_MAX_PAYLOAD_LEN`` (or the decoder's, if longer), so a frame of another
length reaches the decoder and is counted there as a ``length_mismatch`` (a transmitter with
another model) instead of disappearing as a header failure. Output PDUs carry what the metrics
sink and the image display read: frame number, SNR estimate, the decoded image, ``pred``.
"""

from __future__ import annotations

import pmt
from gnuradio import gr

from semjscc.gr.batched import DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_S
from semjscc.gr.classifier import classifier
from semjscc.gr.jscc_decoder import jscc_decoder
from semjscc.gr.ofdm_rx import ofdm_rx
from semjscc.gr.overload_gate import overload_gate
from semjscc.gr.separate_blocks import separate_decoder
from semjscc.link.ledger import DROPPED_OVERLOAD
from semjscc.phy.channel_model import MAX_CFO_SUBCARRIERS
from semjscc.phy.frame import DEFAULT_MAX_PAYLOAD_LEN, MAX_PAYLOAD_LEN
from semjscc.zoo.locate import resolve_classifier
from semjscc.zoo.shipped import CLASSIFIER


class _LinkRX(gr.hier_block2):
    """Complex stream input; message outputs ``out`` (classified image PDUs) and ``symbols`` (the OFDM
    RX's PDUs of equalised payload symbols, for a constellation view)."""

    def __init__(self, name: str, decoder: gr.basic_block, classifier_ref: str, device: str, threads: int,
                 max_batch: int, equalizer: str, phase_tracking: str, latency_s: float,
                 max_cfo_subcarriers: float, max_wait_s: float = DEFAULT_MAX_WAIT_S, max_backlog: int = 0) -> None:
        gr.hier_block2.__init__(self, name, gr.io_signature(1, 1, gr.sizeof_gr_complex), gr.io_signature(0, 0, 0))
        self.message_port_register_hier_out("out")
        self.message_port_register_hier_out("symbols")
        self.dec = decoder
        self.n_symbols = int(decoder.n_symbols)
        self.clf = classifier(classifier_ref, device=device, threads=threads, max_batch=max_batch, max_wait_s=max_wait_s)
        self.classifier_ref = classifier_ref
        self.rx = ofdm_rx(equalizer=equalizer, phase_tracking=phase_tracking, latency_s=latency_s,
                          max_payload_len=max(self.n_symbols, DEFAULT_MAX_PAYLOAD_LEN),
                          max_cfo_subcarriers=max_cfo_subcarriers)
        # a live receiver that falls behind drops whole frames here, before the models (semjscc.gr.overload_gate)
        in_port = pmt.intern("in")
        self.gate = overload_gate(lambda: self.dec.nmsgs(in_port) + self.clf.nmsgs(in_port), max_backlog)
        self.connect(self, self.rx)
        self.msg_connect(self.rx, "pdus", self.gate, "in")
        self.msg_connect(self.gate, "out", self.dec, "in")
        self.msg_connect(self.dec, "out", self.clf, "in")
        self.msg_connect(self.clf, "out", self, "out")
        self.msg_connect(self.rx, "pdus", self, "symbols")

    def stats(self) -> dict[str, int]:
        """The receive chain's counters (the metrics sink accounts per frame; these say where)."""
        return {"rx_frames_ok": self.rx.frames_ok, "rx_frames_failed": self.rx.frames_failed,
                "decoder_corrupt": self.dec.corrupt, "classifier_corrupt": self.clf.corrupt,
                "length_mismatch": self.dec.length_mismatch,
                "block_errors": self.dec.errors + self.clf.errors, DROPPED_OVERLOAD: self.gate.dropped,
                "max_backlog_seen": self.gate.max_seen_backlog}


class jscc_rx(_LinkRX):  # noqa: N801 (GNU Radio block naming)
    """OFDM RX + deep JSCC decoder (``model``; SNR input per ``snr_mode``) + classifier (``''``: the
    receiver the model's card names, see :func:`semjscc.zoo.locate.resolve_classifier`). ``max_backlog`` > 0:
    frames waiting for the models beyond it are dropped whole (:mod:`semjscc.gr.overload_gate`)."""

    def __init__(self, model: str = "jscc-semantic-kn6", classifier: str = "", snr_mode: str = "estimate",
                 snr_db: float = 10.0, device: str = "auto", threads: int = 0, max_batch: int = DEFAULT_MAX_BATCH,
                 equalizer: str = "mmse", phase_tracking: str = "linear", latency_s: float = 0.05,
                 max_cfo_subcarriers: float = MAX_CFO_SUBCARRIERS, max_wait_s: float = DEFAULT_MAX_WAIT_S,
                 max_backlog: int = 0) -> None:
        dec = jscc_decoder(model, snr_mode=snr_mode, snr_db=snr_db, device=device, threads=threads,
                           max_batch=max_batch, max_payload_len=MAX_PAYLOAD_LEN, max_wait_s=max_wait_s)
        super().__init__("semjscc_jscc_rx", dec, resolve_classifier(model, classifier), device, threads, max_batch,
                         equalizer, phase_tracking, latency_s, max_cfo_subcarriers, max_wait_s, max_backlog)

    def set_snr_db(self, snr_db: float) -> None:
        self.dec.set_snr_db(snr_db)


class separate_rx(_LinkRX):  # noqa: N801 (GNU Radio block naming)
    """OFDM RX + separate source-channel decoder (the encoder's codec, quality, modulation, rate and
    ``n_symbols``) + classifier (``''``: the shipped one)."""

    def __init__(self, codec: str = "jpeg", quality: int = 50, modulation: str = "qpsk", rate: str = "1/2",
                 n_symbols: int = 512, classifier: str = "", snr_mode: str = "estimate", snr_db: float = 10.0,
                 device: str = "auto", threads: int = 0, max_batch: int = DEFAULT_MAX_BATCH, equalizer: str = "mmse",
                 phase_tracking: str = "linear", latency_s: float = 0.05,
                 max_cfo_subcarriers: float = MAX_CFO_SUBCARRIERS, max_backlog: int = 0) -> None:
        dec = separate_decoder(codec, quality, modulation, rate, n_symbols, equalizer=equalizer, snr_mode=snr_mode,
                               snr_db=snr_db, max_batch=max_batch, max_payload_len=MAX_PAYLOAD_LEN)
        super().__init__("semjscc_separate_rx", dec, classifier or CLASSIFIER, device, threads, max_batch, equalizer,
                         phase_tracking, latency_s, max_cfo_subcarriers, max_backlog=max_backlog)

    def set_snr_db(self, snr_db: float) -> None:
        self.dec.set_snr_db(snr_db)
