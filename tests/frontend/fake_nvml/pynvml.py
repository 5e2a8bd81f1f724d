"""A stand-in for NVML on hosts without an NVIDIA driver (tests of tritond's GPU metrics).

NVML itself cannot run without a GPU, so the metrics tests put this folder on the
server's PYTHONPATH. It answers nvidia-ml-py's calls for two GPUs with fixed
figures, plus an energy counter that grows by 1.5 J per reading of each GPU, and
GPU 1 reports power usage as not supported (NVML's NotSupported error).
Nothing of tritond is replaced: only the driver library it talks to.
"""
from types import SimpleNamespace


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


_UUIDS = ["GPU-11111111-aaaa-bbbb-cccc-000000000000", "GPU-22222222-aaaa-bbbb-cccc-000000000000"]
_energy = [5_000_000, 9_000_000]      # mJ since boot
_started = False


def nvmlInit():
    global _started
    _started = True


def nvmlShutdown():
    global _started
    _started = False


def _check():
    if not _started:
        raise NVMLError("Uninitialized")


def nvmlDeviceGetCount():
    _check()
    return len(_UUIDS)


def nvmlDeviceGetHandleByIndex(i):
    _check()
    return i


def nvmlDeviceGetUUID(h):
    return _UUIDS[h]


def nvmlDeviceGetCudaComputeCapability(h):
    return (9, 0)


def nvmlDeviceGetUtilizationRates(h):
    return SimpleNamespace(gpu=[37, 80][h], memory=10)


def nvmlDeviceGetMemoryInfo(h):
    total = [143_771_000_832, 85_899_345_920][h]
    return SimpleNamespace(total=total, used=[1 << 30, 3 << 30][h], free=total - (1 << 30))


def nvmlDeviceGetPowerUsage(h):
    if h == 1:
        raise NVMLError_NotSupported("Not Supported")
    return 123_456                     # mW


def nvmlDeviceGetEnforcedPowerLimit(h):
    return [700_000, 400_000][h]      # mW


def nvmlDeviceGetTotalEnergyConsumption(h):
    _energy[h] += 1500
    return _energy[h]
