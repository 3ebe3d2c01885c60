//! TLS for `https://` targets, with rustls: the client config every connection of a run
//! shares, and a first handshake before the run.
//!
//! - Trust: the platform's roots by default (the system store), a `--cacert` PEM file instead,
//!   or none with `--insecure` (the server's handshake signature is still checked, its
//!   certificate is not).
//! - Resumption: the config keeps the sessions the server gives (rustls' in-memory cache), and
//!   every connection of the run shares the config, so a connection opened again resumes the
//!   session instead of a full handshake. The first handshake, before the run, fills the cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Which servers a run trusts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Trust {
    /// The platform's trusted roots.
    #[default]
    Platform,
    /// The certificates of a PEM file (`--cacert`), and only them.
    CaFile(PathBuf),
    /// Any certificate (`--insecure`).
    Insecure,
}

/// What each connection of a run needs to open a TLS session.
#[derive(Clone)]
pub struct TlsClient {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
}

impl TlsClient {
    /// A client for `host` trusting as `trust` says.
    pub fn new(host: &str, trust: &Trust) -> Result<TlsClient, String> {
        // ring, not aws-lc-rs (see Cargo.toml); rustls deprecates it for its lack of
        // post-quantum key exchange, which a load test does not need.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let config = match trust {
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth(),
            Trust::Platform => builder.with_root_certificates(platform_roots()?).with_no_client_auth(),
            Trust::CaFile(path) => builder.with_root_certificates(roots_of(path)?).with_no_client_auth(),
        };
        let server_name =
            ServerName::try_from(host.to_string()).map_err(|_| format!("`{host}` is not a TLS server name"))?;
        Ok(TlsClient { config: Arc::new(config), server_name })
    }

    pub fn connection(&self) -> Result<ClientConnection, rustls::Error> {
        ClientConnection::new(self.config.clone(), self.server_name.clone())
    }

    /// A whole handshake on a blocking socket, within `timeout`: before the run, so that an
    /// untrusted certificate is one clear error, not a run of failed connections.
    pub fn handshake(&self, tcp: &mut std::net::TcpStream, timeout: Duration) -> Result<(), String> {
        tcp.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
        tcp.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
        let mut tls = self.connection().map_err(|e| e.to_string())?;
        while tls.is_handshaking() {
            tls.complete_io(tcp).map_err(|e| format!("TLS handshake failed: {e}"))?;
        }
        // A TLS 1.3 server sends its session tickets after the handshake: read them, so the
        // run's first connections resume.
        tcp.set_read_timeout(Some(Duration::from_millis(100))).map_err(|e| e.to_string())?;
        let _ = tls.complete_io(tcp);
        tls.send_close_notify();
        let _ = tls.complete_io(tcp);
        Ok(())
    }
}

/// The platform's trusted roots: an error if there are none.
fn platform_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found.errors.first().map_or(String::new(), |e| format!(" ({e})"));
        return Err(format!("no trusted root certificates found on this machine{why}: give --cacert FILE"));
    }
    Ok(roots)
}

/// The certificates of a PEM file as the only roots.
fn roots_of(path: &Path) -> Result<RootCertStore, String> {
    let bad = |why: String| format!("--cacert {}: {why}", path.display());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(bad("no certificate in it".into()));
    }
    Ok(roots)
}

/// `--insecure`: every certificate is taken, but the handshake's signatures are still checked
/// against the certificate the server sent, so the session is with whoever holds its key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
