//! Delivery over TLS: `https://` subscribers and dead-letter sinks are reached over TLS,
//! their certificate checked against the system's roots, which `SSL_CERT_FILE` replaces
//! here with a test CA made at run time.

use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use weft_e2e::{Delivery, Producer, Reply, Sink, Weft, broker, event, ms, secs, trigger};

/// A certificate authority and a certificate it signed for 127.0.0.1.
struct TestPki {
    /// The CA certificate, PEM: what `SSL_CERT_FILE` names.
    ca_pem: String,
    /// The server's certificate chain and key.
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn test_pki() -> TestPki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "weft e2e test CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "weft e2e sink");
    let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    TestPki {
        ca_pem: ca.pem(),
        chain: vec![leaf.der().clone()],
        key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    }
}

/// Terminates TLS on a free port and forwards each connection to `backend` in plain
/// HTTP: an HTTPS front for a [`Sink`]. Returns the port's address.
async fn tls_front(pki: &TestPki, backend: SocketAddr) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), pki.key.clone_key())
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to do.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_subscribers_and_dead_letter_sinks_get_their_events() {
    let pki = test_pki();
    let sink = Sink::builder()
        .always("/refuses", Reply::status(400).body("no"))
        .start()
        .await;
    let https = tls_front(&pki, sink.addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();

    let weft = Weft::builder()
        .env("SSL_CERT_FILE", ca_file.display().to_string())
        .manifest("broker.yaml", broker("default"))
        .manifest(
            "secure.yaml",
            trigger("secure").subscriber(format!("https://{https}/secure")),
        )
        .manifest(
            "refuses.yaml",
            trigger("refuses")
                .subscriber(sink.url("/refuses"))
                .delivery(Delivery::new().dead_letter_sink(format!("https://{https}/dls"))),
        )
        .start()
        .await;
    let sent = event("com.example.secure").json(r#"{"n":1}"#).build();
    Producer::new()
        .send_accepted(&weft.url("default", "default"), &sent)
        .await;

    let got = sink.wait_for_path("/secure", 1, secs(10)).await;
    assert_eq!(got[0].id(), sent.id());
    assert_eq!(got[0].event().data(), sent.data());
    let dead = sink.wait_for_path("/dls", 1, secs(10)).await;
    assert_eq!(dead[0].id(), sent.id());
    assert_eq!(dead[0].ext("knativeerrorcode").as_deref(), Some("400"));
    let status = weft
        .wait_for_trigger("secure", secs(5), |t| t.delivered == 1)
        .await;
    assert_eq!(status.dead_lettered, 0);
}

#[tokio::test]
async fn a_certificate_the_roots_do_not_vouch_for_is_refused() {
    let trusted = test_pki();
    let served = test_pki();
    let sink = Sink::start().await;
    let https = tls_front(&served, sink.addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &trusted.ca_pem).unwrap();

    let weft = Weft::builder()
        .env("SSL_CERT_FILE", ca_file.display().to_string())
        .manifest("broker.yaml", broker("default"))
        .manifest(
            "t.yaml",
            trigger("t1")
                .subscriber(format!("https://{https}/secure"))
                .delivery(Delivery::new().dead_letter_sink(sink.url("/dls"))),
        )
        .start()
        .await;
    let sent = event("com.example.untrusted").build();
    Producer::new()
        .send_accepted(&weft.url("default", "default"), &sent)
        .await;

    let dead = sink.wait_for_path("/dls", 1, secs(10)).await;
    assert_eq!(dead[0].id(), sent.id());
    assert_eq!(
        dead[0].ext("knativeerrordest"),
        Some(format!("https://{https}/secure"))
    );
    sink.wait_quiet(ms(300), secs(5)).await;
    assert!(sink.requests_to("/secure").is_empty(), "never delivered");
}
