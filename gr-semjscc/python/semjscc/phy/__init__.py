"""Physical layer definitions shared by the torch channel simulation and the GNU Radio blocks."""

from semjscc.phy.numerology import DEFAULT_NUMEROLOGY, OFDMNumerology

__all__ = ["DEFAULT_NUMEROLOGY", "OFDMNumerology"]
