//! Identity: who is asking, from the directory (LDAP, via `ldap3`).
//!
//! This is the first slice of the identity stage: **lookup** for callers
//! that already authenticated the person (Rundeck's `RD_JOB_USERNAME`). The
//! user must exist in the directory; group membership is read so access
//! rules can use it. It fails closed: a directory that is down or slow means
//! "denied, directory unreachable" (exit 5), never "allowed". Password
//! login, caching, TLS and access rules are not built yet.
//!
//! The configuration uses Rundeck's LDAP vocabulary, so an operator can copy
//! the values from Rundeck's JAAS file.

use std::time::Duration;

use ldap3::{ldap_escape, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The person behind a request, as the directory knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The login name.
    pub uid: String,
    /// The directory entry.
    pub dn: String,
    /// `cn`, when set.
    pub display_name: Option<String>,
    /// `mail`, when set.
    pub mail: Option<String>,
    /// Group names (`roleNameAttribute`, usually `cn`).
    pub groups: Vec<String>,
}

/// The `ldap` section of the configuration (Rundeck's names).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LdapConfig {
    /// `ldap://host:389` (TLS is not supported yet in this version).
    pub provider_url: String,
    /// The DN dockmaster binds as to look people up.
    pub bind_dn: String,
    /// The environment variable holding the bind password (never inline).
    #[serde(default)]
    pub bind_password_env: Option<String>,
    /// A file holding the bind password (first line).
    #[serde(default)]
    pub bind_password_file: Option<std::path::PathBuf>,
    /// Where users live, e.g. `ou=people,dc=example,dc=org`.
    pub user_base_dn: String,
    /// The attribute holding the login name (`uid`; AD: `sAMAccountName`).
    #[serde(default = "default_uid")]
    pub user_rdn_attribute: String,
    /// The users' object class (`inetOrgPerson`; AD: `user`).
    #[serde(default = "default_user_class")]
    pub user_object_class: String,
    /// Where groups live, e.g. `ou=groups,dc=example,dc=org`.
    pub role_base_dn: String,
    /// The attribute naming a group (`cn`).
    #[serde(default = "default_cn")]
    pub role_name_attribute: String,
    /// Connect and operation timeout in milliseconds (5000).
    #[serde(default = "default_timeout")]
    pub timeout_millis: u64,
}

fn default_uid() -> String {
    "uid".into()
}
fn default_user_class() -> String {
    "inetOrgPerson".into()
}
fn default_cn() -> String {
    "cn".into()
}
fn default_timeout() -> u64 {
    5000
}

impl LdapConfig {
    fn password(&self) -> Result<String> {
        if let Some(var) = &self.bind_password_env {
            return std::env::var(var)
                .map_err(|_| Error::Usage(format!("ldap.bindPasswordEnv: the environment variable {var} is not set")));
        }
        if let Some(path) = &self.bind_password_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Usage(format!("ldap.bindPasswordFile {}: {e}", path.display())))?;
            return Ok(text.lines().next().unwrap_or_default().to_string());
        }
        Err(Error::Usage("ldap: set bindPasswordEnv or bindPasswordFile (the password is never inline)".into()))
    }
}

/// Password login: the user must exist (as for [`lookup`]) and the
/// directory must accept a bind as their entry with `password`. An empty
/// password is refused before anything is sent: some directories treat an
/// empty simple bind as an anonymous login and say "success".
pub async fn authenticate(config: &LdapConfig, uid: &str, password: &str) -> Result<Principal> {
    if password.is_empty() {
        return Err(Error::Denied("an empty password is refused".into()));
    }
    let principal = lookup(config, uid).await?;
    let timeout = Duration::from_millis(config.timeout_millis);
    let down = |e: &dyn std::fmt::Display| {
        Error::Unreachable(format!("directory {} unreachable, so access is denied: {e}", config.provider_url))
    };
    let settings = LdapConnSettings::new().set_conn_timeout(timeout);
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &config.provider_url).await.map_err(|e| down(&e))?;
    ldap3::drive!(conn);
    let result = ldap.with_timeout(timeout).simple_bind(&principal.dn, password).await.map_err(|e| down(&e))?;
    let _ = ldap.unbind().await;
    match result.rc {
        0 => Ok(principal),
        // 49: invalidCredentials. Say nothing about which part was wrong.
        49 => Err(Error::Denied(format!("login failed for `{uid}`: wrong user name or password"))),
        rc => Err(down(&format!("the directory answered the login with code {rc} ({})", result.text))),
    }
}

/// Looks a user up: they must exist; their groups come along. Any failure
/// to reach or query the directory is [`Error::Unreachable`].
pub async fn lookup(config: &LdapConfig, uid: &str) -> Result<Principal> {
    if uid.trim().is_empty() {
        return Err(Error::Denied("no user name given".into()));
    }
    let timeout = Duration::from_millis(config.timeout_millis);
    let down = |e: &dyn std::fmt::Display| {
        Error::Unreachable(format!("directory {} unreachable, so access is denied: {e}", config.provider_url))
    };
    if !config.provider_url.starts_with("ldap://") {
        return Err(Error::Usage(format!(
            "ldap.providerUrl `{}`: only ldap:// is supported in this version",
            config.provider_url
        )));
    }
    let settings = LdapConnSettings::new().set_conn_timeout(timeout);
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &config.provider_url).await.map_err(|e| down(&e))?;
    ldap3::drive!(conn);
    let password = config.password()?;
    if password.is_empty() {
        // An empty password is an anonymous bind on some directories.
        return Err(Error::Usage("ldap: the bind password is empty".into()));
    }
    ldap.with_timeout(timeout)
        .simple_bind(&config.bind_dn, &password)
        .await
        .map_err(|e| down(&e))?
        .success()
        .map_err(|e| down(&format!("the service bind as {} failed: {e}", config.bind_dn)))?;
    let filter = format!(
        "(&(objectClass={})({}={}))",
        ldap_escape(&config.user_object_class),
        ldap_escape(&config.user_rdn_attribute),
        ldap_escape(uid)
    );
    let (entries, _) = ldap
        .with_timeout(timeout)
        .search(&config.user_base_dn, Scope::Subtree, &filter, vec!["cn", "mail"])
        .await
        .map_err(|e| down(&e))?
        .success()
        .map_err(|e| down(&e))?;
    let [entry] = entries.as_slice() else {
        return Err(Error::Denied(if entries.is_empty() {
            format!("user `{uid}` is not in the directory: ask your administrator to add you")
        } else {
            format!("user `{uid}` matches {} directory entries; refusing to guess", entries.len())
        }));
    };
    let user = SearchEntry::construct(entry.clone());
    let first = |attr: &str| user.attrs.get(attr).and_then(|v| v.first()).cloned();
    let group_filter = format!(
        "(|(member={dn})(uniqueMember={dn})(memberUid={uid}))",
        dn = ldap_escape(&user.dn),
        uid = ldap_escape(uid)
    );
    let (groups, _) = ldap
        .with_timeout(timeout)
        .search(&config.role_base_dn, Scope::Subtree, &group_filter, vec![config.role_name_attribute.as_str()])
        .await
        .map_err(|e| down(&e))?
        .success()
        .map_err(|e| down(&e))?;
    let mut names: Vec<String> = groups
        .into_iter()
        .map(SearchEntry::construct)
        .filter_map(|g| g.attrs.get(&config.role_name_attribute).and_then(|v| v.first()).cloned())
        .collect();
    names.sort();
    names.dedup();
    let _ = ldap.unbind().await;
    Ok(Principal {
        uid: uid.to_string(),
        dn: user.dn.clone(),
        display_name: first("cn"),
        mail: first("mail"),
        groups: names,
    })
}
