"""gRPC TLS from Triton's flags: --grpc-use-ssl, --grpc-use-ssl-mutual and the PEM files.

``--grpc-use-ssl-mutual`` implies ``--grpc-use-ssl`` (Triton: it "preempts" it)
and requires clients to present a certificate signed by ``--grpc-root-cert``.
A file that cannot be read stops the start with its flag and path.
"""
from __future__ import annotations

from tritond.options import Options

_FILES = (("grpc_server_cert", "--grpc-server-cert"), ("grpc_server_key", "--grpc-server-key"),
          ("grpc_root_cert", "--grpc-root-cert"))


def enabled(options: Options) -> bool:
    return bool(options.grpc_use_ssl or options.grpc_use_ssl_mutual)


def _read(options: Options, name: str, flag: str, required: bool) -> bytes | None:
    path = getattr(options, name)
    if not path:
        if required:
            raise OSError(f"gRPC SSL needs {flag}")
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise OSError(f"gRPC SSL: cannot read {flag} '{path}': {exc.strerror}") from None


def problems(options: Options) -> list[str]:
    """Why TLS cannot start (checked by the parent before anything is spawned, so a
    wrong path is one line at once, not a frontend's death after the models loaded)."""
    if not (options.allow_grpc and enabled(options)):
        return []
    try:
        _files(options)
    except OSError as exc:
        return [str(exc)]
    return []


def _files(options: Options) -> tuple:
    mutual = bool(options.grpc_use_ssl_mutual)
    return tuple(_read(options, name, flag, required=name != "grpc_root_cert" or mutual)
                 for name, flag in _FILES)


def server_credentials(options: Options):
    """The ``grpc.ServerCredentials`` for ``add_secure_port`` (call only when ``enabled``)."""
    import grpc     # not at import: the parent's preflight reads the files without grpc

    mutual = bool(options.grpc_use_ssl_mutual)
    cert, key, root = _files(options)
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=root,
                                       require_client_auth=mutual)
