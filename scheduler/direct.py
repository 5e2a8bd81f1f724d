"""The direct answer of an ensemble's final step (``Request.answer``), scheduler side.

A non-decoupled ensemble request whose final step is submitted with nothing else
of it in flight, waiting or still to come needs no scheduler hop for its answer:
the step request carries an ``EnsembleAnswer`` and its worker answers the
requester as the ensemble would (workers/answers.py). The step request keeps
``frontend`` = the scheduler, so cancels, timeouts, a dead worker and the core's
own errors reach the run as for any step. After its answer the worker sends us
a receipt (a bare final Response with the step's error, if any): that ends the
run, with the step's Executed (in either order) for a success's statistics.
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

        ``target`` is the step's model (None: unknown); a request the scheduler
        itself made (a nested ensemble) is answered through it.
        """
        graph = run.graph
        # the cheap tests that fail for every other step come first
        return (step is graph.last and not run.pending and it == 0 and target is not None
                and run.submitted == len(graph.steps) and not run.waiting
                and run.error is None and not target.cfg.spec.decoupled
                and not target.policy.ensemble and run.req.frontend != scheduler
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
        sub.answer = messages.EnsembleAnswer(
            req.frontend, req.rid, run.model.name, run.model.version, renames, run.shm,
            sorted(run.mapped) if run.shm else [])
        run.direct = sub.rid
        key = (run.model.name, run.model.version)
        self.counts[key] = self.counts.get(key, 0) + 1

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
