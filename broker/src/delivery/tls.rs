//! TLS for `https://` subscribers and dead-letter sinks: rustls (on the `ring` provider)
//! verifying the sink's certificate against the system's root certificates.
//!
//! The roots are read once, when the delivery client is built, from the platform's store
//! (on Linux the CA bundle of `ca-certificates`). As with OpenSSL, the environment variables
//! `SSL_CERT_FILE` (a PEM bundle) and `SSL_CERT_DIR` replace the platform's store.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};

/// The TLS settings of every delivery: the system's roots, TLS 1.2 and 1.3, no client
/// certificate.
pub(super) fn client_config() -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // The ring provider supports every default protocol version.
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(system_roots())
        .with_no_client_auth()
}

/// The system's root certificates. Unreadable or unparsable ones are skipped with a
/// warning; with none at all, `http://` deliveries still work and `https://` ones fail
/// with a certificate error (warned about here, once).
fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "cannot read system root certificates");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if ignored > 0 {
        tracing::warn!(
            ignored,
            "system root certificates that cannot be parsed are ignored"
        );
    }
    if roots.is_empty() {
        tracing::warn!(
            "no system root certificates found: deliveries to https:// sinks will fail \
             (install ca-certificates, or set SSL_CERT_FILE to a PEM bundle)"
        );
    } else {
        tracing::debug!(roots = added, "system root certificates loaded");
    }
    roots
}
