"""What the machine can compute fast: native bfloat16 on the CPU, a GPU, and the mixed
precision that ``--mixed_precision=auto`` picks from them.

bfloat16 only pays where the hardware computes it natively: on a CPU without AVX-512 BF16 or
AMX, TensorFlow emulates it and a bfloat16 step is slower than float32 (docs/performance.md).
So ``auto`` picks

* a GPU of compute capability >= 8.0 (Ampere and later): ``bfloat16``;
* an older GPU with tensor cores (>= 7.0): ``float16`` (with loss scaling in training);
* a CPU with ``avx512_bf16`` or ``amx_bf16`` in /proc/cpuinfo: ``bfloat16``;
* anything else: ``float32``.

Example:

>>> policy, reason = resolve_mixed_precision("auto")
>>> print(f"mixed precision: {policy} ({reason})")
"""

from __future__ import annotations

import dataclasses
import os
from typing import FrozenSet, Optional, Tuple

from deeplab_tf.errors import ConfigError

CHOICES = ("float32", "bfloat16", "float16", "auto")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_CPUINFO = "/proc/cpuinfo"


@dataclasses.dataclass(frozen=True)
class Hardware:
    """What ``detect`` found.

    Attributes:
        cpu_model: str. The CPU's model name ("" when unknown).
        cpu_count: int. Logical CPUs.
        cpu_flags: frozenset of str. The CPU's feature flags (/proc/cpuinfo).
        gpus: tuple of (name, (major, minor) compute capability or None).
    """

    cpu_model: str = ""
    cpu_count: int = 1
    cpu_flags: FrozenSet[str] = frozenset()
    gpus: Tuple[Tuple[str, Optional[Tuple[int, int]]], ...] = ()

    @property
    def native_bf16(self) -> bool:
        """True when the CPU computes bfloat16 natively (AVX-512 BF16 or AMX)."""
        return any(flag in self.cpu_flags for flag in NATIVE_BF16_FLAGS)

    @property
    def avx512(self) -> bool:
        return "avx512f" in self.cpu_flags

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


def detect(cpuinfo_text: Optional[str] = None, gpus=None) -> Hardware:
    """The machine's ``Hardware``; ``cpuinfo_text`` / ``gpus`` override what is read (tests)."""
    model, flags = parse_cpuinfo(_read_cpuinfo() if cpuinfo_text is None else cpuinfo_text)
    return Hardware(cpu_model=model, cpu_count=os.cpu_count() or 1, cpu_flags=flags,
                    gpus=_gpus() if gpus is None else tuple(gpus))


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
        flags = [f for f in NATIVE_BF16_FLAGS if f in hardware.cpu_flags]
        return "bfloat16", f"the CPU computes bfloat16 natively ({', '.join(flags)})"
    return "float32", ("the CPU has no native bfloat16 (no avx512_bf16/amx_bf16 in "
                       "/proc/cpuinfo): bfloat16 would be emulated and slower")
