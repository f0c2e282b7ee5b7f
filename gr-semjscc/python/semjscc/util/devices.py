"""The devices a command can be told to use, the same for torch (training) and ONNX Runtime
(inference): ``auto`` (a GPU when one is visible, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``.
Torch-free, so the command line checks ``--device`` before importing anything heavy."""

from __future__ import annotations

from semjscc.util.errors import UsageError

DEVICES = ("auto", "cpu", "cuda", "cuda:N")


def check_device(device: object) -> str:
    """``device`` if it is one of :data:`DEVICES`, else UsageError naming the accepted ones."""
    text = device if isinstance(device, str) else ""
    if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise UsageError(f"device {device!r}: use auto, cpu, cuda or cuda:N")
