//! An environment's `engine`: which engine it deploys to, and how.
//! Connecting to it is `crate::engine`'s business.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The engine of one environment (`environments.<name>.engine`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// `unix:///path/to/docker.sock` or `tcp://host:2376`. Without it,
    /// `DOCKER_HOST`, else the local socket.
    #[serde(default)]
    pub host: Option<String>,
    /// Client certificate, key and the CA that signed the engine's
    /// certificate, for `tcp://` engines (required there).
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// `docker` (containers on one engine, the default) or `swarm`
    /// (a stack of Swarm services on a manager node).
    #[serde(default)]
    pub kind: EngineKind,
}

/// How a descriptor becomes running software on an engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// One container per service on one engine, replaced by dockmaster.
    #[default]
    Docker,
    /// Swarm services (with replicas and rolling updates) in a stack,
    /// updated and rolled back by Swarm itself.
    Swarm,
}

/// The TLS files of a remote engine, as `docker --tlsverify` takes them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The CA certificate the engine's certificate must chain to.
    pub ca: PathBuf,
    /// The client certificate dockmaster presents.
    pub cert: PathBuf,
    /// The client certificate's private key.
    pub key: PathBuf,
}

impl EngineConfig {
    /// Makes relative TLS paths relative to the configuration file's folder.
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(tls) = &mut self.tls {
            for path in [&mut tls.ca, &mut tls.cert, &mut tls.key] {
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        }
    }

    /// Checks the settings without connecting, so a configuration mistake
    /// fails when the file loads instead of at the first deploy.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let Some(host) = &self.host else {
            return match self.tls {
                Some(_) => Err("`tls` needs a `tcp://` host".into()),
                None => Ok(()),
            };
        };
        if let Some(path) = host.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(format!("host `{host}` names no socket (write unix:///path/to/docker.sock)"));
            }
            if self.tls.is_some() {
                return Err(format!("host `{host}` is a local socket; `tls` is only for tcp:// engines"));
            }
            return Ok(());
        }
        if let Some(address) = host.strip_prefix("tcp://").or_else(|| host.strip_prefix("https://")) {
            if address.is_empty() || !address.contains(':') {
                return Err(format!("host `{host}` needs a port (tcp://HOST:2376)"));
            }
            if self.tls.is_none() {
                return Err(format!(
                    "host `{host}` is a TCP engine without `tls`: dockmaster only talks to remote engines with TLS \
                     client certificates and verification (set tls.ca, tls.cert and tls.key)"
                ));
            }
            return Ok(());
        }
        Err(format!("host `{host}` is neither unix:///PATH nor tcp://HOST:PORT"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(yaml: &str) -> EngineConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn remote_engines_need_tls_and_a_port() {
        assert!(engine("{}").validate().is_ok());
        assert!(engine("{host: 'unix:///run/other.sock'}").validate().is_ok());
        let plain = engine("{host: 'tcp://10.0.0.5:2375'}").validate().unwrap_err();
        assert!(plain.contains("without `tls`"), "{plain}");
        let tls = "tls: {ca: ca.pem, cert: cert.pem, key: key.pem}";
        assert!(engine(&format!("{{host: 'tcp://h:2376', {tls}}}")).validate().is_ok());
        assert!(engine(&format!("{{host: 'tcp://h', {tls}}}")).validate().unwrap_err().contains("port"));
        assert!(engine(&format!("{{host: 'unix:///s', {tls}}}")).validate().unwrap_err().contains("only for tcp"));
        assert!(engine("{host: 'ssh://h'}").validate().unwrap_err().contains("neither"));
        assert!(engine("{host: 'unix://'}").validate().unwrap_err().contains("no socket"));
        assert_eq!(engine("{kind: swarm}").kind, EngineKind::Swarm);
        assert!(serde_yaml::from_str::<EngineConfig>("{kind: kubernetes}").is_err());
    }

    #[test]
    fn relative_tls_paths_follow_the_config_file() {
        let mut e = engine("{host: 'tcp://h:2376', tls: {ca: ca.pem, cert: /abs/cert.pem, key: k/key.pem}}");
        e.resolve_paths(Path::new("/etc/dockmaster"));
        let tls = e.tls.unwrap();
        assert_eq!(tls.ca, PathBuf::from("/etc/dockmaster/ca.pem"));
        assert_eq!(tls.cert, PathBuf::from("/abs/cert.pem"));
        assert_eq!(tls.key, PathBuf::from("/etc/dockmaster/k/key.pem"));
    }
}
