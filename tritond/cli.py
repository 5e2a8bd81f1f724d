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
        allow_abbrev=False)
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
    return parser


def parse_options(argv: list[str], environ: dict[str, str]) -> "config.Options":
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        options = config.resolve(vars(ns), environ)
    except config.OptionError as exc:
        parser.error(str(exc))
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
