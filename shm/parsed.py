"""The BYTES inputs a process has parsed and still holds, so that an output made of
exactly the same elements (an echo, a pass-through, a reshape) reuses the input's
serialised bytes instead of serialising each element again.

Exact by construction: an entry matches only when every element of the output is
the *same object* as the parsed element at that position (bytes are immutable, so
identical objects serialise identically); an input array the model changed in
place no longer matches. An entry lives only as long as the parsed array does
(a weak reference drops it), so no request's data outlives the request here.
"""
from __future__ import annotations

import operator
import weakref
from typing import Optional

import numpy as np

# Below this many elements serialising is cheaper than looking an entry up.
MIN_ELEMENTS = 32

# id(first element) -> (items, serialised bytes, weakref to the parsed array, length table).
# Keyed by the first element: a different first element can never match anyway.
_ENTRIES: dict[int, tuple] = {}


def remember(arr: np.ndarray, items, data: bytes, table: Optional[bytes] = None) -> None:
    """Record that ``arr`` (1-D, object) holds ``items``, parsed from ``data`` (whose
    length table, ``shm.lengths``, is ``table`` when the parse had one)."""
    key = id(items[0])
    ref = weakref.ref(arr, lambda r, key=key: _drop(key, r))
    _ENTRIES[key] = (items, data, ref, table)


def _drop(key: int, ref) -> None:
    entry = _ENTRIES.get(key)
    if entry is not None and entry[2] is ref:     # not a newer entry under the same key
        del _ENTRIES[key]


def lookup(items: list) -> Optional[bytes]:
    """The serialised bytes of ``items`` (a C-order element list) when they are exactly
    the elements of a parsed input still alive, else None."""
    found = find(items)
    return None if found is None else found[0]


def find(items: list) -> Optional[tuple]:
    """:func:`lookup`'s answer as (serialised bytes, length table or None)."""
    if not _ENTRIES or not items:
        return None
    entry = _ENTRIES.get(id(items[0]))
    if entry is None:
        return None
    parsed, data, ref, table = entry
    if ref() is None or len(parsed) != len(items):
        return None
    # The first item's id matched, but it could be a new object at an old address
    # only if the old one died: parsed holds it, so it cannot have. Check them all.
    if all(map(operator.is_, items, parsed)):
        return data, table
    return None
