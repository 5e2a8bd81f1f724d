"""Where the sequences of one sequence-batched model are: slots, backlog, idle and lost ones.

``SlotTable`` is the bookkeeping half of ``sequence.SequencePolicy`` (which forms
the batches): live sequences by correlation id, each instance's slots
(``sequence_slots.Home``), the backlog of sequences waiting for a slot, the idle
timeout (reaped lazily: see ``reap_at``), backlog timeouts, and the sequences lost
with a dead instance, and the requests clients cancelled while queued (Triton's way:
see ``hold``). Pure, like the policy.
"""
from __future__ import annotations

from collections import deque

from .queue import CANCELLED, DONE, MAIN, SKIPPED, Entry
from .sequence_slots import Home, Sequence

NEVER = 1 << 62
LOST_LIMIT = 10_000          # sequences remembered as lost with their instance


class SlotTable:
    """Slots, backlog and timeouts of one model version's sequences."""

    __slots__ = ("name", "slot_count", "idle_ns", "live", "backlog", "homes", "lost",
                 "reap_at", "expires", "cancelled", "dropped")

    def __init__(self, name: str, slot_count: int, idle_ns: int) -> None:
        self.name = name
        self.slot_count = slot_count
        self.idle_ns = idle_ns
        self.live: dict = {}                   # correlation id -> Sequence still accepting
        self.backlog: deque[Sequence] = deque()   # sequences waiting for a slot
        self.homes: dict[str, Home] = {}       # instance address -> its slots
        self.lost: dict = {}                   # correlation id -> why (its instance died)
        self.reap_at = NEVER                   # when an idle sequence may next be due
        self.expires = NEVER                   # earliest backlog timeout
        self.cancelled: list[Entry] = []       # cancelled, held in their place (``hold``)
        self.dropped: list[Entry] = []         # to answer CANCELLED (the policy's ``dropped``)

    def sync(self, router) -> None:
        """Give each new instance its slots (gone ones left through ``lose``)."""
        for addr, inst in router.instances.items():
            if addr not in self.homes:
                self.homes[addr] = Home(inst, self.slot_count)

    # --------------------------------------------------------------- slots

    def seat(self, seq: Sequence, now_ns: int) -> bool:
        """Give ``seq`` a free slot, if any (idle sequences are reaped first when due)."""
        best = self._free_slot()
        if best is None and self.idle_ns and now_ns >= self.reap_at:
            self.reap(now_ns)
            best = self._free_slot()
        if best is None:
            return False
        home, slot = best
        home.slots[slot] = seq
        seq.home, seq.slot = home, slot
        if self.idle_ns:
            self.reap_at = min(self.reap_at, now_ns + self.idle_ns)
        return True

    def _free_slot(self):
        """(home, slot): the lowest free slot number, on the emptiest instance."""
        best = None
        for home in self.homes.values():
            slot = home.free()
            if slot >= 0 and (best is None or (slot, home.used()) < (best[1], best[0].used())):
                best = (home, slot)
        return best

    def fill(self, now_ns: int) -> None:
        """Seat backlogged sequences, oldest first, while slots are free. One with a
        cancelled request is cancelled as a whole instead, when a slot could take it
        (Triton's ReleaseSequenceSlot: ``IsAnyRequestCancelled`` of the backlog)."""
        backlog = self.backlog
        while backlog:
            seq = backlog[0]
            if seq.head() is None and self.live.get(seq.corrid) is not seq:
                backlog.popleft()            # nothing left of it
                continue
            if self.cancelled and seq.cancelled():
                if self._free_slot() is None:
                    return
                backlog.popleft()
                self.cancel(seq)
                continue
            if not self.seat(seq, now_ns):
                return
            backlog.popleft()

    # ------------------------------------------------------------- cancels

    def hold(self, entry: Entry) -> None:
        """A client cancelled ``entry`` while queued. As in Triton it keeps its place:
        once its slot reaches it (``reach``) it and every request queued behind it are
        cancelled and the sequence ends; a backlogged sequence is cancelled as a whole
        when a slot could take it (``fill``)."""
        if entry.state == MAIN:
            entry.state = CANCELLED
            self.cancelled.append(entry)

    def skipped(self, entry: Entry) -> None:
        """``entry`` (``SKIPPED``) was dispatched behind its instance's running batch
        (direct pipelining) and cancelled before it ran: its worker skips it and answers
        it. In Triton it would still head its slot's queue, so it marks the head: the
        sequence is cancelled as above."""
        seq = entry.owner
        if seq is not None and seq.home is not None:
            seq.entries.appendleft(entry)
            self.cancelled.append(entry)

    def ran(self, batch) -> None:
        """``batch`` was executed: a sequence whose request in it was skipped has nothing
        in flight now, so it is cancelled (its queued requests are answered by the core's
        ``executed`` at once: a ModelTable in the same read drains the policy)."""
        for entry in batch.entries:
            if entry.state == SKIPPED:
                seq = entry.owner
                if seq is not None and seq.home is not None and seq.head() is entry:
                    self.cancel(seq)

    def reach(self, idle) -> None:
        """The slots of the instances ``idle`` (those that may take a batch now) whose
        next request is a cancelled one and that have no request in flight: their
        sequences are cancelled. Triton's batcher looks at each slot's next request when
        its instance finished its batch (a rescheduled request is queued by then, behind
        the cancelled one); direct pipelines one batch ahead, so a busy instance's slots
        with nothing in flight count too."""
        homes = self.homes
        for inst in idle:
            home = homes.get(inst.address)
            if home is None:
                continue
            busy = {s.slot for b in (inst.busy, *inst.ahead) if b is not None
                    for s in b.slots or () if s.ready}
            for i, seq in enumerate(home.slots):
                if seq is not None and i not in busy and seq.cancelled_head():
                    self.cancel(seq)

    def cancel(self, seq: Sequence) -> None:
        """Triton's release of a cancelled sequence's slot: its queued requests go to
        ``dropped`` (answered CANCELLED), the slot is free (the worker drops its state)
        and the id forgotten: a later request of it without START fails."""
        home = seq.home
        if home is not None:
            home.slots[seq.slot] = None
            home.ended.append(seq.slot)
            seq.home = None
        if self.live.get(seq.corrid) is seq:
            del self.live[seq.corrid]
        self.dropped += self.take_all(seq)

    def take_all(self, seq: Sequence) -> list[Entry]:
        """Every queued request of ``seq``, taken out. A held cancel keeps its state, and
        the requests behind it (or behind a skipped one's mark, which goes) take it: the
        batcher would cancel them all once their slot reached it, so ``table._move``
        answers them CANCELLED rather than queue them on a new version."""
        out = []
        behind = False
        for entry in seq.entries:
            state = entry.state
            if state == MAIN:
                entry.state = CANCELLED if behind else DONE
            elif state == CANCELLED:
                behind = True
            else:
                behind = behind or state == SKIPPED
                continue
            out.append(entry)
        seq.entries.clear()
        if self.cancelled:
            self.cancelled = [e for e in self.cancelled if e.owner is not seq]
        return out

    # ------------------------------------------------------------ timeouts

    def idle(self, seq: Sequence, now_ns: int) -> bool:
        return bool(self.idle_ns) and seq.head() is None and now_ns - seq.last_ns >= self.idle_ns

    def reap(self, now_ns: int) -> None:
        """Free the slots of sequences idle longer than max_sequence_idle_microseconds."""
        next_at = NEVER
        for home in self.homes.values():
            for seq in home.slots:
                if seq is None:
                    continue
                if self.idle(seq, now_ns):
                    self.timeout(seq)
                else:
                    at = seq.last_ns + self.idle_ns if seq.head() is None else now_ns + self.idle_ns
                    next_at = min(next_at, at)
        self.reap_at = next_at

    def timeout(self, seq: Sequence) -> None:
        """Force-end ``seq``: its slot is free and its state dropped; later requests
        without START fail as for an unknown sequence."""
        home = seq.home
        home.slots[seq.slot] = None
        home.ended.append(seq.slot)
        seq.home = None
        if self.live.get(seq.corrid) is seq:
            del self.live[seq.corrid]

    def backlog_timeout(self, seq: Sequence, at: int) -> None:
        """A backlogged request of ``seq`` has a timeout: the sequence expires at ``at``."""
        seq.expires = min(seq.expires, at) if seq.expires else at
        self.expires = min(self.expires, seq.expires)

    def expire(self, now_ns: int) -> list[Entry]:
        """Take out the requests of backlogged sequences whose timeout passed."""
        out, keep, self.expires = [], deque(), NEVER
        for seq in self.backlog:
            if seq.expires and seq.expires <= now_ns:
                out += self.take_all(seq)
                if self.live.get(seq.corrid) is seq:
                    del self.live[seq.corrid]
                continue
            keep.append(seq)
            if seq.expires:
                self.expires = min(self.expires, seq.expires)
        self.backlog = keep
        return out

    # ----------------------------------------------------------- instances

    def lose(self, inst) -> list[Entry]:
        """``inst`` died or left: its sequences end, their queued requests are taken out,
        and their ids are remembered as lost (UNAVAILABLE until a new START)."""
        home = self.homes.pop(inst.address, None)
        if home is None:
            return []
        failed = []
        for seq in home.slots:
            if seq is None:
                continue
            failed += self.take_all(seq)
            seq.home = None
            if self.live.get(seq.corrid) is seq:
                del self.live[seq.corrid]
                if len(self.lost) >= LOST_LIMIT:
                    del self.lost[next(iter(self.lost))]
                self.lost[seq.corrid] = (
                    f"inference request for sequence {seq.corrid} to model '{self.name}': the "
                    f"sequence was lost with instance '{inst.name}'; start it again with the "
                    "START flag")
        return failed

    def clear(self) -> list[Entry]:
        """Every queued request, taken out; no sequence is left."""
        seqs = [s for h in self.homes.values() for s in h.slots if s is not None]
        out = [e for s in (*seqs, *self.backlog) for e in self.take_all(s)]
        for seq in seqs:        # homeless: a request of it still in flight that is
            seq.home = None     # cancelled later (``skipped``) leaves nothing held here
        self.backlog.clear()
        self.live.clear()
        for home in self.homes.values():
            home.slots = [None] * len(home.slots)
        return out

