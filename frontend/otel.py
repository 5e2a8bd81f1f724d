"""OpenTelemetry export of traces (``--trace-config mode=opentelemetry``), as Triton builds
its spans: a root ``InferRequest`` span (the transport's timestamps as events), a span
named after the model (REQUEST_START .. REQUEST_END, QUEUE_START) with Triton's
``triton.*`` attributes, and a ``compute`` span inside it (COMPUTE_START .. COMPUTE_END).

Spans go through the SDK's batch span processor to an OTLP/HTTP (protobuf) endpoint;
the export runs on the SDK's own thread, never on the event loop. A W3C
``traceparent`` header (HTTP) or metadata key (gRPC) makes the root span its child,
and such a request is always traced (Triton's rule). Needs the ``trace`` extra.

Child traces (ensemble steps, BLS calls: ``Trace.children``) are model spans of
their own, each a child of its parent's model span (Triton's span stack: the
parent trace's request span), with ``triton.trace_parent_id`` set and their own
``compute`` span.
"""
from __future__ import annotations

import time

_TOP = ("HTTP_", "GRPC_", "INFER_RESPONSE_COMPLETE")    # the root span's events
_MODEL = ("REQUEST_START", "QUEUE_START", "REQUEST_END")
_COMPUTE = ("COMPUTE_START", "COMPUTE_INPUT_END", "COMPUTE_OUTPUT_START", "COMPUTE_END")
# The bsp_* settings -> BatchSpanProcessor arguments (unset: the SDK reads OTEL_BSP_*).
_BSP = {"bsp_max_queue_size": "max_queue_size", "bsp_schedule_delay": "schedule_delay_millis",
        "bsp_max_export_batch_size": "max_export_batch_size"}


class Exporter:
    """One tracer provider per frontend process."""

    def __init__(self, cfg) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator)
        except ImportError as exc:      # checked at start by tritond.traceconfig.check
            raise RuntimeError(f"--trace-config mode=opentelemetry needs the OpenTelemetry "
                               f"SDK: pip install 'tritond[trace]' ({exc})") from None
        self.provider = TracerProvider(resource=Resource.create(dict(cfg.resource)))
        bsp = {_BSP[k]: v for k, v in cfg.bsp.items()}
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=cfg.url),
                                                            **bsp))
        self.tracer = self.provider.get_tracer("triton-server")
        self.propagator = TraceContextTextMapPropagator()
        # monotonic (every process's stamps) -> wall clock (OpenTelemetry's timestamps)
        self.offset = time.time_ns() - time.monotonic_ns()

    def extract(self, headers):
        """The propagated context of a request, or None (no valid ``traceparent``)."""
        from opentelemetry import trace as api

        carrier = {_text(k).lower(): _text(v) for k, v in headers.items()}
        if "traceparent" not in carrier:
            return None
        ctx = self.propagator.extract(carrier)
        return ctx if api.get_current_span(ctx).get_span_context().is_valid else None

    def export(self, trace) -> None:
        from opentelemetry import trace as api

        stamps = sorted(trace.stamps, key=lambda s: s[1])
        if not stamps:
            return
        at = {name: ns + self.offset for name, ns in stamps}
        root = self.tracer.start_span("InferRequest", context=trace.context,
                                      start_time=stamps[0][1] + self.offset)
        for name, ns in stamps:
            if name.startswith(_TOP):
                root.add_event(name, timestamp=ns + self.offset)
        if "REQUEST_START" in at:
            model = self._model_span(api.set_span_in_context(root), trace.model,
                                     trace.version, trace.id, 0, trace.request_id, at)
            if trace.children:
                self._children(trace, model)
        root.end(end_time=stamps[-1][1] + self.offset)

    def _children(self, trace, model) -> None:
        from opentelemetry import trace as api

        from .tracetree import parent_id

        spans = {0: model}
        for child in trace.children:
            at = {name: ns + self.offset for name, ns in child.stamps}
            if "REQUEST_START" not in at:
                continue
            ctx = api.set_span_in_context(spans.get(child.parent, model))
            spans[child.ref] = self._model_span(ctx, child.model, child.version,
                                                trace.ids[child.ref],
                                                parent_id(trace, child), child.request_id, at)

    def _model_span(self, ctx, model: str, version: int, trace_id: int, parent: int,
                    request_id: str, at: dict):
        from opentelemetry import trace as api

        attrs = {"triton.model_name": model, "triton.model_version": version,
                 "triton.trace_id": trace_id, "triton.trace_parent_id": parent}
        if request_id:
            attrs["triton.request_id"] = request_id
        span = self.tracer.start_span(model, context=ctx, attributes=attrs,
                                      start_time=at["REQUEST_START"])
        for name in _MODEL:
            if name in at:
                span.add_event(name, timestamp=at[name])
        if "COMPUTE_START" in at:
            compute = self.tracer.start_span("compute", context=api.set_span_in_context(span),
                                             start_time=at["COMPUTE_START"])
            for name in _COMPUTE:
                if name in at:
                    compute.add_event(name, timestamp=at[name])
            compute.end(end_time=at.get("COMPUTE_END", at["COMPUTE_START"]))
        span.end(end_time=at.get("REQUEST_END", at["REQUEST_START"]))
        return span

    def shutdown(self) -> None:
        self.provider.shutdown()        # flushes the spans still queued


def _text(value) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)
