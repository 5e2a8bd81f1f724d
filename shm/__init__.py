"""Shared memory for tritond: the only way tensor bytes cross a process boundary.

- ``dtypes``: protocol datatypes <-> numpy <-> config enums; BYTES (de)serialisation.
- ``region``: POSIX segments (create/attach/unlink), orphan reaping, free-space check.
- ``arena``: per-process best-fit arena plus one-off overflow segments (``ArenaPool``).
- ``views``: ``SegmentCache`` zero-copy numpy views of other processes' segments.
"""
