"""An emulated ADALM-Pluto on the real client stack: an iiod-compatible server (:mod:`.server`) in front of
an AD9361-like set of IIO devices (:mod:`.device`) whose buffers go through the simulated radio channel in
real time (:mod:`.air`). ``semjscc emulate-pluto`` runs it; :func:`emulated_plutos` starts some for tests."""

from semjscc.radio.emulator.air import Air, EmulatedRadio
from semjscc.radio.emulator.server import IIOD_PORT, EmulatedPluto, emulated_plutos, free_loopback_addresses, serve

__all__ = ["IIOD_PORT", "Air", "EmulatedPluto", "EmulatedRadio", "emulated_plutos", "free_loopback_addresses", "serve"]
