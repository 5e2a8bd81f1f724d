"""Build ``ModelSpec``s for tests the way the parent does: from config text."""
from __future__ import annotations

from tritond import repository
from tritond.repository.modelconfig import from_dict, parse_pbtxt
from tritond.spec import ModelSpec


def spec(pbtxt: str, version: int = 0, normalize: bool = True) -> ModelSpec:
    """The spec of a config.pbtxt text (normalised like a loaded model's)."""
    cfg = parse_pbtxt(pbtxt, "test config")
    if normalize:
        repository.normalize(cfg)
    return repository.spec_from_config(cfg, version)


def spec_from_dict(config: dict, version: int = 0, normalize: bool = False) -> ModelSpec:
    """The spec of a config in Triton's JSON form (a dict)."""
    cfg = from_dict(config)
    if normalize:
        repository.normalize(cfg)
    return repository.spec_from_config(cfg, version)
