//! The one TLS client set-up: rustls with the ring provider (the one the
//! rest of dockmaster uses; named explicitly so no process-wide default is
//! needed), for the directory (LDAP) and the state database (PostgreSQL).

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};

/// A TLS client configuration trusting the PEM certificates in `ca_file`,
/// or the system's trust store without it. Errors name `key`, the
/// configuration key the CA file came from.
pub fn client_config(ca_file: Option<&Path>, key: &str) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    let usage = |message: String| Error::Usage(format!("{key}: {message}"));
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| usage(format!("{}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(usage(format!("{}: no PEM certificate in it", path.display())));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| usage(format!("{}: not a usable CA certificate: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A broken certificate in the system store is skipped, as
                // every TLS client does.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(usage(format!(
                    "no CA file is set and the system trust store is empty: set {key} to the server's CA"
                )));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| usage(format!("TLS set-up failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
