"""Client shared memory: the registry of regions.

A registration is bookkeeping only: the frontend checks the key and bounds once
(shm_open + fstat, like Triton) and keeps no mapping of its own except to
validate BYTES inputs. A request naming a region becomes a ``TensorRef`` of
kind CLIENT_SHM (region = the POSIX key, offset = registered offset + tensor
offset) that the worker maps itself: no byte of a shm tensor is copied here.

Shared by every frontend: a registration is checked here, then added to the
parent's registry (``tritond/shmtable.py``), which answers once every frontend
applied the new ``ShmTable``; so a region registered through one connection is
usable at once through any other, whichever frontend the kernel gave it, and
status lists the same set everywhere.

Lifetime: unregistering frees the name at once (a new registration under it
shadows the old one), but while requests on any frontend still use the region it
stays *awaiting* in the parent's table: listed by status and usable by new
requests on every frontend, as in Triton. Each frontend says ``ShmIdle`` once
none of its own requests uses it; when all did, the parent drops it from the
table and each frontend tells the workers that mapped it for it to ``Forget``
it, so a mapping is never dropped under a running model and never outlives its
region. (A request that started on a frontend after it said idle keeps the
registration there until its Response; a worker that forgot a region another
frontend still uses maps it again on that request's Execute.)
"""
from __future__ import annotations

import base64
import math
import os

import posix_ipc

from tritond import messages
from tritond.errors import (TritonError, already_exists, invalid_arg, not_found,
                            unsupported)
from tritond.shm import cuda
from tritond.shm.keys import check_key, is_server_segment
from tritond.shmtable import ShmRegistry

from .shmregion import (CUDA, SYSTEM, Registration, cuda_handle, parse_uint, tensor_range,
                        triton_key_rules)
from .types import ShmRef
from .validate import check_bytes

SHM_DISABLED = ("Client shared memory is disabled. Start the server with "
                "'--allow-client-shm=true' to enable.")


class ClientShm:
    """The registry of client shm regions of one frontend (a member of FrontendCore)."""

    def __init__(self, options: dict, post, cache) -> None:
        self.options = options
        self._post = post
        self._cache = cache                # the frontend's mappings (BYTES input checks)
        self._regions: dict[str, Registration] = {}
        # Unregistered while requests still use them, by gen: as in Triton
        # (awaiting_unregister_) still listed and usable by new requests until the last
        # use anywhere ends. Unlike Triton the name is free at once: a region registered
        # under it shadows this one.
        self._dying: dict[int, Registration] = {}
        self._uses: dict[int, list[Registration]] = {}   # rid -> registrations it uses
        # ``query(kind, **fields)`` asks the parent's registry and ``idle(gen)`` tells it
        # ShmIdle (FrontendCore sets both); without a parent this frontend's own
        # registry stands in.
        self.query = None
        self.idle = None
        self._local = ShmRegistry()

    def _shm_enabled(self) -> None:
        if not self.options.allow_client_shm:
            raise unsupported(SHM_DISABLED)

    check_enabled = _shm_enabled     # the HTTP route's first check (before the body)

    async def _add(self, name: str, kind: str, key: str, offset: int, byte_size: int,
                   device_id: int) -> None:
        if name in self._regions:
            raise already_exists(f"shared memory region '{name}' already in manager")
        region = messages.ShmRegion(name, kind, key, offset, byte_size, device_id, 0)
        if self.query is not None:
            await self.query(messages.ShmRegisterQuery, region=region)
            return
        error = self._local.register(region)
        if error is not None:
            raise TritonError(error.code, error.message)
        self.apply(self._local.table())

    async def _remove(self, kind: str, name: str) -> None:
        if self.query is not None:
            await self.query(messages.ShmUnregisterQuery, kind=kind, name=name)
            return
        self._local.unregister(kind, name)
        self.apply(self._local.table())

    def apply(self, table: messages.ShmTable) -> None:
        """The registry's new table: keep the registrations still listed (their uses),
        add the new ones, say idle for the awaiting ones unused here, retire the removed
        ones after their last use here."""
        old = {r.gen: r for r in self._regions.values()}
        old.update(self._dying)
        regions, dying, idle = {}, {}, []
        for r in table.regions:
            reg = old.pop(r.gen, None) or Registration(
                r.name, r.kind, r.key, r.offset, r.byte_size, r.device_id, r.gen)
            if r.awaiting:
                reg.awaiting = True
                dying[r.gen] = reg
                if reg.uses == 0 and not reg.said_idle:
                    idle.append(reg)
            else:
                regions[r.name] = reg
        self._regions, self._dying = regions, dying
        for reg in old.values():                  # out of the table
            reg.dead = True
            if reg.uses == 0:
                self._retire(reg)
            else:                                 # a request here still uses it
                dying[reg.gen] = reg
        for reg in idle:
            self._say_idle(reg)

    def _say_idle(self, reg: Registration) -> None:
        reg.said_idle = True
        if self.idle is not None:
            self.idle(reg.gen)
        elif self._local.idle(reg.gen, "", [""]):
            self.apply(self._local.table())

    def _find(self, name: str) -> Registration | None:
        """The registration ``name`` means: the live one, else the newest awaiting one."""
        reg = self._regions.get(name)
        if reg is None and self._dying:
            named = [r for r in self._dying.values() if r.name == name]
            reg = max(named, key=lambda r: r.gen) if named else None
        return reg

    # ------------------------------------------------------------ system

    async def register_system_shm(self, name: str, key: str, offset: int,
                                  byte_size: int) -> None:
        self._shm_enabled()
        triton_key_rules(name, key)
        posix_name = check_key(key)          # before any system call sees it
        offset, byte_size = parse_uint(offset, "offset"), parse_uint(byte_size, "byte_size")
        if name in self._regions:
            raise already_exists(f"shared memory region '{name}' already in manager")
        try:
            shm = posix_ipc.SharedMemory(posix_name, 0)
        except (posix_ipc.Error, ValueError):   # a client's mistake: 400, not Triton's 500
            raise invalid_arg(f"Unable to open shared memory region: '{key}'") from None
        try:
            if is_server_segment(shm.fd):
                raise invalid_arg(f"shared memory key '{key}' is reserved for the server's "
                                  f"own memory")
            size = os.fstat(shm.fd).st_size
        finally:
            shm.close_fd()
        # Python ints do not overflow: offset + byte_size is exact.
        if offset + byte_size > size:
            raise invalid_arg(f"failed to register shared memory region '{name}': invalid args")
        await self._add(name, SYSTEM, key, offset, byte_size, -1)

    async def unregister_system_shm(self, name: str = "") -> None:
        self._shm_enabled()
        await self._remove(SYSTEM, name)

    def system_shm_status(self, name: str = "") -> list[dict]:
        return self._status(SYSTEM, name)

    # -------------------------------------------------------------- CUDA

    async def register_cuda_shm(self, name: str, raw_handle, device_id: int,
                                byte_size: int) -> None:
        self._shm_enabled()
        raw_handle = cuda_handle(name, raw_handle)
        device_id = parse_uint(device_id, "device_id")
        byte_size = parse_uint(byte_size, "byte_size")
        if name in self._regions:
            raise already_exists(f"shared memory region '{name}' already in manager")
        why = cuda.unavailable_reason(device_id)
        if why and not cuda.unavailable_reason(0):      # CUDA works; that device does not
            raise invalid_arg(f"failed to register shared memory region '{name}': "
                              f"invalid args ({why})")
        if why:
            raise unsupported(f"failed to register CUDA shared memory region '{name}': {why}")
        await self._add(name, CUDA, base64.b64encode(bytes(raw_handle)).decode(), 0,
                        byte_size, device_id)

    async def unregister_cuda_shm(self, name: str = "") -> None:
        self._shm_enabled()
        await self._remove(CUDA, name)

    def cuda_shm_status(self, name: str = "") -> list[dict]:
        return self._status(CUDA, name)

    # ------------------------------------------------------------ shared

    def _status(self, kind: str, name: str) -> list[dict]:
        if name:
            reg = self._find(name)
            if reg is None or reg.kind != kind:
                raise not_found(f"Unable to find {kind} shared memory region: '{name}'")
            return [reg.status()]
        names = dict.fromkeys([*self._regions, *(r.name for r in self._dying.values())])
        regs = [self._find(n) for n in names]
        return [r.status() for r in regs if r.kind == kind]

    def _retire(self, reg: Registration) -> None:
        """Nobody uses ``reg`` any more: every process that mapped it drops the mapping."""
        if self._dying.get(reg.gen) is reg:
            del self._dying[reg.gen]
        region = (reg.key, reg.gen)
        for instance in reg.instances:
            self._post(instance, messages.Forget([region]))
        reg.instances.clear()
        if reg.kind == SYSTEM:
            self._cache.forget(reg.key, reg.gen)

    def _shm_tensor(self, name: str, dtype: str, shape: list, shm: ShmRef,
                    used: list) -> messages.TensorRef:
        """The TensorRef of a tensor in a registered region; checks the range (Triton's texts)."""
        if not self.options.allow_client_shm:
            raise unsupported(SHM_DISABLED)
        reg = self._regions.get(shm.region) or self._find(shm.region)
        if reg is None:
            raise not_found(f"Unable to find shared memory region: '{shm.region}'")
        offset, size = tensor_range(reg, shm)
        used.append(reg)
        kind = messages.CLIENT_SHM if reg.kind == SYSTEM else messages.CUDA_SHM
        return messages.TensorRef(name, dtype, shape, reg.key, reg.offset + offset, size, kind,
                                  reg.device_id, reg.gen)

    def input_ref(self, model: str, t, used: list, request_id: str = "") -> messages.TensorRef:
        """An input in client shm: a reference only (BYTES framing checked in place; its
        errors name the request's id, as Triton's core does)."""
        ref = self._shm_tensor(t.name, t.datatype, t.shape, t.shm, used)
        if t.datatype == "BYTES":
            if ref.kind != messages.CLIENT_SHM:
                raise unsupported("BYTES inputs in CUDA shared memory are not supported")
            # pread, not a mapping: a region shrunk by its client cannot SIGBUS the frontend.
            data = self._cache.read(ref.region, ref.offset, ref.nbytes, ref.gen)
            check_bytes(model, t.name, memoryview(data), math.prod(t.shape), request_id)
        return ref

    def output_dest(self, out, used: list) -> messages.TensorRef:
        """Where the worker writes requested output ``out`` (dtype/shape are the worker's)."""
        return self._shm_tensor(out.name, "", [], out.shm, used)

    def read_input(self, shm: ShmRef) -> bytes:
        """The bytes of an input in a registered region (the response cache's key)."""
        ref = self._shm_tensor("", "", [], shm, [])
        if ref.kind != messages.CLIENT_SHM:
            raise unsupported("the response cache cannot read CUDA shared memory")
        return self._cache.read(ref.region, ref.offset, ref.nbytes, ref.gen)

    def read_output(self, shm: ShmRef) -> bytes:
        """The whole range a request named for an output (a cache miss stores it)."""
        return self.read_input(shm)

    def write_output(self, shm: ShmRef, data) -> None:
        """A cached output into the client's region, with pwrite: a region its client
        shrank is refused, never grown or a SIGBUS (the frontend keeps no writable map)."""
        ref = self._shm_tensor("", "", [], shm, [])
        if ref.kind != messages.CLIENT_SHM:
            raise unsupported("the response cache cannot write CUDA shared memory")
        try:
            seg = posix_ipc.SharedMemory(check_key(ref.region), 0)
        except (posix_ipc.Error, ValueError):
            raise invalid_arg(f"Unable to open shared memory region: '{ref.region}'") from None
        try:
            if ref.offset + len(data) > os.fstat(seg.fd).st_size:
                raise invalid_arg(f"shared memory region '{shm.region}' is smaller than "
                                  f"it was registered")
            os.pwrite(seg.fd, data, ref.offset)
        finally:
            seg.close_fd()

    def sent(self, rid: int, used: list) -> None:
        for reg in used:
            reg.uses += 1
        self._uses[rid] = used

    def answered(self, rid: int, resp: messages.Response) -> None:
        """The final Response for ``rid`` came: no process touches its regions for it any
        more. Its worker, and for an ensemble every worker that ran a step
        (``Response.mapped``), may hold a mapping: they are told to Forget it."""
        used = self._uses.pop(rid, None) if self._uses else None
        if used is None:                   # the usual case: a request without client shm
            return
        instance = resp.instance
        for reg in used:
            reg.uses -= 1
            if instance:
                reg.instances.add(instance)
            if resp.mapped:
                reg.instances.update(resp.mapped)
            if reg.uses == 0:
                if reg.dead:
                    self._retire(reg)
                elif reg.awaiting and not reg.said_idle:
                    self._say_idle(reg)

    def extensions(self) -> list[str]:
        if not self.options.allow_client_shm:
            return []
        return ["system_shared_memory"] + (["cuda_shared_memory"] if cuda.available() else [])

