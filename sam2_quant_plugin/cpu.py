"""The one reader of ``/proc/cpuinfo``: CPU name, generation (family / model) and instruction-set flags.

Every figure this project prints names the CPU it was measured on, because int8 kernels differ between CPUs
of the same kind (AVX2-only hosts saturate u8 x s8 pairs in int16, VNNI hosts do not). Reports, benchmarks
and the int8 host probe all take the CPU from here, so they agree on how it is spelt.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

# flags that decide which int8 kernels a CPU runs, in the order reports list them
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "avx_vnni_int8", "amx_int8", "avx512bw", "avx2")
# flags that decide which float / int8 vector width a CPU runs (the short ISA summary of a label)
ISA_FLAGS = ("avx512_vnni", "avx_vnni", "avx512f", "avx2")


@dataclass(frozen=True)
class CpuInfo:
    """What one processor block of ``/proc/cpuinfo`` says ("?" where a field is missing)."""

    name: str
    family: str
    model: str
    flags: frozenset[str]

    @property
    def isa(self) -> str:
        """Comma-separated vector-ISA summary, e.g. ``avx512_vnni,avx512f,avx2`` or ``avx2``."""
        return ",".join(f for f in ISA_FLAGS if f in self.flags)

    @property
    def int8_flags(self) -> str:
        """Comma-separated int8-relevant flags, e.g. ``avx512_vnni,avx512bw,avx2``."""
        return ",".join(f for f in INT8_FLAGS if f in self.flags)

    @property
    def family_model(self) -> str:
        return f"{self.family}/{self.model}"

    @property
    def label(self) -> str:
        """'AMD EPYC (family 23 model 1) [avx2]': a VM's model name can be generic, so the generation
        (family / model) and the ISA are part of the name."""
        return label_from(self.name, self.family_model, self.isa)


def label_from(name: str, family_model: str, isa: str) -> str:
    """The label of :attr:`CpuInfo.label` from a saved report's fields (older reports lack some)."""
    family, _, model = (family_model or "?/?").partition("/")
    return f"{name} (family {family} model {model or '?'}) [{isa or 'no AVX2'}]"


def parse_cpuinfo(text: str, fallback_name: str = "") -> CpuInfo:
    """Parse the first processor block of a ``/proc/cpuinfo`` text (all cores of a VM are alike)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return CpuInfo(
        name=fields.get("model name") or fallback_name or "unknown CPU",
        family=fields.get("cpu family", "?"),
        model=fields.get("model", "?"),
        flags=frozenset(fields.get("flags", "").split()),
    )


@functools.cache
def this_cpu() -> CpuInfo:
    """This host's CPU (cached: it does not change while the process runs)."""
    fallback = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: the name is all there is
        return CpuInfo(name=fallback or "unknown CPU", family="?", model="?", flags=frozenset())
    return parse_cpuinfo(text, fallback)
