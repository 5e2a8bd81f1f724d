"""Dynamic batch formation (§8.3), following Triton's GetDynamicBatch.

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

from .config import SchedConfig
from .queue import Entry, PolicyQueue


def shape_key(entry: Entry) -> list:
    """What must agree to batch: per input name, dtype and all dims but the batch dim."""
    key = entry.shape
    if key is None:
        key = entry.shape = [(t.name, t.dtype, t.shape[1:]) for t in entry.req.inputs]
    return key


def single(queue: PolicyQueue) -> list[Entry] | None:
    """Default scheduler / non-batching model: the next request alone."""
    entry = queue.first()
    return [entry] if entry is not None else None


def form(queue: PolicyQueue, cfg: SchedConfig, now_ns: int) -> tuple[list[Entry] | None, int]:
    """Choose the next batch: ``(entries, 0)`` to send now, ``(None, t)`` to wait until t.

    ``(None, 0)`` means the queue is empty.
    """
    max_batch = cfg.max_batch_size
    max_preferred = cfg.max_preferred
    preferred = cfg.preferred
    delay_ns = cfg.delay_ns
    taken: list[Entry] = []
    pending = 0
    best = 0                 # number of entries in the best preferred prefix
    send_now = False
    closed = False           # the oldest request's delay window has closed
    key = None
    for entry in queue.walk():
        size = entry.size
        if taken:
            grown = pending + size
            if grown > max_preferred and not best:
                best = len(taken)
            if grown > max_batch or shape_key(entry) != key:
                send_now = True
                break
        else:
            key = shape_key(entry)
            closed = delay_ns != 0 and now_ns >= entry.enqueue_ns + delay_ns
        taken.append(entry)
        pending += size
        if pending in preferred:
            best = len(taken)
        if pending >= max_batch or (pending >= max_preferred and not closed):
            break            # nothing further could change the outcome
    if not taken:
        return None, 0
    if best and not closed:
        return taken[:best], 0
    if send_now or pending >= max_preferred or closed or delay_ns == 0:
        return taken, 0
    return None, taken[0].enqueue_ns + delay_ns
