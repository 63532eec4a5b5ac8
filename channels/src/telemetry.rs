//! The crate's metrics, declared in one place. Labels are bounded: the backend name and
//! an error's [`ChannelError::metric_label`], never a broker, trigger or event attribute.

use crate::ChannelError;

/// Events in one durable write (one group commit), per backend.
const APPEND_BATCH_EVENTS: &str = "weft_channel_append_batch_events";
/// Events made durable, per backend.
const APPENDED_EVENTS_TOTAL: &str = "weft_channel_appended_events_total";
/// Append requests that failed, per backend and error.
const APPEND_ERRORS_TOTAL: &str = "weft_channel_append_errors_total";
/// Events parked because they could be neither delivered nor dead-lettered, per backend.
const PARKED_EVENTS_TOTAL: &str = "weft_channel_parked_events_total";

/// Records one durable write of `events` events.
pub(crate) fn appended(backend: &'static str, events: usize) {
    metrics::histogram!(APPEND_BATCH_EVENTS, "backend" => backend).record(events as f64);
    metrics::counter!(APPENDED_EVENTS_TOTAL, "backend" => backend).increment(events as u64);
}

/// Records one failed append request.
pub(crate) fn append_failed(backend: &'static str, error: &ChannelError) {
    metrics::counter!(APPEND_ERRORS_TOTAL, "backend" => backend, "error" => error.metric_label())
        .increment(1);
}

/// Records one parked event.
pub(crate) fn parked(backend: &'static str) {
    metrics::counter!(PARKED_EVENTS_TOTAL, "backend" => backend).increment(1);
}
