#!/usr/bin/env bash
# Run HERE (a machine with network), before a GPU run: builds .gpuwhl/ (git-ignored) with
# tritond as a wheel and the CPython 3.12 x86-64 wheels a GPU image without network lacks
# (the H200 image has torch, cupy-cuda13x, cuda-bindings, nvidia-ml-py, numpy, pytest,
# hypothesis, onnx, onnxruntime CPU, grpcio, prometheus-client, msgpack, ml-dtypes).
# Then on the GPU machine:  bash tests/gpu/run.sh   (device tool: carry [".gpuwhl"])
# EXTRA="tensorrt-cu13 onnxruntime-gpu" adds wheels when the size limit allows (it rarely does).
set -eu
cd "$(dirname "$0")/../.."
W=.gpuwhl
grep -qx "/$W/" .git/info/exclude 2>/dev/null || echo "/$W/" >> "$(git rev-parse --git-path info/exclude)"
rm -rf "$W"; mkdir -p "$W"
python3 -m pip wheel -q --no-deps -w "$W" .
plat=""
for n in 1 2014 _2_17 _2_24 _2_27 _2_28 _2_31 _2_34; do plat="$plat --platform manylinux${n}_x86_64"; done
# versions tritonclient 2.73 asks for (installed with --no-deps there, so pinned here)
for pk in msgspec posix-ipc starlette uvicorn httptools "protobuf>=6.31,<7" "grpcio>=1.81.1,<1.86" \
          setproctitle "tritonclient>=2.73" python-rapidjson geventhttpclient gevent \
          "greenlet<3.4.0" "ml-dtypes<=0.5.4" zope.event zope.interface brotli pytest-timeout \
          ${EXTRA:-}; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp $plat -d "$W" "$pk" 2>&1 | grep -v "is ignored" || true
  ls "$W" | grep -qi "^$(echo "${pk%%[<>=]*}" | tr - _ | tr . _)" \
    || ls "$W" | grep -qi "^${pk%%[<>=]*}" || echo "bundle.sh: no wheel for $pk"
done
du -sh "$W"; ls "$W"
