"""``pb_utils.ModelConfig``: the auto-complete helper.

The rules and error texts are Triton's, so an ``auto_complete_config`` that
works (or fails) under Triton behaves the same here.
"""
from __future__ import annotations

import json

_INPUT_KEYS = ("name", "data_type", "dims", "optional")
_OUTPUT_KEYS = ("name", "data_type", "dims")


class ModelConfig:
    """Wraps the model config (a JSON string) for ``auto_complete_config``."""

    def __init__(self, model_config) -> None:
        cfg = json.loads(model_config) if isinstance(model_config, (str, bytes)) else model_config
        cfg.setdefault("name", "")
        cfg.setdefault("max_batch_size", 0)
        cfg.setdefault("input", [])
        cfg.setdefault("output", [])
        self._model_config = cfg

    def _name(self) -> str:
        return self._model_config["name"]

    def as_dict(self) -> dict:
        return self._model_config

    def set_max_batch_size(self, max_batch_size: int) -> None:
        """Raise ValueError when the config already has a larger non-zero value."""
        current = int(self._model_config.get("max_batch_size", 0) or 0)
        if current > max_batch_size:
            raise ValueError(
                f"configuration specified max_batch_size {current}, but in auto-complete-config "
                f"function for model '{self._name()}' specified max_batch_size {max_batch_size}")
        self._model_config["max_batch_size"] = max_batch_size

    def set_dynamic_batching(self) -> None:
        """Add ``dynamic_batching {}`` unless another scheduler is configured."""
        for other in ("sequence_batching", "ensemble_scheduling"):
            if other in self._model_config:
                raise ValueError(
                    f"Configuration specified scheduling_choice as '{other}', but "
                    f"auto-complete-config function for model '{self._name()}' tries to set "
                    f"scheduling_choice as 'dynamic_batching'")
        self._model_config.setdefault("dynamic_batching", {})

    def add_input(self, input: dict) -> None:  # noqa: A002 - Triton's parameter name
        self._add("input", input, _INPUT_KEYS)

    def add_output(self, output: dict) -> None:
        self._add("output", output, _OUTPUT_KEYS)

    def _add(self, kind: str, tensor: dict, allowed: tuple) -> None:
        self._check_keys(kind, tensor, allowed)
        for current in self._model_config[kind]:
            if current["name"] == tensor["name"]:
                self._merge(kind, current, tensor)
                return
        self._model_config[kind].append(tensor)

    def _check_keys(self, kind: str, tensor: dict, allowed: tuple) -> None:
        where = f"in auto-complete-config function for model '{self._name()}'"
        for key in tensor:
            if key not in allowed:
                names = ", ".join(f"'{k}'" for k in allowed[:-1]) + f" and '{allowed[-1]}'"
                raise ValueError(f"{kind} '{tensor.get('name')}' {where} contains property "
                                 f"other than {names}.")
        if "name" not in tensor:
            raise ValueError(f"{kind} {where} is missing 'name' property.")
        for key in ("data_type", "dims"):
            if key not in tensor:
                raise ValueError(f"{kind} '{tensor['name']}' {where} is missing '{key}' property.")

    def _merge(self, kind: str, current: dict, tensor: dict) -> None:
        name, model = tensor["name"], self._name()
        have = current.get("data_type", "TYPE_INVALID")
        if have != "TYPE_INVALID" and have != tensor["data_type"]:
            raise ValueError(f"unable to load model '{model}', configuration expects datatype "
                             f"{have} for {kind} '{name}', model provides {tensor['data_type']}")
        dims = [int(d) for d in current.get("dims", [])]
        if dims and dims != [int(d) for d in tensor["dims"]]:
            raise ValueError(f"model '{model}', tensor '{name}': the model expects dims "
                             f"{tensor['dims']} but the model configuration specifies dims "
                             f"{current['dims']}")
        if "optional" in current and "optional" in tensor and current["optional"] != tensor["optional"]:
            raise ValueError(f"model '{model}', tensor '{name}': the model expects optional "
                             f"{tensor['optional']} but the model configuration specifies "
                             f"optional {current['optional']}")
        current["data_type"] = tensor["data_type"]
        current["dims"] = tensor["dims"]
        if "optional" in tensor:
            current["optional"] = tensor["optional"]

    def set_model_transaction_policy(self, transaction_policy_dict: dict) -> None:
        """Set ``model_transaction_policy.decoupled`` (ValueError on a conflicting value)."""
        for key in transaction_policy_dict:
            if key != "decoupled":
                raise ValueError(
                    f"model transaction property in auto-complete-config function for model "
                    f"'{self._name()}' contains property other than 'decoupled'.")
        policy = self._model_config.setdefault("model_transaction_policy", {})
        if "decoupled" not in transaction_policy_dict:
            return
        want = transaction_policy_dict["decoupled"]
        if "decoupled" in policy and policy["decoupled"] != want:
            raise ValueError(
                f"trying to change decoupled property in auto-complete-config for model "
                f"'{self._name()}', which is already set to '{policy['decoupled']}'.")
        policy["decoupled"] = want
