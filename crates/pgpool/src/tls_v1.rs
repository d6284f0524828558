//! Client certificates for `ssl_ca_cert`, X.509 version 1 included. rustls's WebPKI
//! verifier checks version 3 certificates (chains, extensions, CRLs) and refuses version 1,
//! which `openssl x509 -req` and `openssl ca` without extensions still produce and which
//! OpenSSL, hence PostgreSQL and Pgpool-II, accept. A version 3 certificate goes to WebPKI;
//! a version 1 certificate (it has no extensions to honour) must be signed directly by one
//! of the configured authorities, be within its validity period and not be listed in a CRL
//! of `ssl_crl_file` signed by that authority; its handshake signatures are checked with
//! its own public key.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use x509_cert::der::{Decode, Encode};
use x509_cert::Certificate;

#[derive(Debug)]
pub struct ClientVerifier {
    pub webpki: Arc<dyn ClientCertVerifier>,
    pub roots: Vec<Certificate>,
    pub crls: Vec<x509_cert::crl::CertificateList>,
    pub provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ClientVerifier {
    pub fn new(
        webpki: Arc<dyn ClientCertVerifier>,
        roots: &[CertificateDer<'_>],
        crls: &[CertificateRevocationListDer<'_>],
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> ClientVerifier {
        ClientVerifier {
            webpki,
            roots: roots
                .iter()
                .filter_map(|r| Certificate::from_der(r.as_ref()).ok())
                .collect(),
            crls: crls
                .iter()
                .filter_map(|c| x509_cert::crl::CertificateList::from_der(c.as_ref()).ok())
                .collect(),
            provider,
        }
    }

    fn verify_v1(&self, cert: &Certificate, now: UnixTime) -> Result<(), Error> {
        let tbs = &cert.tbs_certificate;
        let issuer = self
            .roots
            .iter()
            .find(|r| r.tbs_certificate.subject == tbs.issuer)
            .ok_or(Error::InvalidCertificate(CertificateError::UnknownIssuer))?;
        let signed = tbs.to_der().map_err(|_| bad_encoding())?;
        verify_signed(
            issuer,
            &cert.signature_algorithm.oid,
            &signed,
            cert.signature.raw_bytes(),
        )
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadSignature))?;
        let secs = now.as_secs();
        let not_before = tbs.validity.not_before.to_unix_duration().as_secs();
        let not_after = tbs.validity.not_after.to_unix_duration().as_secs();
        if secs < not_before {
            return Err(Error::InvalidCertificate(CertificateError::NotValidYet));
        }
        if secs > not_after {
            return Err(Error::InvalidCertificate(CertificateError::Expired));
        }
        for crl in &self.crls {
            let list = &crl.tbs_cert_list;
            if list.issuer != tbs.issuer {
                continue;
            }
            let signed = list.to_der().map_err(|_| bad_encoding())?;
            if verify_signed(
                issuer,
                &crl.signature_algorithm.oid,
                &signed,
                crl.signature.raw_bytes(),
            )
            .is_err()
            {
                continue;
            }
            let revoked = list
                .revoked_certificates
                .iter()
                .flatten()
                .any(|r| r.serial_number == tbs.serial_number);
            if revoked {
                return Err(Error::InvalidCertificate(CertificateError::Revoked));
            }
        }
        Ok(())
    }
}

fn bad_encoding() -> Error {
    Error::InvalidCertificate(CertificateError::BadEncoding)
}

fn version_1(cert: &CertificateDer<'_>) -> Option<Certificate> {
    let c = Certificate::from_der(cert.as_ref()).ok()?;
    (c.tbs_certificate.version == x509_cert::Version::V1).then_some(c)
}

/// Checks `signature` over `message` with the public key of `signer`, for the X.509
/// signature algorithm `alg`.
fn verify_signed(
    signer: &Certificate,
    alg: &x509_cert::der::asn1::ObjectIdentifier,
    message: &[u8],
    signature: &[u8],
) -> Result<(), ()> {
    use ring::signature as sig;
    let algorithm: &dyn sig::VerificationAlgorithm = match alg.to_string().as_str() {
        "1.2.840.113549.1.1.11" => &sig::RSA_PKCS1_2048_8192_SHA256,
        "1.2.840.113549.1.1.12" => &sig::RSA_PKCS1_2048_8192_SHA384,
        "1.2.840.113549.1.1.13" => &sig::RSA_PKCS1_2048_8192_SHA512,
        "1.2.840.10045.4.3.2" => &sig::ECDSA_P256_SHA256_ASN1,
        "1.2.840.10045.4.3.3" => &sig::ECDSA_P384_SHA384_ASN1,
        "1.3.101.112" => &sig::ED25519,
        _ => return Err(()),
    };
    let key = public_key(signer).ok_or(())?;
    sig::UnparsedPublicKey::new(algorithm, key)
        .verify(message, signature)
        .map_err(|_| ())
}

fn public_key(cert: &Certificate) -> Option<&[u8]> {
    cert.tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .as_bytes()
}

/// A TLS handshake signature by the holder of a version 1 certificate.
fn verify_handshake(
    cert: &Certificate,
    message: &[u8],
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, Error> {
    use ring::signature as sig;
    let algorithm: &dyn sig::VerificationAlgorithm = match dss.scheme {
        SignatureScheme::RSA_PKCS1_SHA256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        SignatureScheme::RSA_PKCS1_SHA384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        SignatureScheme::RSA_PKCS1_SHA512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        SignatureScheme::RSA_PSS_SHA256 => &sig::RSA_PSS_2048_8192_SHA256,
        SignatureScheme::RSA_PSS_SHA384 => &sig::RSA_PSS_2048_8192_SHA384,
        SignatureScheme::RSA_PSS_SHA512 => &sig::RSA_PSS_2048_8192_SHA512,
        SignatureScheme::ECDSA_NISTP256_SHA256 => &sig::ECDSA_P256_SHA256_ASN1,
        SignatureScheme::ECDSA_NISTP384_SHA384 => &sig::ECDSA_P384_SHA384_ASN1,
        SignatureScheme::ED25519 => &sig::ED25519,
        _ => {
            return Err(Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ))
        }
    };
    let key = public_key(cert).ok_or_else(bad_encoding)?;
    sig::UnparsedPublicKey::new(algorithm, key)
        .verify(message, dss.signature())
        .map(|_| HandshakeSignatureValid::assertion())
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadSignature))
}

/// rustls's check of a handshake signature (TLS 1.2 or 1.3 flavour).
type WebPkiHandshakeCheck = fn(
    &[u8],
    &CertificateDer<'_>,
    &DigitallySignedStruct,
    &rustls::crypto::WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, Error>;

impl ClientVerifier {
    /// A version 1 certificate's signatures are checked here, others by rustls.
    fn handshake(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        webpki: WebPkiHandshakeCheck,
    ) -> Result<HandshakeSignatureValid, Error> {
        match version_1(cert) {
            Some(c) => verify_handshake(&c, message, dss),
            None => webpki(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            ),
        }
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        match version_1(end_entity) {
            Some(cert) => self
                .verify_v1(&cert, now)
                .map(|_| ClientCertVerified::assertion()),
            None => self
                .webpki
                .verify_client_cert(end_entity, intermediates, now),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.handshake(message, cert, dss, rustls::crypto::verify_tls12_signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.handshake(message, cert, dss, rustls::crypto::verify_tls13_signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
