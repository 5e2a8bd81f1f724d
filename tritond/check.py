"""``tritond check REPO [MODEL...]``: validate a model repository without starting a server.

For CI pipelines of model repositories: every problem tritond would report when
loading (config.pbtxt syntax with file:line, fields, versions, model files, ONNX
inputs/outputs against the model, ensemble graphs, features tritond does not
support yet, Python execution environments: unpacked into TMPDIR and removed) is printed as one line, and the exit code is 1 when there is any
(2 for a usage error). Models are checked in this process: ONNX models open an
onnxruntime session; Python models are not imported (their code runs only in a
server).
"""
from __future__ import annotations

import argparse
import os
import sys

from google.protobuf import text_format

from tritond import gpus
from tritond.errors import TritonError, status_text
from tritond.repository.backends import DEFAULT_DIRECTORY


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tritond check", description="Validate a Triton model repository: one line "
        "per problem, exit code 1 if there is any.")
    parser.add_argument("repository", help="model repository path")
    # default=[]: argparse otherwise lists an absent "*" positional as required
    parser.add_argument("models", nargs="*", default=[], metavar="MODEL", help="only these models")
    parser.add_argument("--model-config-name", default="",
                        help="use <model>/configs/<name>.pbtxt when it exists")
    parser.add_argument("--strict-model-config", action="store_true",
                        help="require complete configs (no auto-complete), as the server flag")
    parser.add_argument("--backend-directory", default=DEFAULT_DIRECTORY,
                        help="where Python-based backends lie, as the server flag")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.repository):
        print(f"tritond check: error: model repository '{args.repository}' is not a directory",
              file=sys.stderr)
        return 2
    problems, checked = check(args.repository, args.models, args.model_config_name,
                              args.strict_model_config, args.backend_directory)
    for line in problems:
        print(line)
    print(f"tritond check: {checked} model{'s' if checked != 1 else ''} checked, "
          f"{len(problems)} problem{'s' if len(problems) != 1 else ''}", file=sys.stderr)
    return 1 if problems else 0


def check(repository: str, names: list[str], model_config_name: str = "",
          strict: bool = False,
          backend_directory: str = DEFAULT_DIRECTORY) -> tuple[list[str], int]:
    """(problem lines, number of models checked)."""
    from tritond import repository as repo

    sources = {s.name: s for s in repo.scan([repository], model_config_name=model_config_name,
                                             strict=strict)}
    problems = [f"{name}: model '{name}' not found in '{repository}'"
                for name in names if name not in sources]
    chosen = [sources[n] for n in (names or sorted(sources)) if n in sources]
    for src in chosen:
        problems += [_one_line(text) for text in _model(src, model_config_name, strict,
                                                        set(sources), backend_directory)]
    return problems, len(chosen)


def _model(src, model_config_name: str, strict: bool, known: set[str],
           backend_directory: str) -> list[str]:
    """The problems of one model, in load order: ``<model>: <problem>`` or, for a config
    that does not parse, ``<path>:<line>:<column>: <problem>``."""
    if src.error:
        return [_syntax(src.model_dir, model_config_name) or f"{src.name}: {src.error}",
                *(f"{src.name}: {text}" for text in _unknown_steps(src.config, known))]
    return [f"{src.name}: {text}" for text in _problems(src, strict, known,
                                                         backend_directory)]


def _unknown_steps(cfg, known: set[str]) -> list[str]:
    """An ensemble's steps naming models the repository lacks (also reported when its own
    config is refused: the two are independent fixes)."""
    if cfg.platform != "ensemble":
        return []
    return [f"ensemble '{cfg.name}' step {i} names model '{s.model_name}', which is not in "
            f"the repository" for i, s in enumerate(cfg.ensemble_scheduling.step)
            if s.model_name and s.model_name not in known]


def _problems(src, strict: bool, known: set[str], backend_directory: str) -> list[str]:
    from tritond import repository as repo
    from tritond.repository import backends, support

    cfg = src.config
    try:
        repo.normalize(cfg, gpus=gpus.count())
        for version in src.versions[:1]:      # the server resolves it at each load
            backends.resolve(cfg, src.model_dir, version, backend_directory)
    except TritonError as exc:
        return [exc.message]
    found = [support.message(cfg.name, f) for f in support.unsupported_features(cfg)]
    found += _unknown_steps(cfg, known)
    if not src.versions:
        found.append(f"model '{cfg.name}' has no version directory to serve "
                     f"(available: {src.available or 'none'})")
    found += _environment(cfg, src.model_dir)
    try:
        if cfg.backend == "onnxruntime" and src.versions:
            for version in src.versions:
                _onnx(src, cfg, version, strict)
        elif cfg.input or cfg.output or strict or cfg.platform == "ensemble":
            repo.validate(cfg, src.model_dir)
    except TritonError as exc:
        found.append(exc.message)
    except Exception as exc:  # noqa: BLE001 - one broken model must not stop the others' check
        found.append(f"{type(exc).__name__}: {exc}")
    return found


def _environment(cfg, model_dir: str) -> list[str]:
    """A Python model's EXECUTION_ENV_PATH, found, unpacked (then removed) and checked as
    the server's load does."""
    from tritond.parent import pythonenv

    if not (value := pythonenv.requested(cfg)):
        return []
    envs = pythonenv.Environments()
    try:
        envs.prepare(value, model_dir)
    except TritonError as exc:
        return [status_text(exc.code, exc.message)]   # the server's reason, word for word
    finally:
        envs.close()
    return []


def _onnx(src, cfg, version: int, strict: bool) -> None:
    """Auto-complete (unless strict), normalise, validate and compare with the model, as the
    server's first onnxruntime instance does."""
    from tritond import repository as repo
    from tritond.repository import modelconfig
    from tritond.workers.backend import LoadContext
    from tritond.workers.onnxruntime import OnnxRuntimeBackend

    ctx = LoadContext(cfg.name, version, f"{cfg.name}_check", "CPU", 0, src.model_dir,
                      src.repository)
    backend = OnnxRuntimeBackend(ctx)
    config = modelconfig.to_json_dict(cfg)
    if not strict:
        config = backend.auto_complete(config)
    final = modelconfig.from_dict(config)
    repo.normalize(final, gpus=gpus.count())
    repo.validate(final, src.model_dir)
    backend.load(repo.spec_from_config(final, version))


def _syntax(model_dir: str, model_config_name: str) -> str | None:
    """A config.pbtxt parse error as ``path:line:column: message`` (None if it parses)."""
    from tritond.protos.model_config_pb2 import ModelConfig
    from tritond.repository import config_path

    path = config_path(model_dir, model_config_name)
    try:
        with open(path, encoding="utf-8") as handle:
            text_format.Parse(handle.read(), ModelConfig())
    except (OSError, UnicodeDecodeError):
        return None
    except text_format.ParseError as exc:
        detail = str(exc).split(" : ", 1)[-1].replace("tritond.inference.", "inference.")
        return f"{path}:{exc.GetLine() or 0}:{exc.GetColumn() or 0}: {detail}"
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())
