"""``pb_utils.Tensor`` and the datatype helpers of ``triton_python_backend_utils``.

Behaviour follows Triton's python_backend: the type
enum is the model_config ``DataType`` number, BYTES are numpy object arrays of
``bytes``, and ``Tensor`` wraps a numpy array without copying it (inputs are
zero-copy views of shared memory; they are valid only during ``execute``).
"""
from __future__ import annotations

import ctypes
import struct

import numpy as np

from .inference import TritonModelException

TRITON_STRING_TO_NUMPY = {
    "TYPE_BOOL": bool,
    "TYPE_UINT8": np.uint8, "TYPE_UINT16": np.uint16,
    "TYPE_UINT32": np.uint32, "TYPE_UINT64": np.uint64,
    "TYPE_INT8": np.int8, "TYPE_INT16": np.int16,
    "TYPE_INT32": np.int32, "TYPE_INT64": np.int64,
    "TYPE_FP16": np.float16, "TYPE_FP32": np.float32, "TYPE_FP64": np.float64,
    "TYPE_STRING": np.object_,
}

_ENUM_TO_NUMPY = {
    1: np.bool_, 2: np.uint8, 3: np.uint16, 4: np.uint32, 5: np.uint64,
    6: np.int8, 7: np.int16, 8: np.int32, 9: np.int64,
    10: np.float16, 11: np.float32, 12: np.float64, 13: np.object_,
}
_NUMPY_TO_ENUM = {np.dtype(t): e for e, t in _ENUM_TO_NUMPY.items() if e != 13}
_LEN = struct.Struct("<I")


def triton_string_to_numpy(triton_type_string: str):
    """``"TYPE_FP32"`` -> ``np.float32`` (KeyError for unknown names, e.g. TYPE_BF16)."""
    return TRITON_STRING_TO_NUMPY[triton_type_string]


def triton_to_numpy_type(data_type: int):
    """DataType enum number -> numpy type (None when unknown)."""
    return _ENUM_TO_NUMPY.get(data_type)


def numpy_to_triton_type(data_type):
    """numpy dtype/type -> DataType enum number; object and bytes are 13 (None: unknown)."""
    try:
        dt = np.dtype(data_type)
    except TypeError:
        return None
    if dt.kind in "OS":
        return 13
    return _NUMPY_TO_ENUM.get(dt.newbyteorder("=") if dt.byteorder in "<>" else dt)


def _element_bytes(item) -> bytes:
    if isinstance(item, bytes):
        return item
    return str(item).encode("utf-8")


def serialize_byte_tensor(input_tensor: np.ndarray):
    """Length-prefixed BYTES serialisation in C order, as ``bytes``.

    An empty tensor gives ``()``, as Triton's helper does; a non-BYTES dtype
    gives None.
    """
    if input_tensor.size == 0:
        return ()
    if input_tensor.dtype.kind not in "OS":
        return None
    parts = []
    for item in input_tensor.ravel(order="C").tolist():
        b = _element_bytes(item)
        parts.append(_LEN.pack(len(b)))
        parts.append(b)
    return b"".join(parts)


def deserialize_bytes_tensor(encoded_tensor) -> np.ndarray:
    """Parse length-prefixed BYTES into a 1-D object array of ``bytes``."""
    data = bytes(memoryview(encoded_tensor).cast("B"))
    items, pos = [], 0
    while pos < len(data):
        (n,) = _LEN.unpack_from(data, pos)
        items.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


_KDLCPU, _KDLCUDA, _KDLCUDAHOST, _KDLCUDAMANAGED = 1, 2, 3, 13


def _cupy():
    import cupy     # only a model that hands over device memory gets here: cupy is there
    return cupy


def _on_device(obj) -> bool:
    """True for CUDA arrays (cupy, torch on cuda): they carry __cuda_array_interface__."""
    return hasattr(obj, "__cuda_array_interface__")


# a private prototype: setting argtypes on ctypes.pythonapi's own would change it for everyone
_GET_POINTER = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi))


def _capsule_device(capsule) -> tuple[int, int]:
    """(DLPack device type, device id) of an unconsumed ``dltensor`` capsule."""
    try:
        ptr = _GET_POINTER(capsule, b"dltensor")
    except ValueError:
        raise TritonModelException("from_dlpack takes a DLPack capsule that was not consumed "
                                   "yet, or an object with __dlpack__") from None
    # DLManagedTensor starts with DLTensor { void *data; DLDevice { int32 type; int32 id } ... }
    device = (ctypes.c_int32 * 2).from_address(ptr + ctypes.sizeof(ctypes.c_void_p))
    return device[0], device[1]


_UNSUPPORTED = "NumPy dtype is not supported."   # python_backend's pb_stub_utils text
_EMPTY_NAME = "Tensor name cannot be an empty string."   # python_backend's PbTensor


# pybind11's TypeError for python_backend's ``py::init(&PbTensor::FromNumpy)``, which
# takes (const std::string&, py::array&): a str (or bytes) and a numpy.ndarray, by position
_SIGNATURE = (
    "__init__(): incompatible constructor arguments. The following argument types are "
    "supported:\n    1. c_python_backend_utils.Tensor(arg0: str, arg1: numpy.ndarray)\n\n"
    "Invoked with: ")


def _converted(args: tuple, kwargs: dict) -> tuple[str, np.ndarray]:
    """(name, array) as pybind11 converts them, else its TypeError: no list, numpy scalar,
    cupy array (that is ``from_dlpack``'s) or third argument; a bytes name is taken."""
    if len(args) == 2 and not kwargs and isinstance(args[1], np.ndarray):
        name = args[0]
        if isinstance(name, str):
            return name, args[1]
        if isinstance(name, (bytes, bytearray)):
            return bytes(name).decode("utf-8"), args[1]
    from .request_args import invoked
    raise TypeError(_SIGNATURE + invoked(args, kwargs))


class _Capsule:
    """Lets ``np.from_dlpack`` / ``cupy.from_dlpack`` import a bare DLPack capsule."""

    def __init__(self, capsule) -> None:
        self._capsule = capsule
        self._device = _capsule_device(capsule)

    def __dlpack__(self, stream=None, **kwargs):
        return self._capsule

    def __dlpack_device__(self):
        return self._device


class Tensor:
    """A named tensor of a request or response (``pb_utils.Tensor(name, np_array)``).

    The data is a numpy array, or a cupy array over GPU memory: a CUDA shared-memory
    input of a model with ``FORCE_CPU_ONLY_INPUT_TENSORS: "no"``, or a tensor made
    by ``from_dlpack`` of a CUDA tensor (torch, cupy). Either way it is not copied.
    """

    def __init__(self, *args, **kwargs) -> None:
        if len(args) == 2 and not kwargs:
            name, arr = args
            if type(arr) is np.ndarray and arr.flags.c_contiguous and type(name) is str \
                    and name:
                # The common case (a model's contiguous numpy output): the dtype's enum in
                # one lookup; other dtypes (object, bytes, byte-swapped) take the full path.
                dtype = _NUMPY_TO_ENUM.get(arr.dtype)
                if dtype is not None:
                    self._name, self._array, self._dtype, self._cpu = name, arr, dtype, True
                    return
        self._set(*_converted(args, kwargs), None)

    def _set(self, name: str, numpy_array, triton_dtype) -> None:
        """Any array: numpy of any layout, cupy (``from_dlpack``, GPU inputs), and
        ``triton_dtype`` to reinterpret the bytes as (BLS outputs)."""
        if name == "":
            raise TritonModelException(_EMPTY_NAME)
        xp = _cupy() if _on_device(numpy_array) else np
        arr = xp.asarray(numpy_array)               # cupy: a view over the same device memory
        if arr.dtype.kind in "UV":
            raise TritonModelException(_UNSUPPORTED)
        want = triton_to_numpy_type(triton_dtype) if triton_dtype is not None else None
        if want is not None and want is not np.object_ and arr.dtype != want:
            # Reinterpret the bytes, as Triton's helper does (BF16 stays raw uint16 words).
            arr = xp.ascontiguousarray(arr).view(want)
        if arr.dtype.kind != "O" and not arr.flags.c_contiguous:
            arr = xp.ascontiguousarray(arr)
        dtype = numpy_to_triton_type(arr.dtype) if triton_dtype is None else triton_dtype
        if dtype is None:
            raise TritonModelException(_UNSUPPORTED)
        self._name = name
        self._array = arr
        self._dtype = dtype
        self._cpu = xp is np

    @classmethod
    def _typed(cls, name: str, arr, triton_dtype) -> "Tensor":
        """A Tensor the worker makes itself, of arrays a model could not pass to
        ``Tensor(name, array)`` (cupy) or with the datatype given (None: the array's)."""
        t = cls.__new__(cls)
        t._set(name, arr, triton_dtype)
        return t

    @classmethod
    def _of(cls, name: str, arr, triton_dtype: int) -> "Tensor":
        """A request input the worker mapped itself (numpy of the declared dtype,
        C order): no checks. Anything else goes through ``_typed``."""
        if type(arr) is not np.ndarray:
            return cls._typed(name, arr, triton_dtype)
        t = cls.__new__(cls)
        t._name = name
        t._array = arr
        t._dtype = triton_dtype
        t._cpu = True
        return t

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        if not self._cpu:
            raise TritonModelException(
                "Tensor is stored in GPU and cannot be converted to NumPy.")
        return self._array

    def triton_dtype(self) -> int:
        return self._dtype

    def shape(self) -> list[int]:
        return list(self._array.shape)

    def is_cpu(self) -> bool:
        return self._cpu

    def to_dlpack(self):
        """A DLPack capsule of the data, on the CPU or the GPU (not for BYTES tensors)."""
        if self._array.dtype.kind == "O":
            raise TritonModelException(f"tensor '{self._name}': BYTES tensors cannot be DLPack")
        return self._array.__dlpack__()

    def __dlpack__(self, stream=None, **kwargs):
        if self._array.dtype.kind == "O":
            raise TritonModelException(f"tensor '{self._name}': BYTES tensors cannot be DLPack")
        if self._cpu:
            return self._array.__dlpack__()
        return self._array.__dlpack__(stream=stream, **kwargs)   # cupy: the consumer's stream

    def __dlpack_device__(self):
        return (_KDLCPU, 0) if self._cpu else self._array.__dlpack_device__()

    @staticmethod
    def from_dlpack(name: str, capsule_or_obj) -> "Tensor":
        """A Tensor sharing the memory of a DLPack object or capsule (C-contiguous only).

        CPU memory becomes a numpy array, CUDA memory a cupy array (no copy either way).
        """
        if name == "":
            raise TritonModelException(_EMPTY_NAME)
        if type(capsule_or_obj).__name__ != "PyCapsule" and not (
                hasattr(capsule_or_obj, "__dlpack__")
                and hasattr(capsule_or_obj, "__dlpack_device__")):
            raise TritonModelException(
                "Provided tensor is not supported. Tensor must be a DLPack capsule or have "
                "`__dlpack__` and `__dlpack_device__` attributes")
        src = capsule_or_obj if hasattr(capsule_or_obj, "__dlpack__") else _Capsule(capsule_or_obj)
        kind = src.__dlpack_device__()[0] if hasattr(src, "__dlpack_device__") else _KDLCPU
        if kind in (_KDLCUDA, _KDLCUDAMANAGED):
            arr = _cupy().from_dlpack(src)
        else:
            arr = np.from_dlpack(src)
        if not arr.flags.c_contiguous:
            raise TritonModelException(
                f"tensor '{name}': DLPack tensor is not contiguous. Only contiguous DLPack "
                f"tensors that are stored in C-Order are supported.")
        return Tensor._typed(name, arr, None)

    def __repr__(self) -> str:
        where = "cpu" if self._cpu else f"cuda:{self._array.device.id}"
        return f"Tensor({self._name!r}, dtype={self._dtype}, shape={self.shape()}, {where})"
