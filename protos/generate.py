"""Regenerate (or check) the Python code for tritond's .proto files.

Usage::

    python -m tritond.protos.generate          # write *_pb2.py / *_pb2.pyi here
    python -m tritond.protos.generate --check  # exit 1 if they are stale
    python protos/generate.py [--check]

protoc must see the files as ``tritond/protos/<file>.proto`` so that the
generated imports read ``from tritond.protos import model_config_pb2``; the
repository folder is ``protos/``, so the sources are copied into a temporary
tree with that layout first.
"""
from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

PROTOS_DIR = Path(__file__).resolve().parent
PROTO_FILES = ("model_config.proto", "grpc_service.proto", "health.proto")
PACKAGE_PATH = Path("tritond") / "protos"


def generated_names() -> list[str]:
    """File names protoc produces for PROTO_FILES (.py and .pyi each)."""
    stems = [name.removesuffix(".proto") + "_pb2" for name in PROTO_FILES]
    return [stem + ext for stem in stems for ext in (".py", ".pyi")]


def generate_into(out_dir: Path) -> None:
    """Run protoc on the sources and write the generated files into out_dir."""
    from grpc_tools import protoc  # dev/test dependency only

    with tempfile.TemporaryDirectory(prefix="tritond-protos-") as tmp:
        src_root = Path(tmp) / "src"
        gen_root = Path(tmp) / "gen"
        (src_root / PACKAGE_PATH).mkdir(parents=True)
        gen_root.mkdir()
        for name in PROTO_FILES:
            shutil.copyfile(PROTOS_DIR / name, src_root / PACKAGE_PATH / name)
        args = [
            "grpc_tools.protoc",
            f"-I{src_root}",
            f"--python_out={gen_root}",
            f"--pyi_out={gen_root}",
            *[str(PACKAGE_PATH / name) for name in PROTO_FILES],
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {', '.join(PROTO_FILES)}")
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in generated_names():
            shutil.copyfile(gen_root / PACKAGE_PATH / name, out_dir / name)


def stale_files(target: Path = PROTOS_DIR) -> list[str]:
    """Names of generated files in target that differ from a fresh generation."""
    with tempfile.TemporaryDirectory(prefix="tritond-protos-check-") as tmp:
        fresh = Path(tmp)
        generate_into(fresh)
        return [
            name
            for name in generated_names()
            if not (target / name).is_file()
            or not filecmp.cmp(fresh / name, target / name, shallow=False)
        ]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: regenerate, or with --check report stale files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the checked-in generated files are stale")
    opts = parser.parse_args(argv)
    if opts.check:
        stale = stale_files()
        for name in stale:
            print(f"stale: protos/{name} (run python -m tritond.protos.generate)")
        return 1 if stale else 0
    generate_into(PROTOS_DIR)
    print(f"wrote {', '.join(generated_names())} into {PROTOS_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
