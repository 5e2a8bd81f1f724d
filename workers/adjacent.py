"""Arrays that already lie back to back in one buffer, joined as one view (no copy).

A fused batch (``Executor._fuse``) needs each input as one array over all its
rows. Client tensors that are adjacent in a segment are found by their
TensorRefs (``Executor._span``); this finds the others: numpy views carved
out of one buffer, in row order, such as a sequence model's slot states
(``sequence_state.SlotStates`` lays each state's slots out contiguously, so the
rows of a ``direct`` batch, slot i in row i, read their states in place).
"""
from __future__ import annotations

from typing import Optional

import numpy as np


def _root(a: np.ndarray) -> np.ndarray:
    """The ndarray at the bottom of ``a``'s chain of views."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def joined(arrays: list) -> Optional[np.ndarray]:
    """One view over ``arrays`` joined along dim 0, if they are C-contiguous views of one
    C-contiguous buffer lying back to back in order; None otherwise (the caller copies)."""
    first = arrays[0]
    if len(arrays) < 2 or type(first) is not np.ndarray or not first.flags.c_contiguous \
            or first.ndim == 0:
        return None
    root = _root(first)
    if not root.flags.c_contiguous:
        return None
    dtype, rest, base = first.dtype, first.shape[1:], root.ctypes.data
    start = end = first.ctypes.data
    rows = 0
    for a in arrays:
        if type(a) is not np.ndarray or a.ctypes.data != end or a.dtype != dtype \
                or a.shape[1:] != rest or not a.flags.c_contiguous or _root(a) is not root:
            return None
        end += a.nbytes
        rows += a.shape[0]
    flat = root.reshape(-1).view(np.uint8)
    lo = start - base
    if lo < 0 or end - base > flat.nbytes:
        return None
    return flat[lo:end - base].view(dtype).reshape((rows, *rest))


def joined_dests(items: list, names) -> dict:
    """{output: one buffer over every row's destination} for the ``names`` whose row
    destinations (``WorkRequest.dests``, memoryviews of numpy arrays) are adjacent:
    a fused run writes such an output straight into each row's place."""
    out = {}
    for name in names:
        parts = []
        for w in items:
            mv = w.dests.get(name)
            obj = getattr(mv, "obj", None)
            if not isinstance(obj, np.ndarray) or obj.ndim != 1 or obj.dtype != np.uint8:
                break
            parts.append(obj)
        else:
            whole = joined(parts) if parts else None
            if whole is not None:
                out[name] = memoryview(whole)
    return out
