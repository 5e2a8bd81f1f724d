"""The ``inference.GRPCInferenceService`` and ``grpc.health.v1.Health`` servicers.

Each RPC converts its message, calls one :class:`FrontendCore` method and
converts the answer back; a :class:`TritonError` ends the call with the
mapped gRPC status and Triton's message. Our protos
live in package ``tritond.inference``, so the method paths are registered by
hand under Triton's service names.
"""
from __future__ import annotations

import functools
import time

import grpc
from google.protobuf.message import DecodeError

from tritond.errors import TritonError, unsupported
from tritond.protos import grpc_service_pb2 as pb
from tritond.protos import health_pb2

from .. import restrict
from ..forward import forward
from . import replies, wire
from .guard import BAD_MESSAGE, guarded, lenient
from .status import STATUS
from .stream import serve_stream, start_trace

SERVICE = "inference.GRPCInferenceService"
HEALTH_SERVICE = "grpc.health.v1.Health"
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _converts_errors(method):
    """Turn a TritonError raised by an RPC body into the call's gRPC status."""
    @functools.wraps(method)
    async def rpc(self, request, context):
        try:
            return await method(self, request, context)
        except TritonError as exc:
            await context.abort(STATUS[exc.code], exc.message)
    return rpc


def _no_repository_name(name: str) -> None:
    if name:
        raise unsupported("'repository_name' specification is not supported")


class InferenceServicer:
    """All RPCs of the service over one FrontendCore (one per frontend process)."""

    def __init__(self, core):
        self.core = core
        # The engine iterates the handler's async generator (calls.Call._stream);
        # a partial of serve_stream skips the generator hop a wrapping method
        # would add per response.
        self.ModelStreamInfer = functools.partial(serve_stream, core)

    # ----------------------------------------------------------- inference
    async def ModelInfer(self, request: bytes, context) -> bytes:
        """Raw bytes in and out (``wire``): tensors skip protobuf's copies."""
        # Inlined error handling: the hot path skips the decorator's extra frame.
        tracer = self.core.tracer
        received = time.monotonic_ns() if tracer.maybe else 0
        trace = None
        try:
            req = wire.decode(request)
        except (ValueError, IndexError, DecodeError):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, BAD_MESSAGE)   # the client's error
        except TritonError as exc:       # a valid message Triton rejects (codec's rules)
            await context.abort(STATUS[exc.code], exc.message)
        try:
            if self.core.options.grpc_header_forward_pattern:
                forward(self.core.options.grpc_header_forward_pattern,
                        context.invocation_metadata() or (), req.parameters)
            if received:
                trace = req.trace = start_trace(tracer, req.model, context, received)
            result = await self.core.infer(req)
        except TritonError as exc:
            if trace is not None and trace.version:     # it reached its model: traced
                trace.stamp("INFER_RESPONSE_COMPLETE")
                tracer.finish(trace)
            await context.abort(STATUS[exc.code], exc.message)
        if trace is not None:
            trace.stamp("INFER_RESPONSE_COMPLETE")
            trace.stamp("GRPC_SEND_START")
        try:
            return wire.encode(result)
        except TritonError as exc:       # a response gRPC cannot carry (over 2 GiB)
            await context.abort(STATUS[exc.code], exc.message)
        finally:
            result.release()
            if trace is not None:
                # the engine writes the returned bytes after this: SEND_END is the hand-over
                trace.stamp("GRPC_SEND_END")
                tracer.finish(trace)

    # -------------------------------------------------- health and metadata
    @_converts_errors
    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=self.core.control.server_live())

    @_converts_errors
    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=await self.core.control.server_ready_asked())

    @_converts_errors
    async def ModelReady(self, request, context):
        ready = await self.core.control.model_ready(request.name, request.version)
        return pb.ModelReadyResponse(ready=ready)

    @_converts_errors
    async def ServerMetadata(self, request, context):
        return replies.server_metadata(self.core.control.server_metadata())

    @_converts_errors
    async def ModelMetadata(self, request, context):
        return replies.model_metadata(
            self.core.control.model_metadata(request.name, request.version))

    @_converts_errors
    async def ModelConfig(self, request, context):
        return replies.model_config(self.core.control.model_config(request.name, request.version))

    @_converts_errors
    async def ModelStatistics(self, request, context):
        stats = await self.core.control.model_statistics(request.name, request.version)
        return replies.model_statistics(stats)

    # ---------------------------------------------------------- repository
    @_converts_errors
    async def RepositoryIndex(self, request, context):
        _no_repository_name(request.repository_name)
        return replies.repository_index(self.core.control.repository_index(request.ready))

    @_converts_errors
    async def RepositoryModelLoad(self, request, context):
        _no_repository_name(request.repository_name)
        await self.core.control.load_model(request.model_name,
                                           replies.load_params(request.parameters))
        return pb.RepositoryModelLoadResponse()

    @_converts_errors
    async def RepositoryModelUnload(self, request, context):
        _no_repository_name(request.repository_name)
        await self.core.control.unload_model(request.model_name,
                                             replies.unload_params(request.parameters))
        return pb.RepositoryModelUnloadResponse()

    # ------------------------------------------------------- shared memory
    @_converts_errors
    async def SystemSharedMemoryStatus(self, request, context):
        return replies.system_shm_status(self.core.shm.system_shm_status(request.name))

    @_converts_errors
    async def SystemSharedMemoryRegister(self, request, context):
        await self.core.shm.register_system_shm(request.name, request.key, request.offset,
                                          request.byte_size)
        return pb.SystemSharedMemoryRegisterResponse()

    @_converts_errors
    async def SystemSharedMemoryUnregister(self, request, context):
        await self.core.shm.unregister_system_shm(request.name)
        return pb.SystemSharedMemoryUnregisterResponse()

    @_converts_errors
    async def CudaSharedMemoryStatus(self, request, context):
        return replies.cuda_shm_status(self.core.shm.cuda_shm_status(request.name))

    @_converts_errors
    async def CudaSharedMemoryRegister(self, request, context):
        await self.core.shm.register_cuda_shm(request.name, request.raw_handle, request.device_id,
                                        request.byte_size)
        return pb.CudaSharedMemoryRegisterResponse()

    @_converts_errors
    async def CudaSharedMemoryUnregister(self, request, context):
        await self.core.shm.unregister_cuda_shm(request.name)
        return pb.CudaSharedMemoryUnregisterResponse()

    # ------------------------------------------------------------ settings
    @_converts_errors
    async def TraceSetting(self, request, context):
        update = replies.trace_update(request.settings)
        return replies.trace_settings(
            await self.core.control.trace_settings(request.model_name, update))

    @_converts_errors
    async def LogSettings(self, request, context):
        update = replies.log_update(request.settings)
        return replies.log_settings(await self.core.control.log_settings(update))

    # -------------------------------------------------------------- health
    @_converts_errors
    async def Check(self, request, context):
        """grpc.health.v1 Check: SERVING exactly when the server is ready (as Triton)."""
        ready = await self.core.control.server_ready_asked()
        return health_pb2.HealthCheckResponse(status=_SERVING if ready else _NOT_SERVING)


# RPC name -> (request, response) message classes.
_UNARY = {name: (getattr(pb, name + "Request"), getattr(pb, name + "Response")) for name in (
    "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
    "ModelConfig", "ModelStatistics", "RepositoryIndex", "RepositoryModelLoad",
    "RepositoryModelUnload", "SystemSharedMemoryStatus", "SystemSharedMemoryRegister",
    "SystemSharedMemoryUnregister", "CudaSharedMemoryStatus", "CudaSharedMemoryRegister",
    "CudaSharedMemoryUnregister", "TraceSetting", "LogSettings")}


def _gated(name: str, rpc, rules: dict):
    """``rpc`` behind ``--grpc-restricted-protocol`` (``rpc`` itself when unrestricted)."""
    rule = rules.get(restrict.GRPC_METHODS[name])
    if rule is None:
        return rpc
    if name == "ModelStreamInfer":       # a stream handler is an async generator
        async def stream(requests, context):
            if not restrict.grpc_allowed(context.invocation_metadata(), rule):
                await context.abort(grpc.StatusCode.UNAVAILABLE, restrict.grpc_denial(rule))
            async for reply in rpc(requests, context):
                yield reply
        return stream

    async def unary(request, context):
        if not restrict.grpc_allowed(context.invocation_metadata(), rule):
            await context.abort(grpc.StatusCode.UNAVAILABLE, restrict.grpc_denial(rule))
        return await rpc(request, context)
    return unary


def generic_handlers(servicer: InferenceServicer, options=None) -> list:
    """The two generic handlers ``engine.CoreServer`` serves;
    ``options`` (--grpc-restricted-protocol) gates methods by category."""
    rules = restrict.grpc_restrictions(options) if options is not None else {}
    methods = {
        name: grpc.unary_unary_rpc_method_handler(
            _gated(name, guarded(getattr(servicer, name)), rules),
            request_deserializer=lenient(req.FromString),
            response_serializer=resp.SerializeToString)
        for name, (req, resp) in _UNARY.items()
    }
    # ModelInfer (de)serialises itself (frontend/grpc/wire.py).
    methods["ModelInfer"] = grpc.unary_unary_rpc_method_handler(
        _gated("ModelInfer", servicer.ModelInfer, rules))
    # So does ModelStreamInfer (frontend/grpc/stream.py): one encoder for both RPCs.
    methods["ModelStreamInfer"] = grpc.stream_stream_rpc_method_handler(
        _gated("ModelStreamInfer", servicer.ModelStreamInfer, rules))
    health = {"Check": grpc.unary_unary_rpc_method_handler(
        _gated("Check", guarded(servicer.Check), rules),
        request_deserializer=lenient(health_pb2.HealthCheckRequest.FromString),
        response_serializer=health_pb2.HealthCheckResponse.SerializeToString)}
    return [grpc.method_handlers_generic_handler(SERVICE, methods),
            grpc.method_handlers_generic_handler(HEALTH_SERVICE, health)]
