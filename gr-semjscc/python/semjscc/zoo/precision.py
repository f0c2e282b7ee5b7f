"""Which precision (fp32 or int8) a session runs, decided per model file and per CPU.

A model directory may ship int8 files (ONNX Runtime static QDQ quantization, ``semjscc export --precision
int8``) beside its fp32 ones; its card says, per role, whether the int8 file held the accuracy tolerance
(``int8.use``, from the paired measurement on the 10,000 test images). ``auto`` (the default) takes the int8
file where the card allows it *and* this CPU runs int8 convolutions fast: x86 with VNNI (AVX-512 VNNI,
AVX-VNNI or AMX), where ONNX Runtime's u8s8 kernels do four multiply-adds per instruction. On an AVX2-only
x86 CPU the same kernels need three instructions per step and the gain shrinks to little or nothing (the
issue's trial; not measurable on the development machine, which has VNNI), so ``auto`` stays on fp32 there;
``--precision int8`` / ``$SEMJSCC_PRECISION=int8`` still runs int8 on any CPU that has AVX2. Below AVX2
(and on non-x86 CPUs, where this module cannot tell) an explicit int8 request is refused: one ModelError line.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from semjscc.util.errors import ModelError, UsageError
from semjscc.zoo.card import ModelCard

log = logging.getLogger("semjscc.runtime")

PRECISION_ENV = "SEMJSCC_PRECISION"
CPU_FLAGS_ENV = "SEMJSCC_CPU_FLAGS"  # a space-separated flag list replacing /proc/cpuinfo's (tests; other CPUs)
REQUESTS = ("auto", "fp32", "int8")
TOLERANCE_PP = 0.3  # |int8 - fp32| accuracy, percentage points, at every SNR and protocol (issue 23)
NEEDED = ("avx2",)  # ONNX Runtime's x86 int8 kernels below this are a slow generic path
FAST = ("avx512_vnni", "avx_vnni", "amx_int8")  # any of these: int8 convolutions measured faster (results.md)


def check_request(value: str | None, what: str = "precision") -> str:
    """A precision request (auto, fp32, int8), from ``value`` or $SEMJSCC_PRECISION; UsageError otherwise."""
    v = (value or os.environ.get(PRECISION_ENV) or "auto").strip().lower()
    if v not in REQUESTS:
        source = what if value else f"${PRECISION_ENV}"
        raise UsageError(f"{source} {v!r}: use one of {', '.join(REQUESTS)}")
    return v


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo, or $SEMJSCC_CPU_FLAGS); empty when unknown."""
    env = os.environ.get(CPU_FLAGS_ENV)
    if env is not None:  # read at every call: a test (or a user) may set it after the first model loaded
        return frozenset(env.lower().split())
    return _proc_cpu_flags()


@functools.lru_cache(maxsize=1)
def _proc_cpu_flags() -> frozenset[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("flags"):
                return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


@dataclass(frozen=True)
class Int8Support:
    runs: bool  # the CPU has what int8 needs (an explicit request is honoured)
    fast: bool  # and what makes it pay (auto picks it)
    why: str


def int8_support() -> Int8Support:
    """What this CPU offers int8 inference, from its flags."""
    flags = cpu_flags()
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64", "i686", "x86") and CPU_FLAGS_ENV not in os.environ:
        return Int8Support(False, False, f"a {machine} CPU, whose int8 support this build does not check")
    missing = [f for f in NEEDED if f not in flags]
    if missing:
        return Int8Support(False, False, f"this CPU lacks {', '.join(missing)}")
    fast = [f for f in FAST if f in flags]
    if fast:
        return Int8Support(True, True, f"this CPU has {', '.join(fast)}")
    return Int8Support(True, False, f"this CPU has AVX2 but no VNNI ({'/'.join(FAST)}), where int8 gains little")


def choose(card: ModelCard | None, role: str, request: str, label: str) -> str:
    """The precision to run ``role`` of a model at: 'fp32' or 'int8'. Logs what it chose and why;
    ModelError when int8 is asked for explicitly and the model has no int8 file or the CPU cannot run it."""
    has = card is not None and role in card.int8_files
    if request == "fp32":
        return "fp32"
    support = int8_support()
    if request == "int8":
        if not has:
            raise ModelError(f"{label}: precision int8 requested but the model ships no int8 {role} file; quantize it "
                             f"(semjscc export --model DIR --precision int8) or use precision fp32/auto")
        if not support.runs:
            raise ModelError(f"{label}: precision int8 requested but {support.why}: int8 needs "
                             f"{', '.join(NEEDED).upper()}; use precision fp32 (or auto)")
        log.info("%s: int8 (requested; %s)", label, support.why)
        return "int8"
    if not has:
        return "fp32"  # nothing to choose: no log line for every fp32-only model
    if not card.int8_use(role):
        log.info("%s: fp32 (auto: the card's int8 %s did not hold the %.1f-point accuracy tolerance)", label, role,
                 TOLERANCE_PP)
        return "fp32"
    if not support.fast:
        log.info("%s: fp32 (auto: %s)", label, support.why)
        return "fp32"
    log.info("%s: int8 (auto: within the card's accuracy tolerance; %s)", label, support.why)
    return "int8"
