//! Knative manifests: the serde types of `eventing.knative.dev/v1` Broker and Trigger, loading
//! them from YAML files, and validating them into the values of [`crate::model`].
//!
//! Start with [`load_path`], which reads a file or folder and returns [`Manifests`]: every
//! Broker and Trigger found, each either valid or with its [`Problem`]s.
//!
//! # Layout
//! - [`types`]: the manifest types, field for field as Knative spells them.
//! - [`validate`]: pure checks that turn them into [`crate::model`] values, resolving `ref`s
//!   standalone with [`LocalRefs`].
//! - [`load`]: reading files and folders of multi-document YAML.
//! - [`problem`]: what is wrong, and where.

mod documents;
pub mod load;
pub mod problem;
pub mod types;
pub mod validate;

pub use load::{
    Fingerprint, Loaded, Manifests, fingerprint, load_path, load_path_with, load_str, load_str_with,
};
pub use problem::{FieldError, Location, Problem};
pub use types::{
    Broker, BrokerSpec, DeliverySpec, Destination, KReference, ObjectMeta, SubscriptionsAPIFilter,
    Trigger, TriggerFilter, TriggerSpec,
};
pub use validate::{LocalRefs, join_uri, parse_delivery_duration, parse_duration};
