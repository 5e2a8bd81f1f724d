"""Runtime state of one model version: its config, policy, router and statistics."""
from __future__ import annotations

from .config import SchedConfig
from .policy import Policy
from .router import InstanceRouter
from .stats import ModelStats


class Model:
    """One model version: what it dispatches (``policy``) and where (``router``)."""

    __slots__ = ("name", "version", "config_json", "cfg", "policy", "router", "stats", "ready",
                 "cached", "generation")

    def __init__(self, name: str, version: int, config_json: str, cfg: SchedConfig,
                 policy: Policy, pipeline: bool = False) -> None:
        self.name = name
        self.version = version
        self.config_json = config_json
        self.cfg = cfg
        self.policy = policy
        self.router = InstanceRouter(self.policy.depth if pipeline else 0)
        self.stats = ModelStats(name, version)
        self.ready = True            # accepts new requests (False while UNLOADING)
        # response_cache under --cache-config: its steps and BLS calls carry Request.cache
        self.cached = False
        self.generation = 0          # the parent's load of this version (ModelEntry.generation)

    def set_pipeline(self, on: bool) -> None:
        self.router.set_depth(self.policy.depth if on else 0)
