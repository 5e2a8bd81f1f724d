"""What python_backend's ``InferenceRequest``/``InferenceResponse`` bindings refuse in
their arguments: pybind11's TypeError for a wrong type or an explicit None, and the
binding's own TritonModelException (its texts) for values it checks itself.
"""
from __future__ import annotations

import operator


def _refused(message: str) -> Exception:
    """The binding's own refusal: a TritonModelException (from inference.py, which imports
    this module: looked up when raised)."""
    from .inference import TritonModelException
    return TritonModelException(message)


def check_parameters(parameters) -> dict:
    """Request/response parameters: a dict of str -> bool/int/str, refused in
    python_backend's words (its ``PyDefaultArgumentToMutableType`` names the C++ type
    by its mangled name; a JSON string is no dict there either)."""
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise _refused(f"Expect N8pybind114dictE, got {type(parameters)}")
    for key, value in parameters.items():
        if not isinstance(key, str):
            raise _refused(f"Expect parameters keys to have type str, found type {type(key)}")
        if not isinstance(value, (bool, int, str)):
            raise _refused("Expect parameters values to have type bool/int/str, found type "
                           f"{type(value)}")
    return dict(parameters)


def invoked(args: tuple, kwargs: dict) -> str:
    """The arguments as pybind11's "Invoked with: " line writes them."""
    text = ", ".join(repr(a) for a in args)
    if kwargs:
        text += "; kwargs: " + ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return text


_U32, _U64, _I64 = (0, 2**32 - 1), (0, 2**64 - 1), (-2**63, 2**63 - 1)


def refuse_none(**args) -> None:
    """python_backend's binding declares these ``.none(false)``: pybind11 raises TypeError
    for an explicit None (``inputs=None``; leaving the argument out is tritond's leniency)."""
    for name, value in args.items():
        if value is None:
            raise TypeError(f"InferenceRequest: '{name}' must not be None")


def check_tensors(inputs: list, request_id: str, model_name: str) -> None:
    """python_backend's own checks once the arguments converted (TritonModelException)."""
    for t in inputs:
        if t is None:
            raise _refused(
                f"Input tensor for request with id '{request_id}' and model name "
                f"'{model_name}' should not be empty.")


def check_request_args(request_id, correlation_id, inputs, requested, model_name,
                        model_version, flags, timeout) -> tuple[int, int, int]:
    """What python_backend's ``InferenceRequest`` binding refuses: its argument types
    (TypeError, as pybind11 raises) and a correlation id neither integer nor string (its
    own exception). A value that passed here but not the wire would leave a BLS call
    waiting for good (the scheduler cannot decode it, so nobody answers). Returns
    model_version, flags and timeout as ints (a numpy integer is taken, as by pybind11)."""
    from .tensor import Tensor
    for name, value in (("request_id", request_id), ("model_name", model_name)):
        if not isinstance(value, str):
            raise TypeError(f"InferenceRequest: '{name}' must be a str, not "
                            f"{type(value).__name__}")
    ints = []
    for name, value, (low, high) in (("model_version", model_version, _I64),
                                     ("flags", flags, _U32), ("timeout", timeout, _U64)):
        try:
            number = operator.index(value)
        except TypeError:
            number = None
        if number is None or not low <= number <= high:
            raise TypeError(f"InferenceRequest: '{name}' must be an integer in "
                            f"[{low}, {high}], not {value!r}")
        ints.append(int(number))
    if correlation_id is None:           # pybind11's .none(false), before the binding's check
        raise TypeError("InferenceRequest: 'correlation_id' must not be None")
    if not isinstance(correlation_id, str) and (
            not isinstance(correlation_id, int) or not 0 <= correlation_id < 2**64):
        raise _refused("Correlation ID must be integer or string")
    for name, items, kind in (("inputs", inputs, Tensor),
                              ("requested_output_names", requested, str)):
        if items is not None and (isinstance(items, (str, bytes)) or not all(
                isinstance(i, kind) or (i is None and kind is Tensor) for i in items)):
            raise TypeError(f"InferenceRequest: '{name}' must be a list of "
                            f"{kind.__name__}")
    for name in requested or ():
        if name == "":
            raise _refused(
                f"Requested output name for request with id '{request_id}' and model name "
                f"'{model_name}' should not be empty.")
    return ints[0], ints[1], ints[2]
