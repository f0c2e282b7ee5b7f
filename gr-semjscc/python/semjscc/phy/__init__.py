"""The analog-payload OFDM physical layer in numpy: numerology, frame, TX, RX, channel models and the symbols' rules,
shared by the torch channel simulation, the evaluation and the GNU Radio blocks."""

from semjscc.phy.numerology import DEFAULT_NUMEROLOGY, OFDMNumerology

__all__ = ["DEFAULT_NUMEROLOGY", "OFDMNumerology"]
