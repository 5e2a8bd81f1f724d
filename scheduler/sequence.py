"""SequencePolicy: Triton's sequence batcher (``direct`` and ``oldest`` strategies).

Every request names its sequence (``correlation_id``, START/END in ``flags``).
A starting sequence takes a free *sequence slot* of one instance
(``max_batch_size`` slots per instance, or ``max_candidate_sequences`` for
``oldest``) and keeps it until its END request is dispatched or it stays idle
for ``max_sequence_idle_microseconds``; with no free slot it waits in the
backlog, in arrival order (``sequence_table.SlotTable`` keeps where each
sequence is). A sequence's requests run
in order, one at a time, on its instance.

- **direct** pipelines (``depth`` 1): the ready slots of a busy instance are sent
  behind its running batch at once; the worker runs Executes in order, so a
  sequence's next step may follow its previous one there.

- **direct**: a batch is the next request of every slot of an idle instance,
  row i being slot i; an idle slot below the last busy one gets a not-ready row
  (a copy of another row with READY false, never answered) so that a model
  keeping per-row state sees each sequence in the same row every time. With
  ``minimum_slot_utilization`` and ``max_queue_delay_microseconds`` a batch waits until
  that share of the slots has a request or its oldest request waited the delay (Triton's).
- **oldest**: the ready sequences of an idle instance, oldest request first, form
  a dynamic batch (``preferred_batch_size``, ``max_queue_delay_microseconds``).

A client's cancel of a queued request is Triton's: it keeps its place, and once its
slot reaches it, it and the requests behind it are answered CANCELLED and the
sequence ends (``SlotTable.hold``; the core answers ``dropped`` after ``next_batch``).

The Execute carries a ``messages.SequenceSlot`` per row; the worker makes the
control tensors and the slot's implicit state from it (workers/sequence.py).
Errors and their texts are Triton's (sequence_batch_scheduler.cc).
"""
from __future__ import annotations

from tritond import messages
from tritond.errors import Code, TritonError, request_tag
from tritond.spec import CONTROL_CORRID

from .batcher import shape_key
from .config import SchedConfig
from .iterative import IterativeSequencer
from .queue import DONE, MAIN, Entry
from .router import Batch, Instance, InstanceRouter
from .sequence_slots import Home, Sequence, null_row
from .sequence_table import NEVER, SlotTable

PIPELINE_AHEAD_SEQUENCE = 1
START = messages.SEQUENCE_START
END = messages.SEQUENCE_END
SequenceSlot = messages.SequenceSlot


class SequencePolicy:
    """The sequence batcher of one model version (pure; see module docstring); where the
    sequences are is its ``SlotTable``'s (sequence_table.py)."""

    __slots__ = ("cfg", "name", "oldest", "max_batch", "delay_ns", "preferred", "max_preferred",
                 "table", "count", "depth", "wait_until", "_n", "held", "iterative", "dropped",
                 "corrid", "min_util", "util_delay_ns")

    ensemble = False     # the Policy interface's flags (scheduler/policy.py)
    holds_cancels = True

    # Triton's error for the requests of a backlogged sequence whose timeout passed.
    expired_message = "timeout of the corresponding sequence has been expired"

    def __init__(self, cfg: SchedConfig) -> None:
        seq = cfg.seq
        self.cfg = cfg
        self.name = cfg.name
        self.oldest = seq.strategy == "oldest"
        self.max_batch = max(cfg.max_batch_size, 1)
        cand = seq.max_candidate_sequences if self.oldest else 0
        self.table = SlotTable(cfg.name, cand if cand > 0 else self.max_batch,
                               seq.max_sequence_idle_us * 1000)
        self.delay_ns = seq.max_queue_delay_us * 1000 if self.oldest else 0
        # direct: a batch of fewer ready slots than this share waits up to the delay
        self.min_util = seq.minimum_slot_utilization if not self.oldest else 0.0
        self.util_delay_ns = seq.max_queue_delay_us * 1000 if self.min_util > 0 else 0
        preferred = [s for s in seq.preferred_batch_size if 0 < s <= self.max_batch]
        self.preferred = sorted(preferred)
        self.max_preferred = max(preferred) if preferred else self.max_batch
        self.count = 0
        # direct: a busy instance may hold one more batch (pipelining; see next_batch)
        self.depth = 0 if self.oldest else PIPELINE_AHEAD_SEQUENCE
        self.wait_until = 0
        self._n = 0
        self.held: list[Entry] = []            # requeued by a removed instance: they fail
        self.iterative = IterativeSequencer(self.table) if seq.iterative else None
        self.dropped = self.table.dropped      # cancelled with a cancelled request ahead
        self.corrid = next(((c.input, c.datatype) for c in seq.controls
                            if c.kind == CONTROL_CORRID), None)

    # ------------------------------------------------------------ requests

    def add(self, req, now_ns: int) -> Entry:
        corrid = req.correlation_id
        if self.corrid is not None:          # Triton's Normalize, before its Enqueue
            _check_corrid(self.name, self.corrid, corrid, req.request_id)
        if req.batch > 1:
            raise TritonError(Code.INVALID_ARG, f"inference request to model '{self.name}' must "
                              "specify batch-size 1 due to requirements of sequence batcher")
        if not corrid and self.iterative is not None:
            corrid = self.iterative.assign(req, START)
        if not corrid:
            raise TritonError(Code.INVALID_ARG, f"inference request to model '{self.name}' must "
                              "specify a non-zero or non-empty correlation ID")
        flags = req.flags
        table = self.table
        seq = table.live.get(corrid)
        if seq is not None and seq.home is not None and table.idle(seq, now_ns):
            table.timeout(seq)
            seq = None
        if not flags & START:
            if seq is None:
                lost = table.lost.get(corrid)
                if lost is not None:
                    raise TritonError(Code.UNAVAILABLE, lost)
                raise TritonError(Code.INVALID_ARG, f"inference request for sequence {corrid} to "
                                  f"model '{self.name}' must specify the START flag on the first "
                                  "request of the sequence")
        elif seq is None:     # a live sequence started again continues in its place (Triton)
            table.lost.pop(corrid, None)
            seq = table.live[corrid] = Sequence(corrid)
            if not table.seat(seq, now_ns):
                table.backlog.append(seq)
        self._n += 1
        entry = Entry(req, 1, now_ns, 0, self._n)
        entry.owner = seq
        seq.entries.append(entry)
        seq.last_ns = now_ns
        if seq.home is None and req.timeout_us:   # a backlogged sequence expires as a whole
            table.backlog_timeout(seq, now_ns + req.timeout_us * 1000)
        if flags & END:
            del table.live[corrid]
        self.count += 1
        return entry

    def hold(self, entry: Entry) -> None:
        """A client cancelled ``entry``: it keeps its place until its slot reaches it,
        then it and the requests behind it are cancelled (``SlotTable.hold``)."""
        self.table.hold(entry)

    def take_dropped(self) -> list[Entry]:
        """The requests to answer CANCELLED (``dropped``), taken out."""
        out = self.dropped[:]
        self.dropped.clear()
        self.count -= len(out)
        return out

    def expire(self, now_ns: int):
        """Requests of backlogged sequences whose timeout passed (the whole sequence)."""
        if now_ns < self.table.expires:
            return ()
        out = self.table.expire(now_ns)
        self.count -= len(out)
        return out

    # ------------------------------------------------------------- batches

    def next_batch(self, now_ns: int, router: InstanceRouter) -> Batch | None:
        self.wait_until = 0
        table = self.table
        homes = table.homes
        if homes.keys() != router.instances.keys():
            table.sync(router)
        if now_ns >= table.reap_at:
            table.reap(now_ns)
        if table.cancelled:     # where a batch may form, a cancelled next request ends its sequence
            table.reach(router.free if self.oldest else (*router.free, *router.second))
        if table.backlog:
            table.fill(now_ns)
        for inst in router.free:
            home = homes.get(inst.address)
            if home is None:
                continue
            batch = self._oldest(home, now_ns) if self.oldest else self._direct(home, now_ns)
            if batch is not None:
                return batch
        # direct, pipelined: the ready slots of a busy instance go behind its running
        # batch at once (the worker runs them in order, so a sequence's next step may
        # follow its previous one there) instead of waiting for its Executed.
        for inst in router.second:
            home = homes.get(inst.address)
            if home is not None:
                batch = self._direct(home, now_ns)
                if batch is not None:
                    return batch
        return None

    def _direct(self, home: Home, now_ns: int) -> Batch | None:
        heads = [seq.head() if seq is not None else None for seq in home.slots]
        if self.table.cancelled:    # a cancelled head waits for its slot's step in flight
            heads = [e if e is None or e.state == MAIN else None for e in heads]
        last = max((i for i, e in enumerate(heads) if e is not None), default=-1)
        if last < 0 or (self.util_delay_ns and self._underused(heads, now_ns)):
            return None
        rep = next(e for e in heads if e is not None)
        key = shape_key(rep, self.cfg.ragged) if last else None
        entries, rows, slots = [], [], []
        for i in range(last + 1):
            entry = heads[i]
            if entry is None or (key is not None and shape_key(entry, self.cfg.ragged) != key):
                rows.append(null_row(rep.req, -1 - i))
                slots.append(SequenceSlot(i, False))
                continue
            self._take(home, i, entry)
            entries.append(entry)
            rows.append(entry.req)
            slots.append(SequenceSlot(i))
        return self._batch(home, entries, rows, slots)

    def _underused(self, heads: list, now_ns: int) -> bool:
        """Triton's direct queue delay: fewer ready slots than ``minimum_slot_utilization``
        of them wait until the oldest ready request has waited the delay."""
        ready = [e for e in heads if e is not None]
        if len(ready) / self.max_batch >= self.min_util:
            return False
        due = min(e.enqueue_ns for e in ready) + self.util_delay_ns
        if now_ns >= due:
            return False
        if not self.wait_until or due < self.wait_until:
            self.wait_until = due
        return True

    def _oldest(self, home: Home, now_ns: int) -> Batch | None:
        ready = []
        for i, seq in enumerate(home.slots):
            head = seq.head() if seq is not None else None
            if head is not None:
                ready.append((head.seq, i, head))
        if not ready:
            return None
        ready.sort()
        n = min(len(ready), self.max_batch)
        due = ready[0][2].enqueue_ns + self.delay_ns
        closed = not self.delay_ns or now_ns >= due
        if not closed:
            if n < self.max_preferred:
                self.wait_until = due
                return None
            n = max((p for p in self.preferred if p <= n), default=n)
        key = shape_key(ready[0][2], self.cfg.ragged) if n > 1 else None
        entries, slots = [], []
        for _, i, entry in ready:
            if len(entries) == n:
                break
            if key is not None and shape_key(entry, self.cfg.ragged) != key:
                continue
            self._take(home, i, entry)
            entries.append(entry)
            slots.append(SequenceSlot(i))
        return self._batch(home, entries, None, slots)

    def _take(self, home: Home, slot: int, entry: Entry) -> None:
        """Dispatch ``entry`` (its slot's head); an END frees the slot for the backlog."""
        seq = home.slots[slot]
        seq.entries.popleft()
        entry.state = DONE
        self.count -= 1
        if entry.req.flags & END:
            home.slots[slot] = None
            seq.home = None

    def _batch(self, home: Home, entries: list, rows, slots: list) -> Batch:
        batch = Batch(home.inst, entries, len(entries))
        batch.rows = rows if rows is not None and len(rows) != len(entries) else None
        batch.slots = slots
        if home.ended:
            batch.ended, home.ended = home.ended, []
        return batch

    def next_deadline(self, router: InstanceRouter) -> int | None:
        best = self.wait_until if router.free else 0
        table = self.table
        if table.backlog:
            for at in (table.reap_at, table.expires):
                if at < NEVER and (not best or at < best):
                    best = at
        return best or None

    def on_executed(self, batch: Batch, now_ns: int) -> None:
        if self.table.cancelled:    # a request of it the worker skipped (cancelled ahead)
            self.table.ran(batch)

    # ----------------------------------------------------------- instances

    def on_instance_removed(self, inst: Instance) -> list[Entry]:
        """``inst`` died or left: its sequences end; their queued requests fail (with
        those it held behind its running batch) and the next requests of each fail
        UNAVAILABLE until a new START."""
        failed = self.table.lose(inst)
        self.count -= len(failed)
        held, self.held = self.held, []
        return held + failed

    def requeue(self, entries: list[Entry]) -> None:
        """The batches a removed instance held behind its running one (direct,
        pipelined): their sequences were on that instance and are lost with it, so the
        requests fail with them (``on_instance_removed``, which the core calls next)
        rather than run elsewhere without their state."""
        self.held.extend(entries)

    def drain(self) -> list[Entry]:
        self.count = 0
        return self.table.clear()


_CORRID_INTS = frozenset({"UINT64", "INT64", "UINT32", "INT32"})


def _check_corrid(model: str, control: tuple[str, str], corrid, request_id) -> None:
    """Triton's ValidateCorrelationId (every request it normalizes: a client's, an ensemble
    step's, a BLS call's): a string id needs a BYTES CORRID control, a uint64 one (also 0,
    no id) an integer one. The message names the control's tensor, as Triton's does."""
    name, want = control
    if type(corrid) is str:
        if want == "BYTES":
            return
        got = "BYTES"
    elif want in _CORRID_INTS:
        return
    else:
        got = "UINT64"
    raise TritonError(Code.INVALID_ARG, f"{request_tag(request_id)}sequence batching control "
                      f"'{name}' data-type is '{got}', but model '{model}' expects '{want}'")
