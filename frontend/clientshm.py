"""Client shared-memory methods of FrontendCore (issue 3: not implemented yet).

Register/unregister answer UNSUPPORTED (Triton's text when --allow-client-shm is
off); status answers an empty list, or NOT_FOUND for a named region.
"""
from __future__ import annotations

from tritond.errors import TritonError, not_found, unsupported

SHM_DISABLED = ("Client shared memory is disabled. Start the server with "
                "'--allow-client-shm=true' to enable.")


class ClientShm:
    """Mixin: needs ``self.options``."""

    options: dict

    def _shm_unsupported(self) -> TritonError:
        if not self.options.get("allow_client_shm"):
            return unsupported(SHM_DISABLED)
        return unsupported("client shared memory is not supported yet")

    def register_system_shm(self, name: str, key: str, offset: int, byte_size: int) -> None:
        raise self._shm_unsupported()

    def unregister_system_shm(self, name: str = "") -> None:
        raise self._shm_unsupported()

    def system_shm_status(self, name: str = "") -> list[dict]:
        if name:
            raise not_found(f"Unable to find system shared memory region: '{name}'")
        return []

    def register_cuda_shm(self, name: str, raw_handle: bytes, device_id: int,
                          byte_size: int) -> None:
        raise self._shm_unsupported()

    def unregister_cuda_shm(self, name: str = "") -> None:
        raise self._shm_unsupported()

    def cuda_shm_status(self, name: str = "") -> list[dict]:
        if name:
            raise not_found(f"Unable to find cuda shared memory region: '{name}'")
        return []
