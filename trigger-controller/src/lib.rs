//! Weft's control plane: turns desired state (Knative manifests) into a running data
//! plane, and reports status.
//!
//! It decides *what* should run: which brokers exist, which triggers are ready, and why
//! not; `weft-broker` does the running. Start with [`reconcile::Reconciler`], then
//! [`standalone`] for how `weft up` wires everything together.
//!
//! # Layout
//! - [`state`]: where desired state comes from, behind one trait: a watched folder here;
//!   the Kubernetes API's source is in [`cluster`].
//! - [`reconcile`]: applies desired state to the data plane, object by object.
//! - [`status`]: readiness and reasons per object, served at `/_weft/v1/…` on the admin
//!   address (`--admin-addr`), apart from the ingress.
//! - [`serve`]: one data-plane process: channel, listener, reconciler for its roles.
//! - [`cluster`]: on Kubernetes: the controller, and desired state from the API server.
//! - [`standalone`]: `weft up`: one process running every role from a folder.
//! - [`client`]: `weft send` and `weft get`, talking to a running instance.

pub mod client;
pub mod cluster;
mod error;
pub mod reconcile;
pub mod serve;
pub mod standalone;
pub mod state;
pub mod status;

pub use error::ControllerError;
