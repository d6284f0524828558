//! Frontend TLS (`ssl = on`): the server configuration built once by the main process
//! from `ssl_cert` and `ssl_key` (PEM; relative paths are taken from the directory of
//! pgpool.conf), with rustls and its ring provider. Clients that send SSLRequest over
//! TCP get 'S' and a TLS session; without a usable configuration they get 'N', as from a
//! PostgreSQL server with ssl off.

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
