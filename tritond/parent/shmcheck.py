"""Start-up check that /dev/shm can hold the arenas the children will create (issue 3).

Arenas are created lazily and a tensor that does not fit gets its own
segment, so a small /dev/shm (docker's default is 64 MiB) does not stop the
server; but without this check the first sign would be a full /dev/shm under
load. The parent therefore logs ONE actionable line at start.
"""
from __future__ import annotations

from typing import Optional

from tritond.shm import region


def arena_space_warning(options, frontends: int, workers,
                        path: str = region.SHM_DIR) -> Optional[str]:
    """None if ``path`` has room for every arena, else the line to log.

    ``workers``: a count, or the parent's model table (one worker per instance).
    """
    if isinstance(workers, dict):
        workers = sum(len(mv.instances) for mv in workers.values())
    inp = options.input_arena_byte_size
    out = options.output_arena_byte_size
    needed = inp * frontends + out * workers
    msg = region.check_space(needed, path)
    if msg is None:
        return None
    return (f"shared memory: {msg} (needed = --input-arena-byte-size={inp} x {frontends} "
            f"frontend(s) + --output-arena-byte-size={out} x {workers} worker(s); "
            f"until then tensors that do not fit use their own segments)")
