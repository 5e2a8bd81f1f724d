"""Dynamic batch formation, following Triton's GetDynamicBatch.

Walk the queue in service order, accumulating requests while they fit in
max_batch_size and share the first request's input shapes and dtypes.
Remember the longest prefix whose size is a preferred size (or that reached
the largest preferred size). Then:

- a preferred prefix was found and the oldest request's delay window is still
  open: send that prefix;
- the batch cannot grow (a mismatch or max_batch_size stopped the walk, or it
  reached the largest preferred size), the window has closed, or there is no
  window: send everything accumulated;
- otherwise wait until the window closes (``Plan.wait_until``).

A mismatching request is never skipped over: it ends the batch, so FIFO order
within a level is kept (Triton does the same).
"""
from __future__ import annotations

from itertools import islice

from .config import SchedConfig
from .queue import MAIN, Entry, PolicyQueue
from .wire import InputDims, Raw, dims_decode


def shape_key(entry: Entry, ragged: frozenset = frozenset()) -> list:
    """What must agree to batch: per input name, dtype and all dims but the batch dim
    (only the dtype for inputs the config marks ``allow_ragged_batch``).

    The key is the list of the request's ``wire.InputDims`` with the batch dim
    zeroed in place (cheaper than building tuples: this runs once per batched request).
    """
    key = entry.shape
    if key is None:
        inputs = entry.req.inputs
        if type(inputs) is Raw:
            key = dims_decode(inputs)
        else:                        # decoded TensorRefs (a request a policy built): rare
            key = [InputDims(t.name, t.dtype, list(t.shape)) for t in inputs]
        for dims in key:
            shape = dims.shape
            if shape:
                shape[0] = 0
        if ragged:
            for dims in key:
                if dims.name in ragged:
                    dims.shape = None
        entry.shape = key
    return key


class Pending:
    """A batch the batcher decided to wait for, kept so that the next step resumes
    the walk instead of re-walking it (which is quadratic while a window fills)."""

    __slots__ = ("taken", "size", "key", "scanned", "epoch")

    def __init__(self, taken: list[Entry], size: int, key, scanned: int, epoch: int) -> None:
        self.taken = taken
        self.size = size
        self.key = key
        self.scanned = scanned
        self.epoch = epoch


def form(queue: PolicyQueue, cfg: SchedConfig, now_ns: int, cached: Pending | None = None
         ) -> tuple[list[Entry] | None, int, Pending | None]:
    """Choose the next batch: ``(entries, 0, _)`` to send now, ``(None, t, pending)`` to
    wait until t. ``(None, 0, None)`` means the queue is empty.

    Resuming ``cached`` is only possible for a single-level queue with nothing delayed
    and no removal since (``queue.epoch``): then new requests only ever append to
    the one main FIFO, behind what was already walked.
    """
    max_batch = cfg.max_batch_size
    max_preferred = cfg.max_preferred
    preferred = cfg.preferred
    delay_ns = cfg.delay_ns
    ragged = cfg.ragged
    taken: list[Entry] = []
    pending = 0
    best = 0                 # number of entries in the best preferred prefix
    send_now = False
    closed = False           # the oldest request's delay window has closed
    key = None
    scanned = 0              # main-FIFO positions consumed (resumable walks only)
    level = queue.levels[0]
    resumable = len(queue.levels) == 1 and not level.delayed
    if resumable:
        level.trim()
        if cached is not None and cached.epoch == queue.epoch:
            taken, pending, key, scanned = cached.taken, cached.size, cached.key, cached.scanned
            closed = delay_ns != 0 and now_ns >= taken[0].enqueue_ns + delay_ns
        source = islice(level.main, scanned, None)
    else:
        source = queue.walk()
    for entry in source:
        scanned += 1
        if entry.state != MAIN and resumable:
            continue
        size = entry.size
        if taken:
            grown = pending + size
            if grown > max_preferred and not best:
                best = len(taken)
            if grown > max_batch or shape_key(entry, ragged) != key:
                send_now = True
                break
        else:
            key = shape_key(entry, ragged)
            closed = delay_ns != 0 and now_ns >= entry.enqueue_ns + delay_ns
        taken.append(entry)
        pending += size
        if pending in preferred:
            best = len(taken)
        if pending >= max_batch or (pending >= max_preferred and not closed):
            break            # nothing further could change the outcome
    if not taken:
        return None, 0, None
    if best and not closed:
        return taken[:best], 0, None
    if send_now or pending >= max_preferred or closed or delay_ns == 0:
        return taken, 0, None
    cache = Pending(taken, pending, key, scanned, queue.epoch) if resumable else None
    return None, taken[0].enqueue_ns + delay_ns, cache
