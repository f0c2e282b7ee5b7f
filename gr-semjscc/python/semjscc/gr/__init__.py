"""GNU Radio 3.10 blocks of gr-semjscc: the analog-payload OFDM PHY and the semantic JSCC link.

This subpackage is ``semjscc.gr``; inside it GNU Radio is always imported absolutely
(``from gnuradio import gr``), so the two never shadow each other. GRC imports it as
``from semjscc import gr as semjscc_gr``.

Keep a Python reference to every block you connect (e.g. as an attribute of the top block):
GNU Radio holds Python blocks only through their C++ wrappers.

A link, as every shipped flowgraph builds it:

    image_source -> jscc_tx ~~ channel ~~ jscc_rx -> metrics_sink (+ the source's PDUs; acks back)

``jscc_tx`` is ``jscc_encoder`` -> ``ofdm_tx`` and ``jscc_rx`` is ``ofdm_rx`` -> ``jscc_decoder`` ->
``classifier`` (hier blocks; the parts are blocks of their own too, with ``header_framer`` / ``pdu_framer``).
``separate_tx`` / ``separate_rx`` are the same halves around ``separate_encoder`` /
``separate_decoder`` (image codec + LDPC + QAM, the baseline). ``image_display`` is the Qt view;
``burst_channel`` a simulated channel that changes with every burst. ``sim_loopback`` is the whole
simulated link as a top block.
"""

from semjscc.gr.burst_channel import burst_channel
from semjscc.gr.classifier import classifier
from semjscc.gr.image_display import image_display
from semjscc.gr.image_source import image_source
from semjscc.gr.jscc_decoder import jscc_decoder
from semjscc.gr.jscc_encoder import jscc_encoder
from semjscc.gr.link_rx import jscc_rx, separate_rx
from semjscc.gr.link_tx import jscc_tx, separate_tx
from semjscc.gr.metrics_sink import metrics_sink
from semjscc.gr.rx import ofdm_rx
from semjscc.gr.separate_blocks import separate_decoder, separate_encoder
from semjscc.gr.tx import header_framer, ofdm_tx, pdu_framer

__all__ = [
    "burst_channel",
    "classifier",
    "header_framer",
    "image_display",
    "image_source",
    "jscc_decoder",
    "jscc_encoder",
    "jscc_rx",
    "jscc_tx",
    "metrics_sink",
    "ofdm_rx",
    "ofdm_tx",
    "pdu_framer",
    "separate_decoder",
    "separate_encoder",
    "separate_rx",
    "separate_tx",
]
