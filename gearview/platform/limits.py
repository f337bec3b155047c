"""Resource limits for worker processes (setrlimit where the OS has it)."""

from __future__ import annotations

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]


def _vm_size() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def limit_address_space(extra: int) -> bool:
    """Cap this process's address space at what it uses now plus `extra`; False: not capped.

    Only where the kernel tells the current size (Linux); elsewhere the process runs uncapped.
    """
    limit = _vm_size() + extra
    if resource is None or limit <= extra:
        return False
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return True
