# tritond: a Triton-compatible inference server (KServe v2 HTTP/gRPC) in Python.
#   docker build -t tritond .
#   docker run --rm --shm-size=1g --stop-timeout=40 -p 8000-8002:8000-8002 \
#       -v "$PWD/model_repository:/models:ro" tritond
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/tritond
COPY pyproject.toml setup.cfg README.md LICENSE ./
COPY tritond ./tritond
COPY frontend ./frontend
COPY scheduler ./scheduler
COPY workers ./workers
COPY shm ./shm
COPY protos ./protos
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin tritond

# Models are mounted here (read-only is enough).
VOLUME ["/models"]
# HTTP/REST, gRPC, Prometheus metrics.
EXPOSE 8000 8001 8002
USER 10001

# Ready = every model asked to load is loaded and the frontend serves them.
# The slim image has no curl: Python's urllib does the probe.
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(0 if u.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2).status == 200 else 1)"]

# SIGTERM (docker stop) drains in-flight requests for --exit-timeout-secs (30 s), then
# exits 0: docker stop kills after 10 s unless the container runs with --stop-timeout=40.
STOPSIGNAL SIGTERM
ENTRYPOINT ["tritond"]
CMD ["--model-repository=/models"]
