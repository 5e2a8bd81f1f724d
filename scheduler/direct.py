"""The direct answer of an ensemble's final step (``Request.answer``), scheduler side.

A non-decoupled ensemble request whose final step is submitted with nothing else
of it in flight, waiting or still to come needs no scheduler hop for its answer:
the step request carries an ``EnsembleAnswer`` and its worker answers the
requester as the ensemble would (workers/answers.py). The step request keeps
``frontend`` = the scheduler, so cancels, timeouts, a dead worker and the core's
own errors reach the run as for any step. After its answer the worker sends us
a receipt (a bare final Response with the step's error, if any): that ends the
run, with the step's Executed (in either order) for a success's statistics.

Nested ensembles: an eligible final step that is itself an ensemble carries the
outer's answer on the inner ensemble's request; the inner run's final step then
answers the outer's caller with both levels composed (renames chained, both
names prefixing errors: ``EnsembleAnswer.within``). Its receipt ends the inner
run and then the outer's (an ensemble step has no Executed). Where the inner run
cannot answer directly after all (its final step is not eligible when it comes),
it answers the outer run as any step does, and the outer answers its caller.
"""
from __future__ import annotations

from tritond import messages

from . import ensemble_stats as stats
from .ensemble import Run, Step


class DirectAnswers:
    """Which step requests answer their ensemble's requester, and how many did."""

    __slots__ = ("ensembles", "counts")

    def __init__(self, ensembles) -> None:
        self.ensembles = ensembles          # the scheduler.ensembles.Ensembles we serve
        # (name, version) -> requests whose final step's worker answered the requester
        self.counts: dict[tuple[str, int], int] = {}

    @staticmethod
    def eligible(run: Run, step: Step, it: int, target, scheduler: str) -> bool:
        """``step`` is a non-decoupled untraced request's last: nothing else to come.

        ``target`` is the step's model (None: unknown); an ensemble target must have a
        final step of its own. A request the scheduler itself made (a nested ensemble)
        qualifies only when its outer request's answer came with it.
        """
        graph = run.graph
        # the cheap tests that fail for every other step come first
        return (step is graph.last and not run.pending and it == 0 and target is not None
                and run.submitted == len(graph.steps) and not run.waiting
                and run.error is None and not target.cfg.spec.decoupled
                and (not target.policy.ensemble or target.policy.graph.last is not None)
                and (run.req.frontend != scheduler or run.req.answer is not None)
                and not run.model.policy.decoupled and not run.trace
                and (run.wanted is graph.outputs or all(t in step.made for t in run.wanted)))

    def mark(self, run: Run, step: Step, sub: messages.Request) -> None:
        """Its worker answers the ensemble's requester, naming the requested outputs
        as the ensemble does; its receipt ends the run (``ended``)."""
        req = run.req
        made = step.made
        if run.wanted is run.graph.outputs and not run.dests:    # built once (ensemble.py)
            sub.outputs, renames = run.graph.answer
        else:
            sub.outputs = [messages.OutputSpec(made[t], run.dests.get(t)) for t in run.wanted]
            renames = {made[t]: t for t in run.wanted}
        mapped = sorted(run.mapped) if run.shm else []
        outer = req.answer if req.frontend == self.ensembles.core.address else None
        if outer is None:
            sub.answer = messages.EnsembleAnswer(
                req.frontend, req.rid, run.model.name, run.model.version, renames, run.shm,
                mapped)
        else:                              # a nested run: answer the outer's caller
            sub.answer = messages.EnsembleAnswer(
                outer.frontend, outer.rid, outer.model, outer.version,
                {out: outer.renames.get(t, t) for out, t in renames.items()}, outer.shm,
                sorted({*outer.mapped, *mapped}) if outer.shm else [],
                [*outer.within, run.model.name])
        run.direct = sub.rid

    def ended(self, run: Run, receipt: messages.Response, now_ns: int, out: list) -> None:
        """The worker answered the requester: end the run (its inputs' releases, the
        limiter's slot) without a Reply. The receipt's error is the request's outcome,
        counted as Triton's RequestTracker does: a failure now, a success once the
        step's Executed came too (``Ensembles.executed``)."""
        ens = self.ensembles
        rid = receipt.rid
        step, it, _ = run.pending.pop(rid)
        del ens.steps[rid]
        freed = run.consumed(step, it)
        freed.extend(run.tensors.values())
        run.tensors.clear()
        ens.release(freed, out)
        ens.next_backlogged(run, step, now_ns, out)
        req = run.req
        ens.clients.pop((req.frontend, req.rid), None)
        if receipt.error is not None:
            stats.record_failure(run, now_ns)
        elif rid in run.early:
            ens.record(run, now_ns)
        else:
            run.done = True
            run.due.add(rid)
            ens.unexecuted[rid] = run
        if req.frontend != ens.core.address:
            key = (run.model.name, run.model.version)
            self.counts[key] = self.counts.get(key, 0) + 1
            return
        outer = ens.steps.get(req.rid)     # a nested run: its outer run's step ends too
        if outer is not None and outer.direct == req.rid:
            outer.early.add(req.rid)       # an ensemble step has no Executed of its own
            self.ended(outer, messages.Response(req.rid, error=receipt.error, empty=True),
                       now_ns, out)
