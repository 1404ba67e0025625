//! TLS for the secured-cluster test: a certificate authority of the test's own, and TLS fronts
//! that terminate TLS and pass the bytes on to a plaintext broker or registry.
//!
//! tansu 0.6.0 speaks SASL but not TLS, and the development registry serves plain HTTP, so the
//! test puts a TLS front before each, the way a load balancer or sidecar terminates TLS. The
//! clients under test (librdkafka with OpenSSL in the workers and `retailctl`, rustls in the
//! registry client) then verify a real certificate chain against the CA file they are given.

use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A test certificate authority and one server certificate it issued for `127.0.0.1` and
/// `localhost`.
#[derive(Debug)]
pub struct TestPki {
    /// The CA's certificate, PEM: what clients are told to trust.
    pub ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
}

impl TestPki {
    /// A fresh CA named `name` and a server certificate it signed.
    pub fn new(name: &str) -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().expect("server key");
        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server params");
        server_params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .expect("server certificate");
        Self {
            ca_pem: ca_cert.pem(),
            server_chain: vec![server_cert.der().clone()],
            server_key: server_key.serialize_der(),
        }
    }

    fn acceptor(&self) -> TlsAcceptor {
        let config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                self.server_chain.clone(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone())),
            )
            .expect("server certificate and key");
        TlsAcceptor::from(Arc::new(config))
    }
}

/// Terminates TLS on a loopback port and copies the bytes both ways to a plaintext upstream.
/// Stops accepting when dropped.
#[derive(Debug)]
pub struct TlsFront {
    /// Where it accepts TLS.
    pub address: SocketAddr,
    task: JoinHandle<()>,
}

impl TlsFront {
    /// Listens on `port` (0: any free port) with `pki`'s server certificate and forwards every
    /// connection to `upstream`. A handshake a client aborts (it did not trust the certificate)
    /// only closes that connection.
    pub async fn start(port: u16, upstream: SocketAddr, pki: &TestPki) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("TLS front's port");
        let address = listener.local_addr().expect("bound address");
        let acceptor = pki.acceptor();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    // Out of file descriptors, say: let some connections close first.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut client) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Self { address, task }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}
