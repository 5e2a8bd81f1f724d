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

Unregistering does not drop a registration at once: it becomes *awaiting*
(Triton's awaiting unregistration), still in the table so that every frontend
lists it and accepts new requests naming it, until every frontend reported
``ShmIdle`` (none of its requests uses it). Only requests on one frontend know
they use it, so only the registry, which hears from all of them, can tell when
the server as a whole is done with it. The name itself is free at once: a new
registration under it shadows the awaiting one.
"""
from __future__ import annotations

from tritond import messages
from tritond.errors import Code


class ShmRegistry:
    """Registrations by name, the awaiting ones by gen, a generation counter, the table seq."""

    def __init__(self) -> None:
        self.regions: dict[str, messages.ShmRegion] = {}
        self.awaiting: dict[int, messages.ShmRegion] = {}
        self._idle: dict[int, set[str]] = {}      # gen -> frontends done with it
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
                self.awaiting[reg.gen] = messages.ShmRegion(
                    reg.name, reg.kind, reg.key, reg.offset, reg.byte_size, reg.device_id,
                    reg.gen, awaiting=True)
                self._idle[reg.gen] = set()

    def idle(self, gen: int, frontend: str, live: list[str]) -> bool:
        """``frontend`` is done with awaiting ``gen``: True when it left the table (every
        frontend in ``live`` is done with it)."""
        if gen not in self.awaiting:
            return False
        done = self._idle[gen]
        done.add(frontend)
        return self.forget_done(live)

    def forget_done(self, live: list[str]) -> bool:
        """Drop the awaiting registrations every frontend in ``live`` is done with (also
        when a frontend stopped): True when one went."""
        gone = [g for g, done in self._idle.items() if all(a in done for a in live)]
        for g in gone:
            del self.awaiting[g], self._idle[g]
        return bool(gone)

    def table(self) -> messages.ShmTable:
        self.seq += 1
        return messages.ShmTable([*self.regions.values(), *self.awaiting.values()], self.seq)
