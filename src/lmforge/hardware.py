"""What the CPU offers, for choosing run dtypes.

AMX-BF16 tiles make bf16 matrix products five to six times faster than fp32; without them (AVX2
or AVX-512 only) PyTorch emulates bf16 and it is several times *slower*. Training, generation
and embedding all pick bf16 only where AMX is present.
"""

from __future__ import annotations

import functools


@functools.cache
def cpu_has_amx() -> bool:
    """True on CPUs with AMX bf16 tiles (read from /proc/cpuinfo; False where it is unavailable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False
