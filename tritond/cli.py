"""The ``tritond`` command: tritonserver's flag names, one-line errors, exit 2."""
from __future__ import annotations

import argparse
import os
import sys
import textwrap

from . import options as config


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line, exit code 2
        sys.stderr.write(f"tritond: error: {message}\n")
        raise SystemExit(2)


# tritonserver flags (server src/command_line_parser.cc, 2.51 and later) tritond does not
# implement, with why: a Triton command line using one stops naming it, never runs without it.
LACKING = {
    "--http-thread-count": "one asyncio loop per frontend process; scale with --frontend-processes",
    "--grpc-infer-thread-count": "grpcio's core serves gRPC in each frontend process",
    "--grpc-infer-allocation-pool-size": "grpcio's core serves gRPC in each frontend process",
    "--grpc-max-response-pool-size": "grpcio's core serves gRPC in each frontend process",
    "--repoagent-directory": "no repository agents",
    "--cache-directory": "only the local response cache (--cache-config local,size=N)",
    "--response-cache-byte-size": "use --cache-config local,size=N",
    "--host-policy": "no host policies",
    "--buffer-manager-thread-count": "no buffer manager threads",
    "--allow-sagemaker": "no SageMaker endpoint",
    "--sagemaker-port": "no SageMaker endpoint",
    "--sagemaker-safe-port-range": "no SageMaker endpoint",
    "--sagemaker-thread-count": "no SageMaker endpoint",
    "--allow-vertex-ai": "no Vertex AI endpoint",
    "--vertex-ai-port": "no Vertex AI endpoint",
    "--vertex-ai-thread-count": "no Vertex AI endpoint",
    "--vertex-ai-default-model": "no Vertex AI endpoint",
    "--cuda-virtual-address-size": "no growable CUDA memory",
    "--enable-peer-access": "no CUDA peer access setting",
    "--min-supported-compute-capability": "fixed at 6.0",
    "--model-load-gpu-limit": "no GPU memory limit on model loads",
}


class _Help(argparse.HelpFormatter):
    def _split_lines(self, text: str, width: int) -> list[str]:
        # Never split a flag or a TRITOND_* name: users search the help for them.
        return textwrap.wrap(" ".join(text.split()), width, break_long_words=False,
                             break_on_hyphens=False)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        formatter_class=_Help,
        prog="tritond",
        description="Triton-compatible inference server (KServe v2 HTTP/gRPC) in Python.",
        epilog="Every option also reads the environment variable TRITOND_<OPTION_NAME>, "
               "e.g. TRITOND_HTTP_PORT=9000.",
        allow_abbrev=True)    # tritonserver's getopt_long takes unique prefixes (--log-warn)
    for opt in config.OPTIONS:
        flags = opt.flags or (opt.flag,)
        help_text = f"{opt.help} [env {opt.env}; default {opt.default!r}]"
        if opt.repeat:
            parser.add_argument(*flags, dest=opt.name, action="append", metavar="VALUE",
                                help=help_text)
        elif opt.flag_only or opt.parse is config.parse_bool:
            parser.add_argument(*flags, dest=opt.name, nargs="?", const="true", metavar="BOOL",
                                help=help_text)
        else:
            parser.add_argument(*flags, dest=opt.name, metavar="VALUE", help=help_text)
    parser.add_argument("--version", action="version", version="tritond 0.1.0 (Triton API 2.51.0)")
    # Known too, so that a prefix is matched against every tritonserver flag: one of these
    # is refused by name, one ambiguous among them is refused as getopt_long refuses it.
    for flag in LACKING:
        parser.add_argument(flag, dest=_LACKING_DEST + flag, nargs="?", const="",
                            help=argparse.SUPPRESS)
    return parser


_LACKING_DEST = "lacking:"


def _deprecations(cli: dict) -> None:
    """tritonserver's warnings for --strict-model-config (on stderr, before logging starts)."""
    if cli.get("strict_model_config") is None:
        return
    print("Warning: '--strict-model-config' has been deprecated! Please use "
          "'--disable-auto-complete-config' instead.", file=sys.stderr)
    if cli.get("disable_auto_complete_config") and \
            not config.parse_bool(cli["strict_model_config"]):
        print("Warning: Overriding deprecated '--strict-model-config' from False to True in "
              "favor of '--disable-auto-complete-config'!", file=sys.stderr)


def parse_options(argv: list[str], environ: dict[str, str]) -> "config.Options":
    parser = build_parser()
    ns, unknown = parser.parse_known_args(argv)
    values = vars(ns)
    for flag in LACKING:
        if values.pop(_LACKING_DEST + flag) is not None:
            parser.error(f"{flag} is a tritonserver flag tritond does not support: "
                         f"{LACKING[flag]} (docs/compatibility.md)")
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    _warn_deprecated(values)
    try:
        options = config.resolve(values, environ)
    except config.OptionError as exc:
        parser.error(str(exc))
    _deprecations(vars(ns))
    if vars(ns).get("model_config_name") == "":      # tritonserver refuses it too
        parser.error("empty argument for --model-config-name")
    if not options.model_repository:
        parser.error("--model-repository is required")
    from tritond.frontend import restrict     # a category in two groups: Triton's error
    try:
        restrict.http_restrictions(options), restrict.grpc_restrictions(options)
    except restrict.RestrictionError as exc:
        parser.error(str(exc))
    if options.load_model and options.model_control_mode != "explicit":
        parser.error("--load-model requires --model-control-mode=explicit")
    if "*" in options.load_model and len(options.load_model) > 1:
        parser.error("--load-model=* must be the only --load-model")   # as tritonserver
    return options


# tritonserver's deprecated trace flags: the --trace-config setting each one's warning names
DEPRECATED = {"trace_file": ("--trace-file", "triton,file=<filepath>"),
              "trace_level": ("--trace-level", "level=<OFF|TIMESTAMPS|TENSORS>"),
              "trace_rate": ("--trace-rate", "rate=<rate value>"),
              "trace_count": ("--trace-count", "count=<count value>"),
              "trace_log_frequency": ("--trace-log-frequency",
                                      "triton,log-frequency=<log frequency value>")}


def _warn_deprecated(values: dict) -> None:
    """tritonserver's warning on stderr, once per deprecated flag given (its words)."""
    for name, (flag, setting) in DEPRECATED.items():
        given = values.get(name)
        for _ in (given if isinstance(given, list) else [given] if given is not None else []):
            sys.stderr.write(f"Warning: '{flag}' has been deprecated and will be removed in "
                             f"future releases. Please use '--trace-config {setting} "
                             f"instead.\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check"]:   # `tritond check REPO [MODEL...]`: tritond/check.py
        from .check import main as check
        return check(argv[1:])
    options = parse_options(argv, dict(os.environ))
    from .parent.supervisor import run  # heavy imports only once the flags are valid
    return run(options)


if __name__ == "__main__":
    sys.exit(main())
