//! The delivery knobs of `weft up` and `weft dispatcher`: the delivery of a trigger when
//! neither it nor its broker has `spec.delivery`, and the bound on `--max-in-flight`.

use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::{Args, ValueEnum};
use weft_config::manifest::parse_delivery_duration;
use weft_config::model::{MAX_IN_FLIGHT, MAX_RETRY};
use weft_config::{BackoffPolicy, DeliveryConfig};

/// The default DeliverySpec. Its defaults are a stock Knative install's
/// (`config-br-defaults`): 10 retries, exponential, PT0.2S.
#[derive(Args)]
pub struct DefaultDelivery {
    /// Retries of a trigger whose trigger and broker set no spec.delivery.
    #[arg(long, default_value_t = 10, env = "WEFT_DEFAULT_RETRY",
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_RETRY)))]
    default_retry: u32,
    /// Backoff policy of that default delivery.
    #[arg(
        long,
        value_enum,
        default_value = "exponential",
        env = "WEFT_DEFAULT_BACKOFF_POLICY"
    )]
    default_backoff_policy: Policy,
    /// Backoff delay of that default delivery (ISO-8601, at most P1D).
    #[arg(long, default_value = "PT0.2S", env = "WEFT_DEFAULT_BACKOFF_DELAY",
          value_parser = parse_delivery_duration)]
    default_backoff_delay: Duration,
}

#[derive(Clone, Copy, ValueEnum)]
enum Policy {
    Exponential,
    Linear,
}

impl DefaultDelivery {
    /// The delivery these flags describe.
    pub fn config(&self) -> DeliveryConfig {
        DeliveryConfig {
            retry: self.default_retry,
            backoff_policy: match self.default_backoff_policy {
                Policy::Exponential => BackoffPolicy::Exponential,
                Policy::Linear => BackoffPolicy::Linear,
            },
            backoff_delay: self.default_backoff_delay,
            ..DeliveryConfig::default()
        }
    }
}

/// Parses `--max-in-flight`: 1 to [`MAX_IN_FLIGHT`], as the annotation allows.
pub fn max_in_flight() -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(1..=MAX_IN_FLIGHT as u64)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        delivery: DefaultDelivery,
        #[arg(long, default_value_t = 256, value_parser = max_in_flight())]
        max_in_flight: usize,
    }

    #[test]
    fn the_default_is_knatives_broker_default() {
        let cli = Cli::try_parse_from(["weft"]).unwrap();
        assert_eq!(cli.delivery.config(), DeliveryConfig::broker_default());
        assert_eq!(cli.delivery.config().retry, 10);
    }

    #[test]
    fn flags_set_the_default_delivery() {
        let cli = Cli::try_parse_from([
            "weft",
            "--default-retry",
            "0",
            "--default-backoff-policy",
            "linear",
            "--default-backoff-delay",
            "PT1.5S",
        ])
        .unwrap();
        let config = cli.delivery.config();
        assert_eq!(config.retry, 0);
        assert_eq!(config.backoff_policy, BackoffPolicy::Linear);
        assert_eq!(config.backoff_delay, Duration::from_millis(1500));
        assert_eq!(config.dead_letter_sink, None);
    }

    #[test]
    fn nonsense_values_are_refused_naming_the_flag_and_range() {
        for (args, phrase) in [
            (&["--default-retry", "1000000000"][..], "0..=10000"),
            (&["--default-backoff-delay", "P2D"], "longer than a day"),
            (&["--default-backoff-delay", "0.2s"], "not an ISO-8601"),
            (&["--max-in-flight", "100000000000"], "1..=100000"),
            (&["--max-in-flight", "0"], "1..=100000"),
        ] {
            let error = Cli::try_parse_from(["weft"].iter().chain(args))
                .err()
                .unwrap_or_else(|| panic!("{args:?} is accepted"))
                .to_string();
            assert!(error.contains(args[0]), "{args:?}: {error}");
            assert!(error.contains(phrase), "{args:?}: {error}");
        }
    }
}
