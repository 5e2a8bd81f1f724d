"""The scheduling-relevant part of a model config, parsed once per config.

A config travels between processes as Triton's JSON rendering (see
``docs/internals.md``). The scheduler only needs a handful of fields; they are
lifted here into flat, slotted objects so the hot path never touches dicts.
64-bit fields may arrive as JSON numbers or strings (protobuf JSON), so every
number goes through ``int()``.
"""
from __future__ import annotations

from typing import Any

REJECT = 0
DELAY = 1

# Triton's SEQUENCE_START / SEQUENCE_END request flags.
SEQUENCE_START = 1
SEQUENCE_END = 2


class Policy:
    """One priority level's ModelQueuePolicy (§3.9)."""

    __slots__ = ("timeout_action", "timeout_ns", "allow_override", "max_queue_size")

    def __init__(self, raw: dict[str, Any] | None = None) -> None:
        raw = raw or {}
        action = raw.get("timeout_action", "REJECT")
        self.timeout_action = DELAY if action in ("DELAY", 1) else REJECT
        self.timeout_ns = int(raw.get("default_timeout_microseconds", 0) or 0) * 1000
        self.allow_override = bool(raw.get("allow_timeout_override", False))
        self.max_queue_size = int(raw.get("max_queue_size", 0) or 0)

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


class SchedConfig:
    """How one model version is scheduled.

    ``batching`` is true only for the dynamic batcher on a model with
    max_batch_size > 0; everything else runs one request per execution.
    """

    __slots__ = ("max_batch_size", "batching", "preferred", "max_preferred", "delay_ns",
                 "levels", "default_level", "policies", "preserve_ordering", "sequence",
                 "pipelinable", "ragged")

    def __init__(self, config: dict[str, Any]) -> None:
        self.max_batch_size = int(config.get("max_batch_size", 0) or 0)
        dyn = config.get("dynamic_batching")
        dynamic = isinstance(dyn, dict)
        dyn = dyn if dynamic else {}
        self.batching = dynamic and self.max_batch_size > 0
        preferred = [int(s) for s in dyn.get("preferred_batch_size", []) or []]
        preferred = [s for s in preferred if 0 < s <= self.max_batch_size]
        if not preferred and self.max_batch_size > 0:
            preferred = [self.max_batch_size]  # Triton's normalisation
        self.preferred = frozenset(preferred)
        self.max_preferred = max(preferred) if preferred else 1
        self.delay_ns = int(dyn.get("max_queue_delay_microseconds", 0) or 0) * 1000
        # Enforced by the frontend (frontend/ordering.py), where responses land.
        self.preserve_ordering = bool(dyn.get("preserve_ordering", False))
        self.levels = int(dyn.get("priority_levels", 0) or 0)
        default_level = int(dyn.get("default_priority_level", 0) or 0)
        self.default_level = min(max(default_level, 1), self.levels) if self.levels else 1
        self.policies = self._policies(dyn)
        self.sequence = isinstance(config.get("sequence_batching"), dict)
        self.ragged = frozenset(i["name"] for i in config.get("input", []) or []
                                if i.get("allow_ragged_batch"))
        # A request pipelined into a worker's socket can no longer be overtaken
        # by a higher priority, expire or count toward max_queue_size: models
        # that use those rules (or sequences) keep one batch per instance.
        self.pipelinable = (self.levels <= 1 and not self.sequence
                            and not any(p.timeout_ns or p.max_queue_size for p in self.policies))

    def _policies(self, dyn: dict[str, Any]) -> list[Policy]:
        """Policy per level index (level L at index L-1); one shared level when unset."""
        default = dyn.get("default_queue_policy")
        per_level = dyn.get("priority_queue_policy") or {}
        count = max(self.levels, 1)
        return [Policy(per_level.get(str(i + 1), default)) for i in range(count)]

    def level_index(self, priority: int) -> int:
        """Queue index for a request priority: 0 or > levels means the default level."""
        if priority <= 0 or priority > self.levels:
            return self.default_level - 1
        return priority - 1
