"""The model repository: scan directories into model sources.

``scan`` reads configs, fills backend/platform/file name, applies the version
policy and checks that the model files exist. It does not normalise: the
backend's auto-complete (run by the first worker) may still change
max_batch_size or IO, so the parent calls :func:`normalize` and
:func:`validate` on the completed config.
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field

from tritond import gpus, namespaces
from tritond.repository.autofill import autofill, check_model_files, first_subdir
from tritond.repository.paths import check_model_paths
from tritond.errors import TritonError, internal, invalid_arg, unsupported
from tritond.repository.modelconfig import parse_pbtxt
from tritond.repository.normalization import normalize
from tritond.protos.model_config_pb2 import ModelConfig
from tritond.repository.iovalidation import validate_io
from tritond.repository.validation import validate, validate_config, validate_states
from tritond.repository.versions import list_versions, select_versions

__all__ = ["ModelSource", "scan", "load_source", "normalize", "validate", "load_labels",
           "read_labels"]

CONFIG_FILE = "config.pbtxt"


@dataclass
class ModelSource:
    """One model directory as found on disk.

    ``versions`` are the versions to serve after the version policy;
    ``available`` every numeric version directory. When ``error`` is set the
    model cannot be loaded (it is shown UNAVAILABLE with this reason) and
    ``config``/``versions`` hold whatever was read before the failure.
    """

    name: str
    model_dir: str
    repository: str
    config: ModelConfig
    versions: list[int] = field(default_factory=list)
    available: list[int] = field(default_factory=list)
    error: str | None = None
    # The error came from reading or checking the config, which Triton does when it
    # polls the model (InitializeModelInfo), not when it loads it: the load API then
    # answers "failed to poll from model repository".
    polled: bool = False


def scan(repositories: list[str], *, model_config_name: str = "",
         strict: bool = False, backend_config: dict | None = None,
         namespacing: bool = False) -> list[ModelSource]:
    """Every model directory in the repositories, sorted by name.

    strict (auto-complete disabled) requires config.pbtxt and validates
    inputs/outputs at once. backend_config is accepted for the CLI's
    --backend-config; backend-specific auto-complete runs in the worker.
    A model name found in several repositories is returned once per
    repository, each with an error, unless ``namespacing``: then every source
    is named by its key ``<repository>/<name>`` (tritond/namespaces.py).
    """
    del backend_config  # consumed by the worker-side auto-complete
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for repo in repositories:
        for name in _model_dirs(repo):
            found[name].append((repo, os.path.join(repo, name)))
    sources = []
    for name in sorted(found):
        places = found[name]
        if len(places) > 1 and not namespacing:
            sources.extend(_duplicate(name, places))
            continue
        for repo, model_dir in places:
            source = load_source(model_dir, repo, model_config_name=model_config_name,
                                 strict=strict)
            source.name = namespaces.key(repo, name, namespacing)
            sources.append(source)
    return sources


def load_source(model_dir: str, repository: str, *, model_config_name: str = "",
                strict: bool = False, config: ModelConfig | None = None) -> ModelSource:
    """Read one model directory; failures become ``ModelSource.error``.

    ``config`` (the load API's override) is used instead of the config file.
    """
    name = os.path.basename(os.path.normpath(model_dir))
    source = ModelSource(name, model_dir, repository, ModelConfig())
    try:
        source.polled = True
        source.config = config if config is not None else read_config(
            model_dir, model_config_name=model_config_name, strict=strict)
        source.available = list_versions(model_dir)
        autofill(source.config, model_dir, first_subdir(model_dir))
        groups_error = _validate_read_config(source.config, model_dir, strict)
        source.polled = False
        if groups_error is not None:    # Triton finds them when it creates the model
            raise groups_error
        source.versions = select_versions(source.config.version_policy,
                                          source.available, model=name)
        check_model_paths(source.config, model_dir, source.versions)   # before any stat
        check_model_files(source.config, model_dir, source.versions)
    except TritonError as exc:
        source.versions = []
        source.error = exc.message
    return source


def _validate_read_config(cfg: ModelConfig, model_dir: str,
                          strict: bool) -> TritonError | None:
    """What Triton checks when it reads a config, before its versions and files: the
    normalised config (a copy: the backend's auto-complete comes first at load), and its
    inputs/outputs when auto-complete is disabled (nothing may complete them). Returns
    the instance groups' or implicit states' error, which Triton meets later, creating
    the model."""
    normalized = ModelConfig()
    normalized.CopyFrom(cfg)
    groups_error = None
    try:
        normalize(normalized, gpus=gpus.count())
    except TritonError as exc:   # bad instance groups: Triton finds them when it creates
        groups_error = exc       # the model, after the config's other checks
    validate_config(normalized, model_dir, states=False)
    if strict:
        validate_io(normalized)
    if groups_error is None:
        try:
            validate_states(normalized)     # met creating the model, as the groups
        except TritonError as exc:
            groups_error = exc
    return groups_error


def read_config(model_dir: str, *, model_config_name: str = "",
                strict: bool = False) -> ModelConfig:
    """Parse the model's config file; an absent file is an empty config unless strict."""
    path = config_path(model_dir, model_config_name)
    if not os.path.isfile(path):
        if strict:
            raise invalid_arg(f"model configuration file '{path}' not found; it is "
                              f"required when auto-complete is disabled")
        return ModelConfig()
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise invalid_arg(f"failed to read model configuration '{path}': {exc}") from None
    return parse_pbtxt(text, path)


def config_path(model_dir: str, model_config_name: str = "") -> str:
    """configs/<name>.pbtxt when model_config_name is set and exists, else config.pbtxt."""
    if model_config_name:
        custom = os.path.join(model_dir, "configs", f"{model_config_name}.pbtxt")
        if os.path.isfile(custom):
            return custom
    return os.path.join(model_dir, CONFIG_FILE)


def load_labels(model_dir: str, cfg: ModelConfig) -> dict[str, list[str]]:
    """Labels per output that names a label_filename (one label per line).

    Paths are relative to the model directory; one escaping it is UNSUPPORTED.
    An empty line means "no label" for that class index.
    """
    return read_labels(model_dir, cfg.name,
                       [(o.name, o.label_filename) for o in cfg.output])


def read_labels(model_dir: str, model: str,
                outputs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """:func:`load_labels` on (output name, label_filename) pairs: the parent checks
    them on a ModelConfig at load, the frontend reads them from the JSON config."""
    root = os.path.realpath(model_dir)
    labels: dict[str, list[str]] = {}
    for name, filename in outputs:
        if not filename:
            continue
        shown = os.path.join(model_dir, filename)     # Triton's texts name the joined path
        path = os.path.realpath(os.path.join(root, filename))
        if os.path.commonpath([root, path]) != root:
            raise unsupported(f"label file path '{shown}' for output '{name}' in model "
                              f"'{model}' is outside model directory")
        try:
            with open(path, encoding="utf-8") as handle:
                labels[name] = handle.read().splitlines()
        except OSError as exc:
            raise internal(f"failed to open text file for read {shown}: "
                           f"{exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise invalid_arg(f"failed to read label file '{shown}' of output '{name}' of "
                              f"model '{model}': {exc}") from None
    return labels


def _model_dirs(repo: str) -> list[str]:
    """Names of the directories directly under repo (every one is a model)."""
    try:
        entries = sorted(os.listdir(repo))
    except OSError as exc:
        raise invalid_arg(f"failed to open model repository '{repo}': "
                          f"{exc.strerror}") from None
    return [name for name in entries if os.path.isdir(os.path.join(repo, name))]


DUPLICATE = "model appears in two or more repositories"   # Triton's index reason, verbatim


def _duplicate(name: str, places: list[tuple[str, str]]) -> list[ModelSource]:
    return [ModelSource(name, model_dir, repo, ModelConfig(), error=DUPLICATE)
            for repo, model_dir in places]
