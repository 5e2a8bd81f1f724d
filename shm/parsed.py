"""The BYTES inputs a process has parsed and still holds, so that an output made of
exactly the same elements (an echo, a pass-through, a reshape) reuses the input's
serialised bytes instead of serialising each element again.

Exact by construction: an entry matches only when every element of the output is
the *same object* as the parsed element at that position (bytes are immutable, so
identical objects serialise identically); an input array the model changed in
place no longer matches. Identity is compared as the arrays' raw element pointers
(``ndarray.tobytes`` of an object array: one memcmp, not a Python step per
element). That is exact because the entry keeps its own copy of the parsed array
(or the list the parse made it from), which holds a reference to every parsed element
the array held when it was parsed: none of them can be freed, so no
other object can have any of their addresses while the entry lives. An entry lives
only as long as the parsed array does (a weak reference drops it), so no request's
data outlives the request here.
"""
from __future__ import annotations

import weakref
from typing import Optional

import numpy as np

# Below this many elements serialising is cheaper than looking an entry up.
MIN_ELEMENTS = 32
# Bytes of one element pointer in an object array's raw data.
_POINTER = np.dtype(object).itemsize

# First element's pointer -> (all pointers, the parsed array's copy holding the
# elements, serialised bytes, weakref to the parsed array, length table).
# Keyed by the first element: a different first element can never match anyway.
_ENTRIES: dict[bytes, tuple] = {}


def remember(arr: np.ndarray, data: bytes, table: Optional[bytes] = None,
             items=None) -> None:
    """Record that ``arr`` (1-D, object) was parsed from ``data`` (whose length table,
    ``shm.lengths``, is ``table`` when the parse had one). ``items``: the list or tuple
    ``arr`` was made from, if the caller has it: it holds the very same elements, so the
    entry keeps it instead of copying ``arr`` (a pass over every element of a 10M-element
    tensor)."""
    pointers = arr.tobytes()
    key = pointers[:_POINTER]
    ref = weakref.ref(arr, lambda r, key=key: _drop(key, r))
    _ENTRIES[key] = (pointers, arr.copy() if items is None else items, data, ref, table)


def _drop(key: bytes, ref) -> None:
    entry = _ENTRIES.get(key)
    if entry is not None and entry[3] is ref:     # not a newer entry under the same key
        del _ENTRIES[key]


def lookup(flat: np.ndarray) -> Optional[bytes]:
    """The serialised bytes of ``flat`` (a C-order 1-D object array) when its elements
    are exactly the elements of a parsed input still alive, else None."""
    found = find(flat)
    return None if found is None else found[0]


def find(flat: np.ndarray) -> Optional[tuple]:
    """:func:`lookup`'s answer as (serialised bytes, length table or None)."""
    if not _ENTRIES or not flat.size or flat.dtype != object:
        return None
    pointers = flat.tobytes()
    entry = _ENTRIES.get(pointers[:_POINTER])
    if entry is None or entry[0] != pointers or entry[3]() is None:
        return None
    return entry[2], entry[4]
