"""Model version directories and the version policy."""
from __future__ import annotations

import logging
import os

from tritond.errors import invalid_arg
from tritond.protos.model_config_pb2 import ModelVersionPolicy

log = logging.getLogger("tritond.repository")
# Model directory entries Triton never takes for versions (warmup data, initial
# sequence states, custom configs).
NOT_VERSIONS = ("warmup", "initial_state", "configs")


def list_versions(model_dir: str) -> list[int]:
    """Sorted version numbers found under model_dir.

    Only directories named by a decimal number count; a name with a leading zero is
    ignored, as Triton does ("0" itself is version 0: Triton 2.51 serves it).
    """
    try:
        entries = os.listdir(model_dir)
    except OSError as exc:
        raise invalid_arg(f"failed to list model directory '{model_dir}': "
                          f"{exc.strerror}") from None
    versions = []
    for name in entries:
        if not os.path.isdir(os.path.join(model_dir, name)) or name in NOT_VERSIONS:
            continue
        if name.isascii() and name.isdigit() and (name == "0" or not name.startswith("0")):
            versions.append(int(name))
        elif len(name) > 1 and name.startswith("0"):     # Triton's warnings, its texts
            log.warning("ignore version directory '%s' which contains leading zeros in its "
                        "directory name", name)
        else:
            log.warning("ignore version directory '%s' which fails to convert to integral "
                        "number", name)
    return sorted(versions)


def select_versions(policy: ModelVersionPolicy, available: list[int], *,
                    model: str) -> list[int]:
    """The versions to serve under policy (no policy set means latest 1).

    Raises INVALID_ARG when the policy leaves nothing to serve (a specific version
    without a directory is logged and left out, as Triton does).
    """
    choice = policy.WhichOneof("policy_choice")
    ordered = sorted(available)
    if choice == "all":
        chosen = ordered
    elif choice == "specific":
        chosen = _specific(policy.specific.versions, ordered, model)
    else:
        count = policy.latest.num_versions if choice == "latest" else 1
        chosen = ordered[-count:] if count > 0 else []
    if not chosen:
        raise invalid_arg(
            f"at least one version must be available under the version policy "
            f"of model '{model}'")
    return chosen


def _specific(wanted, available: list[int], model: str) -> list[int]:
    """The wanted versions that have a directory; as Triton (VersionsToLoad), a missing
    one is logged and the others load (none left: the caller's "at least one" error)."""
    for v in sorted(set(wanted) - set(available)):
        log.error("version %d is specified for model '%s', but the version directory is "
                  "not present", v, model)
    return sorted(set(wanted) & set(available))
