//! The flags that bound what one client can hold on the ingress port, shared by `weft up`
//! and `weft ingress`.

use std::time::Duration;

use clap::Args;
use weft_broker::ingress::listen::ClientLimits;

/// `--max-connections`, the timeouts and `--max-headers`.
#[derive(Args, Clone, Debug)]
pub struct LimitArgs {
    /// Connections served at once; more wait in the accept backlog until one closes
    /// (default: 10,000, or half the file-descriptor limit if lower).
    #[arg(long, env = "WEFT_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,
    /// Time a client has to send a request's header (408 and close after it).
    #[arg(long, default_value = "10s", value_parser = crate::duration::parse, env = "WEFT_HEADER_READ_TIMEOUT")]
    header_read_timeout: Duration,
    /// Time a client has to send a request's body (408 after it; nothing is stored).
    #[arg(long, default_value = "30s", value_parser = crate::duration::parse, env = "WEFT_BODY_READ_TIMEOUT")]
    body_read_timeout: Duration,
    /// Time a kept-alive connection may wait for its next request before it is closed.
    #[arg(long, default_value = "60s", value_parser = crate::duration::parse, env = "WEFT_IDLE_TIMEOUT")]
    idle_timeout: Duration,
    /// Header fields a request may carry (431 above; each extension of a binary-mode event
    /// is one).
    #[arg(long, default_value_t = 1000, env = "WEFT_MAX_HEADERS")]
    max_headers: usize,
}

impl From<LimitArgs> for ClientLimits {
    fn from(args: LimitArgs) -> Self {
        ClientLimits {
            max_connections: args
                .max_connections
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            header_read_timeout: args.header_read_timeout,
            body_read_timeout: args.body_read_timeout,
            idle_timeout: args.idle_timeout,
            max_headers: args.max_headers,
        }
    }
}
