"""A loopback OTLP/HTTP trace collector: the spans Sapien's processes export, decoded from their protobuf."""

import gzip
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support.receiver import Receiver


@dataclass(frozen=True)
class ExportedSpan:
    name: str
    service: str
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root
    links: tuple[tuple[str, str], ...]  # (trace id, span id)
    attributes: dict[str, object]
    kind: int

    def links_to(self, other: "ExportedSpan") -> bool:
        return (other.trace_id, other.span_id) in self.links


class Collector:
    """Receives what an OTLP/HTTP exporter sends to ``endpoint`` (answering 200), and decodes it."""

    def __init__(self) -> None:
        self.receiver = Receiver()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.receiver.server.server_address[1]}/v1/traces"

    def spans(self) -> list[ExportedSpan]:
        spans = []
        for request in list(self.receiver.requests):
            body = request.body
            if request.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            export = ExportTraceServiceRequest.FromString(body)
            for resource_spans in export.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        spans.append(
                            ExportedSpan(
                                name=span.name,
                                service=str(resource.get("service.name", "")),
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex(),
                                links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
                                attributes={a.key: _value(a.value) for a in span.attributes},
                                kind=span.kind,
                            )
                        )
        return spans

    def close(self) -> None:
        self.receiver.close()


def _value(value: object) -> object:
    kind = value.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(value, kind) if kind else None
