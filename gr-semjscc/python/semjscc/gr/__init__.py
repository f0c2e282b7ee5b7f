"""GNU Radio 3.10 blocks of the analog-payload OFDM PHY.

This subpackage is ``semjscc.gr``; inside it GNU Radio is always imported absolutely
(``from gnuradio import gr``), so the two never shadow each other.

Keep a Python reference to every block you connect (e.g. as an attribute of the top block):
GNU Radio holds Python blocks only through their C++ wrappers.
"""

from semjscc.gr.rx import ofdm_rx
from semjscc.gr.tx import header_framer, ofdm_tx

__all__ = ["header_framer", "ofdm_rx", "ofdm_tx"]
