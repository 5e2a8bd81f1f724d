"""A load of a model's versions succeeds or fails as a whole.

Triton (core's ``ModelLifeCycle``) tracks the versions one load brings up (its
``LoadTracker``). A version whose own load ended stays LOADING, so neither the index,
model-ready nor inference (``GetModel``: "is not at ready state") treat it as served,
until the last version of the load ends (``OnLoadFinal``): then all of them become
READY at once, or, if any failed, every version that load loaded is released (UNLOADING,
then UNAVAILABLE "unloaded") without ever having served. Versions that served before the
load (a reload) are not in that set and keep serving. The failed versions keep their own
reasons.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from .models import LOADED, ModelVersion

Versions = Callable[[list[ModelVersion]], None]


async def load_together(versions: list[ModelVersion],
                        load: Callable[[ModelVersion], Awaitable[None]],
                        serve: Versions, release: Versions) -> None:
    """Load ``versions`` at once (each ends LOADED or UNAVAILABLE); when the last ends,
    ``serve`` them all, or ``release`` the LOADED ones if one failed.

    The decision runs in the same step as the last version's end: an ensemble waiting
    for the model (ensembles.load_ensemble) must never see a loaded version of a load
    that failed, as Triton's dependency graph sees only the load's final states."""
    left = len(versions)

    async def one(mv: ModelVersion) -> None:
        nonlocal left
        await load(mv)
        left -= 1
        if left:
            return
        loaded = [v for v in versions if v.state == LOADED]
        if len(loaded) == len(versions):
            serve(versions)
        elif loaded:
            release(loaded)

    await asyncio.gather(*(one(mv) for mv in versions))
