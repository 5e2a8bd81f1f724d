"""Ensembles, scheduled inside the scheduler (pure, like the core).

An ensemble request never reaches a worker: ``Ensembles.start`` submits a
*step request* for each step whose inputs are ready to the composing model's
own policy (``core.add``, in process: no socket hop), with the scheduler's
address as the requester. Workers answer those to the scheduler; their
``Response`` s (and the core's own error replies, looped back by
``SchedulerCore.settle``) come to :meth:`Ensembles.on_response`.

Tensors pass by reference: a step's output ``TensorRef`` s go unchanged (only
renamed) into the next steps' requests, so no byte is copied by the server.
Each worker-owned intermediate tensor is released to its worker (``core.release``:
it rides on that worker's next Execute) after its last consumer finished;
the requested ensemble outputs go to the requester in one final Response
whose ``owners`` name the worker of each output (the requester releases them).
The ensemble's answer waits for every step request in flight, since workers
may read the requester's input slots until then (docs/internals.md).
"""
from __future__ import annotations

import msgspec

from tritond import messages
from tritond.errors import Code

from .ensemble import Run, Step
from .outputs import Reply

_replace = msgspec.structs.replace
_refs = msgspec.msgpack.Decoder(list[messages.TensorRef]).decode
_specs = msgspec.msgpack.Decoder(list[messages.OutputSpec]).decode
SERVER_SHM = messages.SERVER_SHM


def _decoded(value, decode):
    return decode(value) if type(value) is msgspec.Raw else value


class Ensembles:
    """Every ensemble request in flight, for one :class:`SchedulerCore`."""

    def __init__(self, core) -> None:
        self.core = core
        self.clients: dict[tuple[str, int], Run] = {}   # (frontend, rid) of the request
        self.steps: dict[int, Run] = {}                 # step request rid -> its run
        self._rid = 0
        self._latest: dict[str, int] = {}

    def table_changed(self, models: dict) -> None:
        """Latest ready version per model name (steps with model_version -1)."""
        latest: dict[str, int] = {}
        for (name, version), model in models.items():
            if model.ready and version > latest.get(name, -1):
                latest[name] = version
        self._latest = latest

    def latest(self, name: str) -> int:
        return self._latest.get(name, -1)

    # ---------------------------------------------------------------- start

    def start(self, model, req, now_ns: int) -> list:
        graph = model.policy.graph
        specs = _decoded(req.outputs, _specs)
        wanted = [o.name for o in specs] or graph.outputs
        run = Run(model, req, graph, wanted, {o.name: o.dest for o in specs if o.dest})
        self.clients[(req.frontend, req.rid)] = run
        ready: list[Step] = []
        for ref in _decoded(req.inputs, _refs):
            run.tensors[ref.name] = (ref, "")          # the requester's: never ours to release
        for name in graph.inputs:                      # an absent optional input is ready too
            ready.extend(run.provide(name))
        out: list = []
        for step in ready:
            self._submit(run, step, now_ns, out)
        return out

    def _submit(self, run: Run, step: Step, now_ns: int, out: list) -> None:
        core = self.core
        version = step.version if step.version > 0 else self._latest.get(step.model, 0)
        inputs = [_replace(item[0], name=name) for name, tensor in step.inputs
                  if (item := run.tensors.get(tensor)) is not None]
        target = core._models.get((step.model, version))   # noqa: SLF001 - our core
        batch = 0
        if target is not None and target.cfg.max_batch_size > 0:
            batch = inputs[0].shape[0] if inputs and inputs[0].shape else 1
        self._rid += 1
        rid = self._rid
        req = run.req
        sub = messages.Request(
            rid, core.address, step.model, version, inputs,
            [messages.OutputSpec(o, run.dests.get(t)) for o, t in step.outputs.items()],
            batch, req.request_id, req.priority, req.timeout_us, req.correlation_id, req.flags,
            req.parameters, now_ns)
        run.pending[rid] = step
        self.steps[rid] = run
        if version == 0:
            out.append(Reply(core.address, messages.Response(rid, error=messages.ErrorInfo(
                int(Code.UNAVAILABLE), f"Request for unknown model: '{step.model}' has no "
                "available versions"))))
            return
        out.extend(core.add(sub, now_ns))

    # ------------------------------------------------------------- answers

    def on_response(self, resp: messages.Response, now_ns: int) -> list:
        """A step request's Response (from its worker, or the core's error reply)."""
        out: list = []
        run = self.steps.get(resp.rid)
        if run is None or not resp.final:
            # Unknown (answered already), or a decoupled step's partial answer:
            # decoupled composing models are refused at load.
            self._release(_owned(resp), out)
            return out
        del self.steps[resp.rid]
        step = run.pending.pop(resp.rid)
        freed: list = []
        if resp.error is not None or run.error is not None:
            freed.extend(_owned(resp))
            if run.error is None:
                run.error = resp.error
                self._cancel_pending(run, now_ns, out)
        else:
            self._store(run, step, resp, freed)
        freed.extend(run.consumed(step))
        if run.error is None:
            for tensor in step.outputs.values():
                for ready in run.provide(tensor):
                    self._submit(run, ready, now_ns, out)
        self._release(freed, out)
        if not run.pending:
            self._finish(run, now_ns, out)
        return out

    def _store(self, run: Run, step: Step, resp: messages.Response, freed: list) -> None:
        owners = resp.owners
        produced = set()
        for i, ref in enumerate(resp.outputs):
            owner = (owners[i] if owners else resp.instance) if ref.kind == SERVER_SHM else ""
            tensor = step.outputs.get(ref.name)
            if tensor is None or (tensor not in run.graph.consumers
                                  and tensor not in run.wanted):
                freed.append((ref, owner))     # not needed by anyone
                continue
            produced.add(tensor)
            run.tensors[tensor] = (_replace(ref, name=tensor), owner)
        for output, tensor in step.outputs.items():
            if tensor not in produced and (tensor in run.graph.consumers or tensor in run.wanted):
                run.error = messages.ErrorInfo(int(Code.INTERNAL), (
                    f"in ensemble '{run.model.name}', step {step.index} ('{step.model}') "
                    f"returned no output '{output}' (tensor '{tensor}')"))
                return

    def _finish(self, run: Run, now_ns: int, out: list) -> None:
        req = run.req
        self.clients.pop((req.frontend, req.rid), None)
        model = run.model
        stats = model.stats
        elapsed = now_ns - (req.arrival_ns or now_ns)
        missing = [n for n in run.wanted if n not in run.tensors] if run.error is None else ()
        if missing:
            run.error = messages.ErrorInfo(int(Code.INTERNAL), (
                f"in ensemble '{model.name}', no step produced output '{missing[0]}'"))
        if run.error is None:
            refs, owners = [], []
            for name in run.wanted:
                ref, owner = run.tensors.pop(name)
                refs.append(ref)
                owners.append(owner)
            self._release(list(run.tensors.values()), out)
            instance = next((o for o in owners if o), "")
            resp = messages.Response(
                req.rid, outputs=refs, instance=instance, model_version=model.version,
                owners=owners if any(o != instance for o in owners) else [])
            stats.executed(1, 1, 0, elapsed, 0, 0, 0,
                           (now_ns + self.core.epoch_offset_ns) // 1_000_000)
        else:
            self._release(list(run.tensors.values()), out)
            resp = messages.Response(req.rid, error=run.error, model_version=model.version)
            stats.failed(1, elapsed)
        run.tensors.clear()
        out.append(Reply(req.frontend, resp))

    # -------------------------------------------------------------- cancel

    def cancel(self, frontend: str, rid: int, now_ns: int):
        """Cancel an ensemble request (None: ``rid`` is not one)."""
        run = self.clients.get((frontend, rid))
        if run is None:
            return None
        out: list = []
        if run.error is None:
            run.error = messages.ErrorInfo(int(Code.CANCELLED), "Request was cancelled")
            self._cancel_pending(run, now_ns, out)
        return out

    def _cancel_pending(self, run: Run, now_ns: int, out: list) -> None:
        core = self.core
        for rid in list(run.pending):
            out.extend(core.cancel(core.address, rid, now_ns))

    # ------------------------------------------------------------ releases

    def _release(self, items: list, out: list) -> None:
        """Give worker-owned tensors back to their workers (with their next Execute)."""
        by_owner: dict[str, list] = {}
        for ref, owner in items:
            if owner and ref.kind == SERVER_SHM:
                by_owner.setdefault(owner, []).append((ref.region, ref.offset))
        for owner, slots in by_owner.items():
            out.extend(self.core.release(messages.Release(owner, slots)))


def _owned(resp: messages.Response) -> list:
    owners = resp.owners or [resp.instance] * len(resp.outputs)
    return list(zip(resp.outputs, owners))
