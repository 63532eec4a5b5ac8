//! The names of the CloudEvents extensions Weft itself reads or writes, shared by the
//! ingress that stamps them and the delivery that sends or strips them.

/// Knative's hop count: the hops an event has left before the broker drops it, so that
/// replies cannot loop forever. It stays inside the broker: deliveries go out without it.
pub const TTL_EXTENSION: &str = "knativebrokerttl";
/// The time the broker's ingress accepted an event (RFC 3339), as Knative stamps it.
pub const ARRIVAL_EXTENSION: &str = "knativearrivaltime";
/// The CloudEvents Distributed Tracing extension, and the W3C Trace Context header of the
/// same name.
pub const TRACEPARENT: &str = "traceparent";
/// The vendor part of the trace context, extension and header alike.
pub const TRACESTATE: &str = "tracestate";
