"""A load of a model's versions succeeds or fails as a whole.

Triton (core's ``ModelLifeCycle::OnLoadFinal``) tracks the versions one load brings up
(its ``LoadTracker``): once the last of them ends, if any failed, every version that
load loaded is released (UNLOADING, then UNAVAILABLE "unloaded"), so the model serves
none of them. Versions that served before the load (a reload) are not in that set and
keep serving. The failed versions keep their own reasons.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from .models import READY, ModelVersion


async def load_together(versions: list[ModelVersion],
                        load: Callable[[ModelVersion], Awaitable[None]],
                        release: Callable[[list[ModelVersion]], None]) -> None:
    """Load ``versions`` at once; when the last ends and one failed, ``release`` the
    ones that loaded.

    The release runs in the same step as the last version's end: an ensemble waiting
    for the model (ensembles.load_ensemble) must never see a loaded version of a load
    that failed, as Triton's dependency graph sees only the load's final states."""
    left = len(versions)

    async def one(mv: ModelVersion) -> None:
        nonlocal left
        await load(mv)
        left -= 1
        if left == 0 and any(v.state != READY for v in versions):
            if loaded := [v for v in versions if v.state == READY]:
                release(loaded)

    await asyncio.gather(*(one(mv) for mv in versions))
