"""The client shared-memory registry every frontend shares (pure: no I/O).

With several frontends a region registered through one connection must be
usable by a request on any other, so the registrations have one owner: the
parent (``tritond/parent/clientshm.py``) keeps a :class:`ShmRegistry` and
publishes it to every frontend as a ``ShmTable``, the way model tables go out.
The frontend that took the call checks the key and the bounds first (its
``ClientShm``: ``shm/keys.py``, shm_open + fstat); the registry decides names
(ALREADY_EXISTS) and numbers each registration (``gen``, never reused, which
mapping caches key on). A frontend built without a parent (unit tests) keeps
a registry of its own.
"""
from __future__ import annotations

from tritond import messages
from tritond.errors import Code


class ShmRegistry:
    """Registrations by name, a generation counter and the table sequence."""

    def __init__(self) -> None:
        self.regions: dict[str, messages.ShmRegion] = {}
        self._gen = 0
        self.seq = 0

    def register(self, region: messages.ShmRegion) -> messages.ErrorInfo | None:
        if region.name in self.regions:
            return messages.ErrorInfo(int(Code.ALREADY_EXISTS),
                                      f"shared memory region '{region.name}' already in manager")
        self._gen += 1
        self.regions[region.name] = messages.ShmRegion(
            region.name, region.kind, region.key, region.offset, region.byte_size,
            region.device_id, self._gen)
        return None

    def unregister(self, kind: str, name: str = "") -> None:
        """Unknown names are no error (Triton); "" removes every region of ``kind``."""
        for reg in list(self.regions.values()):
            if reg.kind == kind and (not name or reg.name == name):
                del self.regions[reg.name]

    def table(self) -> messages.ShmTable:
        self.seq += 1
        return messages.ShmTable(list(self.regions.values()), self.seq)
