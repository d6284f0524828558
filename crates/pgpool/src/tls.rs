//! TLS (`ssl = on`), with rustls and its ring provider. Frontend: the server
//! configuration built once by the main process from `ssl_cert` and `ssl_key` (PEM;
//! relative paths are taken from the directory of pgpool.conf); clients that send
//! SSLRequest over TCP get 'S' and a TLS session, or 'N' without a usable configuration,
//! as from a PostgreSQL server with ssl off; an encrypted key is opened with the output of
//! `ssl_passphrase_command`; with `ssl_ca_cert` (and `ssl_crl_file`) client certificates
//! are verified. Backends: TCP connections ask for SSL and use it when the backend agrees.

use std::sync::Arc;

use config::Config;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// The TLS configuration, None with `ssl = off`; an error names the file at fault.
/// With `ssl_ca_cert`, clients may present a certificate, which must be signed by one of
/// those authorities (and not be revoked in `ssl_crl_file`); pool_hba.conf's `cert`
/// method then requires one whose common name is the user's.
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
    let key = load_private_key(&key_path, &cfg.ssl_passphrase_command)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?;
    let builder = match cfg.relative_to_config(&cfg.ssl_ca_cert) {
        None => builder.with_no_client_auth(),
        Some(ca_path) => {
            let verifier = client_verifier(cfg, &ca_path, provider.clone())?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    // Not with_single_cert: it parses the certificate with WebPKI, which refuses the
    // X.509 version 1 certificates OpenSSL accepts.
    let signing_key = provider.key_provider.load_private_key(key).map_err(|e| {
        format!(
            "could not load private key file \"{}\": {e}",
            key_path.display()
        )
    })?;
    let certified = rustls::sign::CertifiedKey::new(certs, signing_key);
    let config =
        builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    Ok(Some(Arc::new(config)))
}

/// Client certificates signed by `ssl_ca_cert` (checked against `ssl_crl_file`), asked
/// for but not required: pool_hba.conf decides who must present one.
fn client_verifier(
    cfg: &Config,
    ca_path: &std::path::Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca_path)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("could not load ssl_ca_cert \"{}\": {e}", ca_path.display()))?;
    for ca in &cas {
        roots
            .add(ca.clone())
            .map_err(|e| format!("ssl_ca_cert \"{}\": {e}", ca_path.display()))?;
    }
    let mut crls: Vec<rustls::pki_types::CertificateRevocationListDer<'static>> = Vec::new();
    if let Some(crl_path) = cfg.relative_to_config(&cfg.ssl_crl_file) {
        crls = rustls::pki_types::CertificateRevocationListDer::pem_file_iter(&crl_path)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| {
                format!(
                    "could not load ssl_crl_file \"{}\": {e}",
                    crl_path.display()
                )
            })?;
    }
    let webpki = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .with_crls(crls.clone())
    .build()
    .map_err(|e| format!("ssl_ca_cert \"{}\": {e}", ca_path.display()))?;
    Ok(Arc::new(crate::tls_v1::ClientVerifier::new(
        webpki, &cas, &crls, provider,
    )))
}

/// The private key of `ssl_key`: PEM, encrypted PKCS#8 decrypted with the passphrase
/// `ssl_passphrase_command` prints (its first line), as PostgreSQL and Pgpool-II do.
fn load_private_key(
    path: &std::path::Path,
    passphrase_command: &str,
) -> Result<PrivateKeyDer<'static>, String> {
    use pkcs8::der::pem::PemLabel;
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "could not load private key file \"{}\": {e}",
            path.display()
        )
    })?;
    let encrypted_label = pkcs8::EncryptedPrivateKeyInfo::PEM_LABEL;
    if !text.contains(&format!("-----BEGIN {encrypted_label}-----")) {
        return PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|e| {
            format!(
                "could not load private key file \"{}\": {e}",
                path.display()
            )
        });
    }
    // Pgpool-II's words: its regression tests grep them.
    if passphrase_command.trim().is_empty() {
        return Err(format!(
            "private key file \"{}\" cannot be reloaded because it requires a passphrase",
            path.display()
        ));
    }
    let passphrase = run_passphrase_command(passphrase_command, path)?;
    let (_, doc) = pkcs8::SecretDocument::from_pem(&text).map_err(|e| {
        format!(
            "could not load private key file \"{}\": {e}",
            path.display()
        )
    })?;
    let info: pkcs8::EncryptedPrivateKeyInfo<'_> = doc.decode_msg().map_err(|e| {
        format!(
            "could not load private key file \"{}\": {e}",
            path.display()
        )
    })?;
    let plain = info.decrypt(passphrase.as_bytes()).map_err(|_| {
        format!(
            "could not load private key file \"{}\": bad decrypt",
            path.display()
        )
    })?;
    Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()))
}

fn run_passphrase_command(command: &str, key: &std::path::Path) -> Result<String, String> {
    let prompt = format!("Enter PEM pass phrase for {}:", key.display());
    let command = command.replace("%p", &prompt).replace("%%", "%");
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&command)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("could not run ssl_passphrase_command: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ssl_passphrase_command failed ({}) for private key file \"{}\"",
            out.status,
            key.display()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or("").to_string())
}

/// The common name in the subject of the client's certificate (TLS sessions whose
/// client presented one).
pub fn peer_common_name(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_cert::der::Decode;
    let parsed = x509_cert::Certificate::from_der(cert.as_ref()).ok()?;
    for rdn in parsed.tbs_certificate.subject.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid == const_oid_cn() {
                return atv_text(&atv.value);
            }
        }
    }
    None
}

fn const_oid_cn() -> x509_cert::der::asn1::ObjectIdentifier {
    x509_cert::der::asn1::ObjectIdentifier::new_unwrap("2.5.4.3")
}

fn atv_text(value: &x509_cert::der::Any) -> Option<String> {
    use x509_cert::der::{Tag, Tagged};
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString => {
            std::str::from_utf8(value.value()).ok().map(str::to_string)
        }
        _ => None,
    }
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
