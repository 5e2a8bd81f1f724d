"""Ensembles, scheduled inside the scheduler (pure, like the core).

An ensemble request never reaches a worker: ``Ensembles.start`` submits a
*step request* for each step whose inputs are ready to the composing model's
own policy (``core.add``, in process: no socket hop), with the scheduler's
address as the requester. Workers answer those to the scheduler; their
``Response`` s (and the core's own error replies, looped back by
``SchedulerCore.settle``) come to :meth:`Ensembles.on_response`.

Tensors pass by reference (renamed ``TensorRef`` s): no byte is copied. Each
worker-owned intermediate is released to its worker (``core.release``: with its
next Execute) after its last consumer finished; requested outputs go to the
requester in a Response whose ``owners`` name each output's worker (the requester
releases them). A non-decoupled ensemble answers once, when no step is in flight
(workers may read the requester's input slots until then). A decoupled one
answers once per iteration whose outputs are all there, then the final flag
when no step is in flight (Triton's ensemble_scheduler.cc).

A non-decoupled request's final step (nothing else of it in flight) carries
``Request.answer`` (scheduler/direct.py): its worker answers the requester
(workers/answers.py), its receipt ends the run (``DirectAnswers.ended``). Statistics:
scheduler/ensemble_stats.py. A traced request: scheduler/enstrace.py.
"""
from __future__ import annotations

import msgspec

from tritond import messages
from tritond.departures import exit_reasons, gone, live_workers
from tritond.errors import Code, request_tag
from tritond.sequenceparams import override

from . import ensemble_cancels as cancels, ensemble_replies as replies, ensemble_stats as stats
from . import ensemble_steps as step_requests
from .ensemble_cancels import CANCELLED as _CANCELLED
from .direct import DirectAnswers
from .ensemble import Run, Step
from .enstrace import UNTRACED, RunTrace
from .outputs import Reply

_refs = msgspec.msgpack.Decoder(list[messages.TensorRef]).decode
_specs = msgspec.msgpack.Decoder(list[messages.OutputSpec]).decode
SERVER_SHM = messages.SERVER_SHM
_CANCEL = int(Code.CANCELLED)


def _decoded(value, decode):
    return decode(value) if type(value) is msgspec.Raw else value


class Ensembles:
    """Every ensemble request in flight, for one :class:`SchedulerCore`."""

    def __init__(self, core) -> None:
        self.core = core
        self.clients: dict[tuple[str, int], Run] = {}   # (frontend, rid) of the request
        self.steps: dict[int, Run] = {}                 # step request rid -> its run
        self.unexecuted: dict[int, Run] = {}            # answered step rid -> run (stats)
        # step rid -> the worker still answering it after its batch's Executed (a response
        # sender): the core no longer tracks it, so its death is noticed here (workers_gone)
        self.answering: dict[int, str] = {}
        self._rid = 0
        self._latest: dict[str, int] = {}
        self.answers = DirectAnswers(self)  # final steps answering the requester (direct.py)
        self.direct = self.answers.counts   # (name, version) -> requests answered so

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
        run.trace = RunTrace(now_ns) if req.trace else UNTRACED
        self.clients[(req.frontend, req.rid)] = run
        ready: list[Step] = []
        for ref in _decoded(req.inputs, _refs):
            run.store(ref.name, 0, ref, "")            # the requester's: never ours to release
            if ref.kind != SERVER_SHM:
                run.shm = True
        if run.dests:
            run.shm = True
        for name in graph.inputs:                      # an absent optional input is ready too
            ready.extend(run.provide(name, 0))
        out: list = []
        for step in ready:
            self._submit(run, step, 0, now_ns, out)
        return out

    def _submit(self, run: Run, step: Step, it: int, now_ns: int, out: list) -> None:
        step_requests.submit(self, run, step, it, now_ns, out)

    # ------------------------------------------------------------- answers

    def on_response(self, resp: messages.Response, now_ns: int, worker: bool = False) -> list:
        """A step request's Response (``worker``: from its worker, else the core's error)."""
        out: list = []
        run = self.steps.get(resp.rid)
        if run is None:                    # answered already (a late partial answer)
            self.release(_owned(resp), out)
            late = self.unexecuted.pop(resp.rid, None)
            if late is not None:           # the core failed its dead worker's batch: the
                late.due.discard(resp.rid)     # step's answer stands, no Executed will come
                if late.done and not late.due:
                    self.record(late, now_ns)
            return out
        if worker and run.direct == resp.rid and resp.empty:   # a direct answer's receipt
            if self.answering:
                self.answering.pop(resp.rid, None)
            self.answers.ended(run, resp, now_ns, out)
            return out
        step, it, decoupled = run.pending[resp.rid]
        run.trace.answered(resp, now_ns)
        if run.shm:                        # client shared memory: Forget goes to these
            if resp.instance:
                run.mapped.add(resp.instance)
            if resp.mapped:                # a nested ensemble's workers
                run.mapped.update(resp.mapped)
        final = resp.final
        if final:
            del self.steps[resp.rid]
            del run.pending[resp.rid]
            if self.answering:
                self.answering.pop(resp.rid, None)
            if resp.rid in run.early:
                run.early.discard(resp.rid)    # a decoupled step's late final: counted
            elif worker:
                run.due.add(resp.rid)      # its Executed follows (counted for the stats)
                self.unexecuted[resp.rid] = run
        freed: list = []
        produced = None
        made: list = []
        if resp.error is not None or run.error is not None:
            freed.extend(_owned(resp))
            if run.error is None:          # Triton names the ensemble in the message
                self._fail(run, _CANCELLED if run.cancelled and resp.error.code == _CANCEL
                           else messages.ErrorInfo(resp.error.code, (
                               f"in ensemble '{run.model.name}', {resp.error.message}")),
                           now_ns, out)
        elif resp.outputs or not resp.empty:     # a response without outputs: all absent
            if decoupled:                  # each response of a decoupled step: a new iteration
                run.fresh += 1
                produced = run.fresh
            else:
                produced = it
            seq = self._sequence(run, resp)
            if type(seq) is str:
                freed.extend(_owned(resp))
                produced = None
                self._fail(run, messages.ErrorInfo(int(Code.INVALID_ARG), seq), now_ns, out)
            else:
                made = run.store_outputs(step, produced, resp, freed, seq)
        if final and run.stepseq:
            run.stepseq.pop(resp.rid, None)
        if final:
            freed.extend(run.consumed(step, it))
        if run.error is None and produced is not None:
            for tensor in made:
                for ready in run.provide(tensor, produced):
                    self._submit(run, ready, produced, now_ns, out)
        self.release(freed, out)
        if final:
            self.next_backlogged(run, step, now_ns, out)
        if run.error is None and run.model.policy.decoupled:
            for at in {produced, it} - {None}:
                if run.outputs_ready(at):
                    out.append(replies.iteration(run, at))
        if not run.pending and not run.waiting:
            self._finish(run, now_ns, out)
        return out

    @staticmethod
    def _sequence(run: Run, resp: messages.Response):
        """The (correlation id, flags) a step's outputs carry when not the request's
        (its response's override, else its own request's), or an override's error text."""
        base = run.stepseq.get(resp.rid) if run.stepseq else None
        if resp.parameters:
            found = override(resp.parameters,
                             base[0] if base else run.req.correlation_id)
            if found is not None:
                return found
        return base

    def next_backlogged(self, run: Run, step: Step, now_ns: int, out: list) -> None:
        """A request of ``step`` is done: its slot goes to the oldest backlogged one."""
        limiter = run.limiter
        if not limiter.limit:
            return                         # unlimited: nothing counted, nothing backlogged
        limiter.done(step.index)
        backlog = limiter.backlog[step.index]
        while backlog and limiter.inflight[step.index] < limiter.limit:
            other, waiting_step, it = backlog.popleft()
            other.waiting -= 1
            self._submit(other, waiting_step, it, now_ns, out)

    def _finish(self, run: Run, now_ns: int, out: list) -> None:
        req = run.req
        self.clients.pop((req.frontend, req.rid), None)
        model = run.model
        decoupled = model.policy.decoupled
        missing = [n for n in run.wanted if (n, 0) not in run.tensors
                   and (n, 0) not in run.absent] \
            if run.error is None and not decoupled else ()
        if missing:                        # a step left a tensor out: Triton's words
            run.error = messages.ErrorInfo(int(Code.INVALID_ARG), (
                f"in ensemble '{model.name}', {request_tag(req.request_id)}unexpected "
                "deadlock, at least one output is not set while no more ensemble steps "
                "can be made"))
        mapped = sorted(run.mapped) if run.shm else []
        if run.error is None:
            resp = replies.final(run, out, decoupled)
            resp.mapped = mapped
            run.done = True
            if not run.due:
                self.record(run, now_ns)
        else:
            resp = messages.Response(req.rid, error=run.error, model_version=model.version,
                                     mapped=mapped)
            stats.record_failure(run, now_ns)
        self.release(list(run.tensors.values()), out)
        run.tensors.clear()
        run.trace.attach(resp)
        out.append(Reply(req.frontend, resp))

    # ---------------------------------------------------------- statistics

    def executed(self, rid: int, st: messages.ExecStats, now_ns: int,
                 instance: str = "") -> list:
        """A step request's execution finished (its batch's Executed on ``instance``)."""
        run = self.steps.get(rid)
        if run is not None:                # still answering (a sender), or a direct step
            run.early.add(rid)             # its final Response needs no Executed now
            if instance:
                self.answering[rid] = instance
        else:
            run = self.unexecuted.pop(rid, None)
            if run is None:
                return []
            run.due.discard(rid)
        stats.add_compute(run, st)
        if run.done and not run.due:
            self.record(run, now_ns)
        return []

    def workers_gone(self, table: messages.ModelTable) -> list:
        """Step requests whose worker was answering them after their Executed and is no
        longer in the table: they fail as the frontend fails its own such requests
        (tritond/departures.py); the error ends the ensemble request (settle)."""
        return [Reply(self.core.address, messages.Response(rid, error=error)) for rid, error
                in gone(self.answering, live_workers(table), exit_reasons(table))]

    def record(self, run: Run, now_ns: int) -> None:
        """A successful request: counted (ensemble_stats.py)."""
        stats.record_success(run, now_ns, self.core.epoch_offset_ns)

    def uncounted(self, name: str) -> set[tuple]:
        """Keys of the requests of ensemble ``name`` (every one if empty) whose answer may
        have reached their client while their success is not counted yet: answered and
        waiting for a step's Executed, or with a final step whose worker answers the
        client itself (its receipt has not come). A statistics query waits for them
        (scheduler/statsqueries.py)."""
        keys = set()
        for run in self.unexecuted.values():
            if run.done and (not name or run.model.name == name):
                keys.add(("ensemble", run.req.frontend, run.req.rid))
        for run in self.clients.values():
            if run.direct and (not name or run.model.name == name):
                keys.add(("ensemble", run.req.frontend, run.req.rid))
        return keys

    # -------------------------------------------------------------- cancel

    def cancel(self, frontend: str, rid: int, now_ns: int):
        """Cancel an ensemble request (None: ``rid`` is not one): ensemble_cancels.py."""
        return cancels.cancel(self, frontend, rid, now_ns)

    def _fail(self, run: Run, error, now_ns: int, out: list) -> None:
        cancels.fail(self, run, error, now_ns, out)

    # ------------------------------------------------------------ releases

    def release(self, items: list, out: list) -> None:
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
