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

import logging as _logging
import os as _os
import tempfile as _tempfile


def _writable_home() -> None:
    """GNU Radio's FFT blocks lock and write ``$HOME/.gr_fftw_wisdom`` and raise when they cannot (a
    read-only home): give this process a private writable HOME instead, and say so once."""
    home = _os.environ.get("HOME")
    if home and _os.access(home, _os.W_OK):
        return
    alt = _os.path.join(_tempfile.gettempdir(), f"semjscc-home-{_os.getuid()}")
    _os.makedirs(alt, mode=0o700, exist_ok=True)
    _os.environ["HOME"] = alt
    _logging.getLogger("semjscc.gr").warning("HOME %s is not writable: GNU Radio's FFTW wisdom and caches go to %s",
                                             home, alt)


_writable_home()

from semjscc.gr.burst_channel import burst_channel  # noqa: E402 (after HOME is made writable)
from semjscc.gr.classifier import classifier  # noqa: E402
from semjscc.gr.image_display import image_display  # noqa: E402
from semjscc.gr.image_source import image_source  # noqa: E402
from semjscc.gr.jscc_decoder import jscc_decoder  # noqa: E402
from semjscc.gr.jscc_encoder import jscc_encoder  # noqa: E402
from semjscc.gr.link_rx import jscc_rx, separate_rx  # noqa: E402
from semjscc.gr.link_tx import jscc_tx, separate_tx  # noqa: E402
from semjscc.gr.metrics_sink import metrics_sink  # noqa: E402
from semjscc.gr.ofdm_rx import ofdm_rx  # noqa: E402
from semjscc.gr.ofdm_tx import header_framer, ofdm_tx, pdu_framer  # noqa: E402
from semjscc.gr.rx_monitor import rx_monitor  # noqa: E402
from semjscc.gr.separate_blocks import separate_decoder, separate_encoder  # noqa: E402
from semjscc.gr.stream_tx import stream_tx  # noqa: E402

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
    "rx_monitor",
    "separate_decoder",
    "separate_encoder",
    "separate_rx",
    "separate_tx",
    "stream_tx",
]
