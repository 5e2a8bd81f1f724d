"""Checks of a config's inputs, outputs, batch inputs and batch outputs.

The texts are Triton's (ValidateModelIOConfig): a model refused here reads the same
in tritond's repository index as in tritonserver's log, and Triton's QA greps them.
"""
from __future__ import annotations

from tritond.errors import invalid_arg
from tritond.protos.model_config_pb2 import BatchInput, BatchOutput, DataType, ModelConfig

_ONE_SOURCE_INPUT_KINDS = (
    BatchInput.BATCH_ELEMENT_COUNT, BatchInput.BATCH_ACCUMULATED_ELEMENT_COUNT,
    BatchInput.BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO,
    BatchInput.BATCH_MAX_ELEMENT_COUNT_AS_SHAPE, BatchInput.BATCH_ITEM_SHAPE,
    BatchInput.BATCH_ITEM_SHAPE_FLATTEN)


def validate_io(cfg: ModelConfig) -> None:
    """Every input and output, then the batch inputs/outputs; Triton's messages end with
    `` for <model>``."""
    try:
        for kind, tensors in (("input", cfg.input), ("output", cfg.output)):
            for tensor in tensors:
                _shape(f"model {kind} ", tensor, cfg.max_batch_size)
                if tensor.is_shape_tensor and cfg.platform != "tensorrt_plan":
                    raise ValueError("shape tensors are only supported for TensorRT platform")
        _batch_io(cfg)
    except ValueError as exc:
        raise invalid_arg(f"{exc} for {cfg.name}") from None
    _unique(cfg)


def _unique(cfg: ModelConfig) -> None:
    """tritond's own check: Triton keeps the last of two tensors of one name."""
    for kind, tensors in (("input", cfg.input), ("output", cfg.output)):
        seen: set[str] = set()
        for tensor in tensors:
            if tensor.name in seen:
                raise invalid_arg(
                    f"model {kind} '{tensor.name}' is specified more than once "
                    f"in the configuration of {cfg.name}")
            seen.add(tensor.name)


def _shape(prefix: str, tensor, max_batch_size: int) -> None:
    """Triton's ValidateIOShape (prefix "model input " / "model output ")."""
    if not tensor.name:
        raise ValueError(f"{prefix}must specify 'name'")
    where = f"{prefix}'{tensor.name}' "
    if tensor.data_type == DataType.TYPE_INVALID:
        raise ValueError(f"{where}must specify 'data_type'")
    if not tensor.dims:
        raise ValueError(f"{where}must specify 'dims'")
    reshape = list(tensor.reshape.shape) if tensor.HasField("reshape") else None
    if reshape == [] and max_batch_size == 0:
        raise ValueError(f"{where}cannot have empty reshape for non-batching model as "
                         f"scalar tensors are not supported")
    if any(d < 1 and d != -1 for d in tensor.dims):
        raise ValueError(f"{where}dimension must be integer >= 1, or -1 to indicate a "
                         f"variable-size dimension")
    if reshape is None:
        return
    if any(d < 1 and d != -1 for d in reshape):
        raise ValueError(f"{where}reshape dimensions must be integer >= 1, or -1 to "
                         f"indicate a variable-size dimension")
    _reshape(where, list(tensor.dims), reshape)


def _reshape(where: str, dims: list[int], shape: list[int]) -> None:
    """Equal element counts; with variable dims, equal counts between consecutive -1s.
    An empty reshape (a scalar) goes with dims whose count is 1."""
    dims_count, shape_count = _count(dims), _count(shape)
    if dims_count != shape_count and not (shape == [] and dims_count == 1):
        raise ValueError(f"{where}has different size for dims and reshape")
    if dims_count != -1:
        return
    dims_parts, shape_parts = _segments(dims), _segments(shape)
    if len(dims_parts) != len(shape_parts):
        raise ValueError(f"{where}has different number of variable-size dimensions for "
                         f"dims and reshape")
    if dims_parts != shape_parts:
        raise ValueError(f"{where}has different size for dims and reshape")


def _count(dims: list[int]) -> int:
    """Element count, -1 when any dimension is variable (an empty shape counts 0)."""
    if not dims:
        return 0
    if -1 in dims:
        return -1
    count = 1
    for dim in dims:
        count *= dim
    return count


def _segments(dims: list[int]) -> list[int]:
    """Products of the fixed dimensions between variable-size (-1) dimensions."""
    products, current = [], 1
    for dim in dims:
        if dim == -1:
            products.append(current)
            current = 1
        else:
            current *= dim
    return [*products, current]


def _batch_io(cfg: ModelConfig) -> None:
    """Triton's ValidateBatchIO."""
    inputs = {t.name for t in cfg.input}
    outputs = {t.name for t in cfg.output}
    for batch in cfg.batch_input:
        kind = BatchInput.Kind.Name(batch.kind)
        if batch.kind not in _ONE_SOURCE_INPUT_KINDS:
            raise ValueError(f"unknown batch input kind '{kind}'")
        if len(batch.source_input) != 1:
            raise ValueError(f"batch input kind '{kind}' expects 1 source input, "
                             f"got {len(batch.source_input)}")
        if batch.data_type not in (DataType.TYPE_INT32, DataType.TYPE_FP32):
            raise ValueError("batch input data type must be TYPE_INT32 or TYPE_FP32")
        _sources(batch, inputs)
    for batch in cfg.batch_output:
        kind = BatchOutput.Kind.Name(batch.kind)
        if batch.kind != BatchOutput.BATCH_SCATTER_WITH_INPUT_SHAPE:
            raise ValueError(f"unknown batch output kind '{kind}'")
        if len(batch.source_input) != 1:
            raise ValueError(f"batch output kind '{kind}' expects 1 source input, "
                             f"got {len(batch.source_input)}")
        _sources(batch, inputs)
        targets: set[str] = set()
        for target in batch.target_name:
            if target not in outputs:
                raise ValueError(f"unknown target output name '{target}'")
            if target in targets:
                raise ValueError(f"target output name '{target}' can only be specified once")
            targets.add(target)


def _sources(batch, inputs: set[str]) -> None:
    for source in batch.source_input:
        if source not in inputs:
            raise ValueError(f"unknown source input name '{source}'")
