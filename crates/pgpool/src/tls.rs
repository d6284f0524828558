//! TLS (`ssl = on`), with rustls and its ring provider. Frontend: the server
//! configuration built once by the main process from `ssl_cert` and `ssl_key` (PEM;
//! relative paths are taken from the directory of pgpool.conf); clients that send
//! SSLRequest over TCP get 'S' and a TLS session, or 'N' without a usable configuration,
//! as from a PostgreSQL server with ssl off. Backends: TCP connections ask for SSL and
//! use it when the backend agrees.

use std::sync::Arc;

use config::Config;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// The TLS configuration, None with `ssl = off`; an error names the file at fault.
pub fn server_config(cfg: &Config) -> Result<Option<Arc<ServerConfig>>, String> {
    if !cfg.ssl {
        return Ok(None);
    }
    let path = |name: &str, value: &str| {
        cfg.relative_to_config(value)
            .ok_or_else(|| format!("ssl is on but {name} is not set"))
    };
    let cert_path = path("ssl_cert", &cfg.ssl_cert)?;
    let key_path = path("ssl_key", &cfg.ssl_key)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("could not load ssl_cert \"{}\": {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "ssl_cert \"{}\" holds no certificate",
            cert_path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("could not load ssl_key \"{}\": {e}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "ssl_cert \"{}\" and ssl_key \"{}\" do not make a usable pair: {e}",
                cert_path.display(),
                key_path.display()
            )
        })?;
    Ok(Some(Arc::new(config)))
}

/// TLS towards the backends, set once by the main process when `ssl = on` (children and
/// workers inherit it).
static BACKEND: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();

/// With `ssl = on`, connections to backends over TCP ask for SSL first and use it when
/// the backend agrees (as libpq's sslmode=prefer: the certificate is not verified, which
/// is what Pgpool-II does without a CA configured).
pub fn init_backend(cfg: &Config) {
    if !cfg.ssl {
        return;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyServerCert(provider.clone()));
    match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => {
            let config = b
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            let _ = BACKEND.set(Arc::new(config));
        }
        Err(e) => log::error!("TLS to the backends is off: {e}"),
    }
}

/// The client configuration for backends, when `ssl = on`.
pub fn backend_config() -> Option<Arc<rustls::ClientConfig>> {
    BACKEND.get().cloned()
}

/// Accepts any backend certificate (signatures are still checked, so the session keys
/// are the backend's).
#[derive(Debug)]
struct AnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
