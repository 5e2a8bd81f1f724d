"""A worker's backend, from ``Load`` to loaded: instantiate, auto-complete, load."""
from __future__ import annotations

import json

from tritond import messages, namespaces
from tritond.errors import Code, TritonError
from tritond.options import Options
from tritond.repository import backends
from tritond.spec import ModelSpec

from .backend import Backend, LoadContext, backend_class


def load_backend(load: messages.Load, options: Options) -> tuple[Backend, ModelSpec]:
    """The loaded backend of ``load`` and the spec it loaded with (auto-completed when asked)."""
    spec = load.spec
    if not spec.backend:
        raise TritonError(Code.INVALID_ARG,
                          f"model '{load.model}': config names no backend "
                          f"(platform '{spec.platform}')")
    # A Python-based backend runs in the Python backend, as in Triton (backends.py)
    runtime_dir = backends.backend_dir(options.backend_directory, spec.backend) \
        if spec.runtime == backends.PYTHON_FILE else ""
    ctx = LoadContext(namespaces.name_of(load.model), load.version, load.instance, load.kind,
                      load.device_id, load.model_dir, load.repository, options, runtime_dir)
    backend = backend_class("python" if runtime_dir else spec.backend, spec.platform)(ctx)
    if load.auto_complete:
        # The backends' auto-complete works on Triton's JSON dict (the
        # Python backend hands it to the model as pb_utils.ModelConfig).
        config = json.loads(spec.config_json) if spec.config_json else {}
        spec = finalize(backend.auto_complete(config), load)
    backend.load(spec)
    return backend, spec


def finalize(config: dict, load: messages.Load) -> ModelSpec:
    """Normalise and validate an auto-completed config, as the parent would.

    The first instance of a model owns auto-complete (only the backend can read
    the model file), so it also applies the control plane's normalisation and
    validation before initialising: ``initialize(args)`` then sees the final
    config, and the parent starts the other instances with exactly that.
    """
    from tritond.repository import modelconfig
    from tritond import repository

    cfg = modelconfig.from_dict(config)
    repository.normalize(cfg, gpus=load.gpus)
    repository.validate(cfg, load.model_dir)
    return repository.spec_from_config(cfg, load.version)
