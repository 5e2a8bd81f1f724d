"""One registered client shm region (``Registration``) and the checks of what a client
sends about regions: a registration's key, numbers and CUDA handle, and a tensor's range
inside a region. Triton's texts throughout; ``clientshm.py`` is the registry using them."""
from __future__ import annotations

import base64
import binascii

from tritond.errors import invalid_arg

CUDA_HANDLE_BYTES = 64       # sizeof(cudaIpcMemHandle_t)
SYSTEM, CUDA = "system", "cuda"


class Registration:
    """One registered region and the requests still using it."""

    __slots__ = ("name", "kind", "key", "offset", "byte_size", "device_id", "gen", "uses",
                 "instances", "awaiting", "said_idle", "dead")

    def __init__(self, name, kind, key, offset, byte_size, device_id, gen):
        self.name, self.kind, self.key = name, kind, key     # key: POSIX name or b64 handle
        self.offset, self.byte_size, self.device_id, self.gen = offset, byte_size, device_id, gen
        self.uses = 0                  # requests sent and not yet answered
        self.instances: set[str] = set()   # workers that may hold a mapping of it
        self.awaiting = False          # unregistered; the parent waits for every frontend
        self.said_idle = False         # this frontend sent ShmIdle for it
        self.dead = False              # out of the table; retired when uses drops to 0

    def status(self) -> dict:
        if self.kind == SYSTEM:
            return {"name": self.name, "key": self.key, "offset": self.offset,
                    "byte_size": self.byte_size}
        return {"name": self.name, "device_id": self.device_id, "byte_size": self.byte_size}


_SIZE_SPAN = 1 << 64
_SIZE_MAX = _SIZE_SPAN - 1
_RESERVED = "triton_python_backend_shm_region_"    # Triton's kTritonSharedMemoryRegionPrefix


def triton_key_rules(name: str, key) -> None:
    """Triton's ValidateSharedMemoryKey, before ours (``check_key``): a key of slashes only,
    or one whose name starts with the prefix of Triton's Python backend regions."""
    if type(key) is not str:
        return                                  # check_key's "Unable to parse 'key'"
    bare = key.lstrip("/")
    if not bare:
        raise invalid_arg(f"cannot register shared memory region '{name}' - invalid shm key "
                          f"'{key}'")
    if bare.startswith(_RESERVED):
        raise invalid_arg(f"cannot register shared memory region '{name}' with key '{key}' as "
                          f"the key contains the reserved prefix '{_RESERVED}'")


def parse_uint(value, field: str) -> int:
    if type(value) is not int or value < 0:
        raise invalid_arg(f"Unable to parse '{field}'")
    return value


def cuda_handle(name: str, raw_handle) -> bytes:
    """A register call's ``raw_handle`` (HTTP's base64 text or gRPC's bytes) as bytes."""
    # Triton answers every handle it cannot open "failed to register shared memory
    # region ... invalid args" (clients and its qa tests match that); the detail follows.
    if type(raw_handle) is str:      # HTTP sends {"b64": ...}; gRPC sends the bytes
        try:
            raw_handle = base64.b64decode(raw_handle, validate=True)
        except (binascii.Error, ValueError):
            raise invalid_arg("Unable to parse 'raw_handle': not base64") from None
    if not isinstance(raw_handle, (bytes, bytearray)):
        raise invalid_arg("Unable to parse 'raw_handle'")
    if len(raw_handle) != CUDA_HANDLE_BYTES:
        raise invalid_arg(f"failed to register shared memory region '{name}': invalid args "
                          f"('raw_handle' must be a cudaIpcMemHandle_t of "
                          f"{CUDA_HANDLE_BYTES} bytes, got {len(raw_handle)})")
    return raw_handle


def tensor_range(reg: Registration, shm) -> tuple[int, int]:
    """(offset, size) of a tensor a request places in ``reg`` (a ShmRef), checked."""
    # As Triton's size_t: a negative gRPC int64 is a huge offset or size.
    offset, size = shm.offset % _SIZE_SPAN, shm.byte_size % _SIZE_SPAN
    if (reg.byte_size and offset >= reg.byte_size) or (not reg.byte_size and offset > 0):
        raise invalid_arg(f"Invalid offset for shared memory region: '{shm.region}'")
    if size > _SIZE_MAX - offset:
        raise invalid_arg(f"Integer overflow detected: byte_size ({size}) + offset ({offset}) "
                          f"exceeds maximum value ({_SIZE_MAX}) for region '{shm.region}'")
    if size > reg.byte_size - offset:
        raise invalid_arg(
            f"Invalid offset + byte size for shared memory region: '{shm.region}'")
    return offset, size
