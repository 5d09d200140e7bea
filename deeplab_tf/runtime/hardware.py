"""What the machine can compute fast: native bfloat16 on the CPU, a GPU, and the mixed
precision that ``--mixed_precision=auto`` picks from them.

bfloat16 only pays where the hardware computes it natively: on a CPU without AVX-512 BF16 or
AMX, TensorFlow emulates it and a bfloat16 step is slower than float32 (docs/performance.md).
So ``auto`` picks

* a GPU of compute capability >= 8.0 (Ampere and later): ``bfloat16``;
* an older GPU with tensor cores (>= 7.0): ``float16`` (with loss scaling in training);
* a CPU with ``avx512_bf16`` or ``amx_bf16`` in /proc/cpuinfo: ``bfloat16``;
* anything else: ``float32``.

A CPU counts as computing bfloat16 natively only when TensorFlow's oneDNN kernels may use
those instructions: not with ``TF_ENABLE_ONEDNN_OPTS=0`` (TensorFlow's own kernels emulate
bfloat16) nor with ``ONEDNN_MAX_CPU_ISA`` below ``AVX512_CORE_BF16`` (how this project
emulates the AVX2 kind on an AVX-512 machine).

``--inference_precision=auto`` (``resolve_inference_precision``) follows the same rule for
deeplab-eval, deeplab-vis and the SavedModel, between ``float32`` and ``bfloat16`` only:
bfloat16 labels agree with float32 ones on over 99.5 % of the pixels of trained models
(docs/performance.md), the project's bar for a fast default.

Example:

>>> policy, reason = resolve_mixed_precision("auto")
>>> print(f"mixed precision: {policy} ({reason})")
"""

from __future__ import annotations

import dataclasses
import os
from typing import FrozenSet, Optional, Tuple

from deeplab_tf.config.eval import INFERENCE_PRECISIONS as INFERENCE_CHOICES
from deeplab_tf.errors import ConfigError

CHOICES = ("float32", "bfloat16", "float16", "auto")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_CPUINFO = "/proc/cpuinfo"
# oneDNN's ISA limits (ONEDNN_MAX_CPU_ISA), lowest first; bfloat16 is native from
# AVX512_CORE_BF16 up. A name not listed here is taken as no limit.
ONEDNN_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
               "AVX512_CORE_VNNI", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512",
               "AVX512_CORE_AMX", "AVX10_1_512_AMX", "AVX512_CORE_AMX_FP16",
               "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "ALL")
_FIRST_BF16_ISA = ONEDNN_ISAS.index("AVX512_CORE_BF16")


def kernel_limits(environ=None) -> Tuple[str, ...]:
    """What keeps TensorFlow's CPU kernels from native bfloat16 in this environment: the
    variables ``TF_ENABLE_ONEDNN_OPTS=0`` and ``ONEDNN_MAX_CPU_ISA`` (or its older name
    ``DNNL_MAX_CPU_ISA``) below ``AVX512_CORE_BF16``, as ``NAME=value`` (empty: none)."""
    environ = os.environ if environ is None else environ
    limits = []
    if environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() in ("0", "false"):
        limits.append(f"TF_ENABLE_ONEDNN_OPTS={environ['TF_ENABLE_ONEDNN_OPTS']}")
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        isa = environ.get(name, "").strip().upper()
        if isa in ONEDNN_ISAS and ONEDNN_ISAS.index(isa) < _FIRST_BF16_ISA:
            limits.append(f"{name}={environ[name]}")
    return tuple(limits)


@dataclasses.dataclass(frozen=True)
class Hardware:
    """What ``detect`` found.

    Attributes:
        cpu_model: str. The CPU's model name ("" when unknown).
        cpu_count: int. Logical CPUs.
        cpu_flags: frozenset of str. The CPU's feature flags (/proc/cpuinfo).
        gpus: tuple of (name, (major, minor) compute capability or None).
        kernel_limits: tuple of str. ``kernel_limits()``: environment settings that keep
            TensorFlow's kernels from the CPU's bfloat16 instructions.
    """

    cpu_model: str = ""
    cpu_count: int = 1
    cpu_flags: FrozenSet[str] = frozenset()
    gpus: Tuple[Tuple[str, Optional[Tuple[int, int]]], ...] = ()
    kernel_limits: Tuple[str, ...] = ()

    @property
    def bf16_flags(self) -> Tuple[str, ...]:
        """The CPU's bfloat16 feature flags (``NATIVE_BF16_FLAGS`` it has)."""
        return tuple(flag for flag in NATIVE_BF16_FLAGS if flag in self.cpu_flags)

    @property
    def native_bf16(self) -> bool:
        """True when TensorFlow computes bfloat16 natively on this CPU (AVX-512 BF16 or AMX,
        and no ``kernel_limits``)."""
        return bool(self.bf16_flags) and not self.kernel_limits

    @property
    def avx512(self) -> bool:
        return "avx512f" in self.cpu_flags

    def flags_line(self) -> str:
        """``avx512f: yes, avx512_bf16: yes, amx: no`` (the AMX flags by name when present),
        plus ``kernel_limits`` when set: the machine line of every benchmark figure."""
        amx = sorted(flag for flag in self.cpu_flags if flag.startswith("amx"))
        line = (f"avx512f: {'yes' if self.avx512 else 'no'}, avx512_bf16: "
                f"{'yes' if 'avx512_bf16' in self.cpu_flags else 'no'}, amx: "
                f"{', '.join(amx) if amx else 'no'}")
        if self.kernel_limits:
            line += f" (kernels limited by {', '.join(self.kernel_limits)})"
        return line

    def describe(self) -> str:
        """One line: CPU model, cores, vector extensions, GPUs."""
        vector = ("AMX" if "amx_bf16" in self.cpu_flags else
                  "AVX-512 BF16" if "avx512_bf16" in self.cpu_flags else
                  "AVX-512" if self.avx512 else "AVX2" if "avx2" in self.cpu_flags else
                  "no AVX2" if self.cpu_flags else "unknown vector extensions")
        text = f"{self.cpu_model or 'unknown CPU'}, {self.cpu_count} cores, {vector}"
        for name, capability in self.gpus:
            cc = f" (compute capability {capability[0]}.{capability[1]})" if capability else ""
            text += f"; GPU {name}{cc}"
        return text


def parse_cpuinfo(text: str) -> Tuple[str, FrozenSet[str]]:
    """(model name, feature flags) of the first processor in /proc/cpuinfo text."""
    model, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:  # x86 "flags", ARM "Features"
            flags = frozenset(value.split())
    return model, flags


def _read_cpuinfo(path: str = _CPUINFO) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _gpus():
    import tensorflow as tf

    found = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        capability = details.get("compute_capability")
        found.append((details.get("device_name", device.name),
                      tuple(int(v) for v in capability) if capability else None))
    return tuple(found)


def detect(cpuinfo_text: Optional[str] = None, gpus=None, environ=None) -> Hardware:
    """The machine's ``Hardware``; ``cpuinfo_text`` / ``gpus`` / ``environ`` override what
    is read (tests): /proc/cpuinfo, TensorFlow's GPUs, ``os.environ``."""
    model, flags = parse_cpuinfo(_read_cpuinfo() if cpuinfo_text is None else cpuinfo_text)
    if environ is None and cpuinfo_text is not None:
        environ = {}  # a given CPU: no limits of this process's environment
    return Hardware(cpu_model=model, cpu_count=os.cpu_count() or 1, cpu_flags=flags,
                    gpus=_gpus() if gpus is None else tuple(gpus),
                    kernel_limits=kernel_limits(environ))


def resolve_mixed_precision(name: str, hardware: Optional[Hardware] = None) -> Tuple[str, str]:
    """The precision to compute in, and why.

    Args:
        name: str. One of ``CHOICES``; ``"auto"`` decides from the hardware, any other
            value is returned as asked.
        hardware: Hardware or None (``detect()``).

    Returns:
        (``"float32"`` | ``"bfloat16"`` | ``"float16"``, reason: str).

    Raises:
        ValueError: an unknown name.
    """
    if name not in CHOICES:
        raise ConfigError(f"mixed_precision must be one of {', '.join(CHOICES)}. "
                         f"Received: {name!r}")
    if name != "auto":
        return name, "as asked (--mixed_precision)"
    hardware = hardware or detect()
    if hardware.gpus:
        gpu, capability = hardware.gpus[0]
        if capability and capability >= (8, 0):
            return "bfloat16", (f"GPU {gpu} (compute capability {capability[0]}."
                                f"{capability[1]}) computes bfloat16 natively")
        if capability and capability >= (7, 0):
            return "float16", (f"GPU {gpu} (compute capability {capability[0]}."
                               f"{capability[1]}) has float16 tensor cores, no bfloat16")
        return "float32", f"GPU {gpu} has no fast float16/bfloat16 (capability {capability})"
    if hardware.native_bf16:
        return "bfloat16", (f"the CPU computes bfloat16 natively "
                            f"({', '.join(hardware.bf16_flags)})")
    if hardware.bf16_flags:
        return "float32", (f"the CPU has {', '.join(hardware.bf16_flags)} but "
                           f"{', '.join(hardware.kernel_limits)} keeps TensorFlow's kernels "
                           "from it: bfloat16 would be emulated and slower")
    return "float32", ("the CPU has no native bfloat16 (no avx512_bf16/amx_bf16 in "
                       "/proc/cpuinfo): bfloat16 would be emulated and slower")


def resolve_inference_precision(name: str,
                                hardware: Optional[Hardware] = None) -> Tuple[str, str]:
    """The precision inference computes in (``--inference_precision``), and why.

    ``"auto"`` is bfloat16 where ``resolve_mixed_precision("auto")`` picks it (a CPU or GPU
    that computes it natively), float32 elsewhere (float16 is not offered for inference).

    Args:
        name: str. One of ``INFERENCE_CHOICES``.
        hardware: Hardware or None (``detect()``).

    Returns:
        (``"float32"`` | ``"bfloat16"``, reason: str).

    Raises:
        ConfigError: an unknown name.
    """
    if name not in INFERENCE_CHOICES:
        raise ConfigError(f"inference_precision must be one of {', '.join(INFERENCE_CHOICES)}. "
                          f"Received: {name!r}")
    if name != "auto":
        return name, "as asked (--inference_precision)"
    chosen, reason = resolve_mixed_precision("auto", hardware)
    if chosen == "bfloat16":
        return chosen, (f"{reason}; bfloat16 labels agree with float32 on >= 99.5 % of "
                        "the pixels of trained models (docs/performance.md)")
    if chosen == "float16":
        return "float32", f"{reason}; inference offers float32 or bfloat16 only"
    return chosen, reason
