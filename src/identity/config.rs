//! Checking the `ldap` section of the configuration ([`LdapConfig`], whose
//! keys `crate::config::ldap` defines).
//!
//! Deserializing only reads the keys. [`LdapConfig::check`] (called by
//! [`super::Directory::new`]) turns them into [`Settings`]: it reads the
//! bind password and the CA file and rejects anything that would make a
//! request fail in a confusing way later, each error naming its key.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

pub use crate::config::ldap::LdapConfig;

/// The password of the service account. Its `Debug` says nothing.
#[derive(Clone)]
pub(super) struct BindPassword(pub(super) String);

impl std::fmt::Debug for BindPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BindPassword(***)")
    }
}

/// How group membership is found on group entries.
#[derive(Debug, Clone)]
pub(super) struct Membership {
    /// Group attributes whose values are user (or group) DNs.
    pub(super) by_dn: Vec<String>,
    /// Group attributes whose values are uids.
    pub(super) by_uid: Vec<String>,
}

/// A checked configuration, ready to connect with.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) config: LdapConfig,
    pub(super) password: BindPassword,
    /// Set for `ldaps://` and StartTLS: the rustls client configuration.
    pub(super) tls: Option<Arc<rustls::ClientConfig>>,
    pub(super) membership: Membership,
    pub(super) connect_timeout: Duration,
    pub(super) read_timeout: Duration,
    pub(super) cache_duration: Duration,
}

impl LdapConfig {
    /// Checks every key and reads the secrets, so a mistake fails at start
    /// and not on someone's first deploy.
    pub(super) fn check(self) -> Result<Settings> {
        let tls = check_url(&self.provider_url, self.start_tls)?;
        for (key, dn) in [("bindDn", Some(&self.bind_dn)), ("userBaseDn", Some(&self.user_base_dn))]
            .into_iter()
            .chain([("roleBaseDn", self.role_base_dn.as_ref())])
        {
            if let Some(dn) = dn {
                if dn.trim().is_empty() || !dn.contains('=') {
                    return Err(usage(key, format!("`{dn}` is not a DN (like ou=people,dc=example,dc=org)")));
                }
            }
        }
        let attributes = [
            ("userRdnAttribute", Some(&self.user_rdn_attribute)),
            ("userObjectClass", Some(&self.user_object_class)),
            ("displayNameAttribute", Some(&self.display_name_attribute)),
            ("mailAttribute", Some(&self.mail_attribute)),
            ("roleNameAttribute", Some(&self.role_name_attribute)),
            ("roleMemberAttribute", self.role_member_attribute.as_ref()),
            ("roleUsernameMemberAttribute", self.role_username_member_attribute.as_ref()),
            ("roleObjectClass", self.role_object_class.as_ref()),
            ("memberOfAttribute", self.member_of_attribute.as_ref()),
        ];
        for (key, value) in attributes {
            // These go into filters as attribute names, which cannot be
            // escaped: only names and OIDs are accepted.
            if let Some(value) = value {
                if !is_attribute_name(value) {
                    return Err(usage(key, format!("`{value}` is not an attribute or class name")));
                }
            }
        }
        if let Some(filter) = &self.user_filter {
            let filter = filter.trim();
            if !(filter.starts_with('(') && filter.ends_with(')')) || ldap3::parse_filter(filter).is_err() {
                return Err(usage(
                    "userFilter",
                    format!(
                        "`{filter}` is not an LDAP filter (write it in parentheses, e.g. (!(pwdAccountLockedTime=*)))"
                    ),
                ));
            }
        }
        if self.nested_groups && self.role_base_dn.is_none() {
            return Err(usage("nestedGroups", "needs roleBaseDn, where the enclosing groups are searched".into()));
        }
        for (key, value) in [("timeoutConnect", self.timeout_connect), ("timeoutRead", self.timeout_read)] {
            // Zero means "wait forever" in Rundeck; a request must never
            // hang on a stuck directory, so it is refused here.
            if value == 0 {
                return Err(usage(
                    key,
                    "must be more than 0 milliseconds (a stuck directory must not hang requests)".into(),
                ));
            }
        }
        let membership = self.membership();
        let password = self.bind_password()?;
        let tls = match tls {
            false => {
                if let Some(path) = &self.ca_file {
                    return Err(usage(
                        "caFile",
                        format!(
                            "{} is set but the connection is not encrypted: use an ldaps:// providerUrl or startTls: true",
                            path.display()
                        ),
                    ));
                }
                None
            }
            true => Some(Arc::new(crate::tls::client_config(self.ca_file.as_deref(), "ldap.caFile")?)),
        };
        Ok(Settings {
            password,
            tls,
            membership,
            connect_timeout: Duration::from_millis(self.timeout_connect),
            read_timeout: Duration::from_millis(self.timeout_read),
            cache_duration: Duration::from_millis(self.cache_duration_millis),
            config: self,
        })
    }

    fn membership(&self) -> Membership {
        let mut membership = Membership { by_dn: Vec::new(), by_uid: Vec::new() };
        match &self.role_member_attribute {
            // Not configured: every common style, so a directory holding
            // groupOfNames and posixGroup entries side by side works.
            None => {
                membership.by_dn = vec!["member".into(), "uniqueMember".into()];
                if self.role_username_member_attribute.is_none() {
                    membership.by_uid = vec!["memberUid".into()];
                }
            }
            Some(attr) if attr.eq_ignore_ascii_case("memberUid") => membership.by_uid.push(attr.clone()),
            Some(attr) => membership.by_dn.push(attr.clone()),
        }
        if let Some(attr) = &self.role_username_member_attribute {
            if !membership.by_uid.iter().any(|a| a.eq_ignore_ascii_case(attr)) {
                membership.by_uid.push(attr.clone());
            }
        }
        membership
    }

    /// The service account's password as text, when one is configured and
    /// readable: for the redactor, which masks it wherever it might show.
    pub fn bind_secret(&self) -> Option<String> {
        self.bind_password().ok().map(|p| p.0)
    }

    /// The service account's password: from `bindPasswordEnv` when that
    /// variable is set, else from `bindPasswordFile`. Never inline.
    fn bind_password(&self) -> Result<BindPassword> {
        let from_env = match &self.bind_password_env {
            Some(var) => match std::env::var(var) {
                Ok(value) => Some(value),
                Err(_) if self.bind_password_file.is_some() => None,
                Err(_) => {
                    return Err(usage("bindPasswordEnv", format!("the environment variable {var} is not set")));
                }
            },
            None => None,
        };
        let password = match (from_env, &self.bind_password_file) {
            (Some(value), _) => value,
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| usage("bindPasswordFile", format!("{}: {e}", path.display())))?;
                text.lines().next().unwrap_or_default().to_string()
            }
            (None, None) => {
                return Err(usage(
                    "bindPasswordEnv",
                    "set bindPasswordEnv or bindPasswordFile for the bind password (it is never written inline)".into(),
                ));
            }
        };
        if password.is_empty() {
            // An empty simple bind is an anonymous session on some
            // directories: it would "work" and see less than expected.
            return Err(usage("bindPasswordEnv", "the bind password is empty".into()));
        }
        Ok(BindPassword(password))
    }
}

fn usage(key: &str, message: String) -> Error {
    Error::Usage(format!("ldap.{key}: {message}"))
}

/// Checks `providerUrl`; answers whether the connection uses TLS.
fn check_url(url: &str, start_tls: bool) -> Result<bool> {
    let bad = |why: &str| {
        usage(
            "providerUrl",
            format!("`{url}` {why} (e.g. ldap://ldap.example.org:389 or ldaps://ldap.example.org:636)"),
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("is not a URL"))?;
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "ldap" => start_tls,
        "ldaps" if start_tls => {
            return Err(usage("startTls", format!("{url} is already TLS (ldaps://); use ldap:// with startTls")));
        }
        "ldaps" => true,
        _ => return Err(bad("must start with ldap:// or ldaps://")),
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !path.is_empty() {
        return Err(bad("must not carry a path or DN: put base DNs in userBaseDn and roleBaseDn"));
    }
    if authority.contains('@') || authority.contains('?') || authority.contains('#') {
        return Err(bad("must be only a host and an optional port"));
    }
    let (host, port) = match authority.strip_prefix('[') {
        // [IPv6]:port
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("has an unterminated [IPv6 address]"))?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(bad("names no host"));
    }
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad("has an invalid port"));
        }
    }
    Ok(tls)
}

/// An attribute description or object class: a name (`uid`, `sAMAccountName`)
/// or a numeric OID.
fn is_attribute_name(value: &str) -> bool {
    let mut chars = value.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
        Some(c) if c.is_ascii_digit() => {
            value.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A bind password file shared by the tests (no environment changes:
    /// tests run in parallel).
    fn password_file() -> &'static Path {
        static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
        let dir = DIR.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("pw"), "secret\n").unwrap();
            dir
        });
        Box::leak(dir.path().join("pw").into_boxed_path())
    }

    fn config(extra: &str) -> LdapConfig {
        serde_yaml::from_str(&format!(
            "providerUrl: ldap://127.0.0.1:389\nbindDn: cn=admin,dc=example,dc=org\nbindPasswordFile: {}\n\
             userBaseDn: ou=people,dc=example,dc=org\nroleBaseDn: ou=groups,dc=example,dc=org\n{extra}",
            password_file().display()
        ))
        .unwrap()
    }

    fn error(extra: &str) -> String {
        match config(extra).check() {
            Err(Error::Usage(m)) => m,
            other => panic!("expected a usage error for {extra:?}, got {other:?}"),
        }
    }

    #[test]
    fn urls_are_checked_and_errors_name_the_key() {
        assert!(check_url("ldap://h", false).is_ok_and(|tls| !tls));
        assert!(check_url("ldap://h:389/", true).is_ok_and(|tls| tls));
        assert!(check_url("ldaps://[::1]:636", false).is_ok_and(|tls| tls));
        for bad in ["ldap:/h", "http://h", "ldap://", "ldap://h:0", "ldap://h:x", "ldap://h/dc=x", "ldap://u@h"] {
            let e = check_url(bad, false).unwrap_err().to_string();
            assert!(e.starts_with("ldap.providerUrl:") && e.contains(bad), "{e}");
        }
        assert!(check_url("ldaps://h", true).unwrap_err().to_string().starts_with("ldap.startTls:"));
        let mut ftp = config("");
        ftp.provider_url = "ftp://x".into();
        assert!(ftp.check().unwrap_err().to_string().starts_with("ldap.providerUrl:"));
    }

    #[test]
    fn keys_that_go_into_filters_must_be_names_and_filters_must_parse() {
        assert!(error("userRdnAttribute: \"uid)(x\"\n").starts_with("ldap.userRdnAttribute:"));
        assert!(error("userFilter: \"!(x=1)\"\n").starts_with("ldap.userFilter:"));
        assert!(error("userFilter: \"(&(x=1)\"\n").starts_with("ldap.userFilter:"));
        assert!(error("timeoutRead: 0\n").starts_with("ldap.timeoutRead:"));
        assert!(error("caFile: /nonexistent.pem\n").starts_with("ldap.caFile:"), "caFile without TLS");
        assert!(error("startTls: true\ncaFile: /nonexistent.pem\n").contains("/nonexistent.pem"));
        assert!(is_attribute_name("1.2.840.113556.1.4.803") && is_attribute_name("sAMAccountName"));
        assert!(!is_attribute_name("a b") && !is_attribute_name("") && !is_attribute_name("1..2"));
    }

    #[test]
    fn the_bind_password_comes_from_the_environment_or_a_file_never_empty() {
        let unset: LdapConfig = serde_yaml::from_str(
            "providerUrl: ldap://h\nbindDn: cn=a,dc=x\nbindPasswordEnv: DOCKMASTER_TEST_UNSET_VAR\nuserBaseDn: dc=x\n",
        )
        .unwrap();
        let e = unset.check().unwrap_err().to_string();
        assert!(e.contains("DOCKMASTER_TEST_UNSET_VAR is not set"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "\n").unwrap();
        let empty: LdapConfig = serde_yaml::from_str(&format!(
            "providerUrl: ldap://h\nbindDn: cn=a,dc=x\nbindPasswordFile: {}\nuserBaseDn: dc=x\n",
            file.display()
        ))
        .unwrap();
        assert!(empty.clone().check().unwrap_err().to_string().contains("empty"));
        std::fs::write(&file, "s3cret\nignored\n").unwrap();
        let settings = empty.check().unwrap();
        assert_eq!(settings.password.0, "s3cret");
        assert!(!format!("{settings:?}").contains("s3cret"), "Debug never shows the password");
        let inline = serde_yaml::from_str::<LdapConfig>(
            "providerUrl: ldap://h\nbindDn: cn=a,dc=x\nbindPassword: x\nuserBaseDn: dc=x\n",
        );
        assert!(inline.unwrap_err().to_string().contains("bindPassword"), "an inline password is refused");
    }

    #[test]
    fn membership_defaults_to_every_style_and_follows_the_configured_attribute() {
        let all = config("").check().unwrap().membership;
        assert_eq!(
            (all.by_dn.as_slice(), all.by_uid.as_slice()),
            (&["member".to_string(), "uniqueMember".into()][..], &["memberUid".to_string()][..])
        );
        let posix = config("roleMemberAttribute: memberUid\n").check().unwrap().membership;
        assert!(posix.by_dn.is_empty() && posix.by_uid == ["memberUid"]);
        let unique = config("roleMemberAttribute: uniqueMember\n").check().unwrap().membership;
        assert!(unique.by_dn == ["uniqueMember"] && unique.by_uid.is_empty());
    }
}
