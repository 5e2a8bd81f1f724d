"""The scheduling-relevant part of a model config, digested once per config.

Built from the ``tritond.spec.ModelSpec`` the parent sends in each
``ModelEntry``; the scheduler only needs a handful of fields, lifted here into
flat, slotted objects so the hot path never walks the spec.
"""
from __future__ import annotations

from typing import Optional

from tritond.inputrules import InputRules
from tritond.spec import TIMEOUT_DELAY, TIMEOUT_REJECT, DynamicBatching, ModelSpec, QueuePolicy

REJECT = TIMEOUT_REJECT
DELAY = TIMEOUT_DELAY


class Policy:
    """One priority level's ModelQueuePolicy."""

    __slots__ = ("timeout_action", "timeout_ns", "allow_override", "max_queue_size")

    def __init__(self, spec: Optional[QueuePolicy] = None) -> None:
        spec = spec or _NO_POLICY
        self.timeout_action = spec.timeout_action
        self.timeout_ns = spec.default_timeout_us * 1000
        self.allow_override = spec.allow_timeout_override
        self.max_queue_size = spec.max_queue_size

    def deadline(self, enqueue_ns: int, timeout_us: int) -> int:
        """Absolute expiry time, or 0 for none (scheduler_utils.cc PolicyQueue::Enqueue).

        A request's own timeout only applies when overriding is allowed, it is
        non-zero and it *lowers* the default; with no default it is ignored.
        """
        timeout_ns = self.timeout_ns
        if self.allow_override and timeout_us:
            override_ns = timeout_us * 1000
            if override_ns < timeout_ns:
                timeout_ns = override_ns
        return enqueue_ns + timeout_ns if timeout_ns else 0


class LevelPolicies:
    """Policy per level index (level L at index L-1): the ones the config names and the
    default for every other. Not a list: ``priority_levels`` may be 2^64 - 1 (Triton's
    qa/L0_model_queue), and Triton makes a level's queue only when a request needs it."""

    __slots__ = ("default", "named")

    def __init__(self, dyn: DynamicBatching) -> None:
        self.default = Policy(dyn.default_queue_policy)
        self.named = {level - 1: Policy(p) for level, p in dyn.priority_queue_policy.items()}

    def __getitem__(self, index: int) -> Policy:
        return self.named.get(index, self.default)

    def __iter__(self):
        """Every distinct policy (the default first)."""
        yield self.default
        yield from self.named.values()


class SchedConfig:
    """How one model version is scheduled.

    ``batching`` is true only for the dynamic batcher on a model with
    max_batch_size > 0; everything else runs one request per execution.
    """

    __slots__ = ("max_batch_size", "batching", "preferred", "max_preferred", "delay_ns",
                 "levels", "default_level", "policies", "preserve_ordering", "sequence",
                 "pipelinable", "ragged", "spec", "name", "seq", "iterative", "rules",
                 "passive_only")

    def __init__(self, spec: Optional[ModelSpec] = None) -> None:
        spec = spec or _NO_SPEC
        self.spec = spec                 # an ensemble's policy reads its steps
        self.max_batch_size = spec.max_batch_size
        dyn = spec.dynamic_batching
        dynamic = dyn is not None
        dyn = dyn or _NO_DYNAMIC
        self.batching = dynamic and self.max_batch_size > 0
        preferred = [s for s in dyn.preferred_batch_size if 0 < s <= self.max_batch_size]
        if not preferred and self.max_batch_size > 0:
            preferred = [self.max_batch_size]  # Triton's normalisation
        self.preferred = frozenset(preferred)
        self.max_preferred = max(preferred) if preferred else 1
        self.delay_ns = dyn.max_queue_delay_us * 1000
        # Enforced by the frontend (frontend/ordering.py), where responses land.
        self.preserve_ordering = dyn.preserve_ordering
        self.levels = dyn.priority_levels
        default_level = dyn.default_priority_level
        self.default_level = min(max(default_level, 1), self.levels) if self.levels else 1
        self.policies = self._policies(dyn)
        self.sequence = spec.sequence_batching is not None
        self.seq = spec.sequence_batching      # read by scheduler/sequence.py
        self.iterative = self.sequence and self.seq.iterative   # scheduler/iterative.py
        self.name = spec.name
        self.ragged = frozenset(i.name for i in spec.inputs if i.allow_ragged_batch)
        self.rules = InputRules(spec)    # steps' and BLS calls' input checks (inputcheck.py)
        # every instance_group passive: no instance of this model ever executes
        groups = spec.instance_groups
        self.passive_only = bool(groups) and all(g.passive for g in groups)
        # A request pipelined into a worker's socket can no longer be overtaken
        # by a higher priority, expire or count toward max_queue_size: models
        # that use those rules (or sequences) keep one batch per instance.
        self.pipelinable = (self.levels <= 1 and not self.sequence
                            and not any(p.timeout_ns or p.max_queue_size for p in self.policies))

    def _policies(self, dyn: DynamicBatching) -> LevelPolicies:
        return LevelPolicies(dyn)

    def level_index(self, priority: int) -> int:
        """Queue index for a request priority: 0 or > levels means the default level."""
        if priority <= 0 or priority > self.levels:
            return self.default_level - 1
        return priority - 1


_NO_POLICY = QueuePolicy()
_NO_DYNAMIC = DynamicBatching()
_NO_SPEC = ModelSpec("")
