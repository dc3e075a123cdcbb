//! The `ldap` section: the directory people are looked up in, in
//! Rundeck's LDAP vocabulary (`providerUrl`, `bindDn`, `userBaseDn`,
//! `roleBaseDn`, ...), so an operator can copy the values from Rundeck's
//! JAAS file. Only the keys: checking them and reading the bind password
//! is the directory's business (`identity`), when it is built.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The `ldap` section of the configuration (Rundeck's names, camelCase).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LdapConfig {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub provider_url: String,
    /// Upgrade an `ldap://` connection with StartTLS before anything is
    /// sent. Not with `ldaps://` (already TLS).
    #[serde(default)]
    pub start_tls: bool,
    /// A PEM file with the CA certificate(s) the directory's certificate
    /// must chain to. Without it, the system's trust store. Verification is
    /// always on.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The DN dockmaster binds as to look people up.
    pub bind_dn: String,
    /// The environment variable holding the bind password (never inline).
    #[serde(default)]
    pub bind_password_env: Option<String>,
    /// A file holding the bind password (its first line).
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// Where users live, e.g. `ou=people,dc=example,dc=org` (subtree).
    pub user_base_dn: String,
    /// The attribute holding the login name (`uid`; AD: `sAMAccountName`).
    #[serde(default = "default_uid")]
    pub user_rdn_attribute: String,
    /// The users' object class (`inetOrgPerson`; AD: `user`).
    #[serde(default = "default_user_class")]
    pub user_object_class: String,
    /// An extra filter an enabled user must match, e.g.
    /// `(!(pwdAccountLockedTime=*))`; AD:
    /// `(!(userAccountControl:1.2.840.113556.1.4.803:=2))`.
    #[serde(default)]
    pub user_filter: Option<String>,
    /// The attribute shown as the person's name (`cn`).
    #[serde(default = "default_cn")]
    pub display_name_attribute: String,
    /// The attribute holding the person's mail address (`mail`).
    #[serde(default = "default_mail")]
    pub mail_attribute: String,
    /// Where groups live, e.g. `ou=groups,dc=example,dc=org` (subtree).
    /// Without it, groups come only from `memberOfAttribute`.
    #[serde(default)]
    pub role_base_dn: Option<String>,
    /// The attribute naming a group (`cn`).
    #[serde(default = "default_cn")]
    pub role_name_attribute: String,
    /// The group attribute listing members: `member` or `uniqueMember`
    /// (values are user DNs) or `memberUid` (values are uids). Without it,
    /// all three are searched, so mixed directories work.
    #[serde(default)]
    pub role_member_attribute: Option<String>,
    /// Rundeck's name for a group attribute listing members by uid
    /// (`memberUid`), searched besides `roleMemberAttribute`.
    #[serde(default)]
    pub role_username_member_attribute: Option<String>,
    /// Only groups of this object class (`groupOfNames`,
    /// `groupOfUniqueNames`, `posixGroup`). Without it, any class.
    #[serde(default)]
    pub role_object_class: Option<String>,
    /// An attribute on the user entry listing group DNs (`memberOf`, Active
    /// Directory style). Under `roleBaseDn` only, when that is set.
    #[serde(default)]
    pub member_of_attribute: Option<String>,
    /// Also report the groups that contain the user's groups (by DN, up to
    /// ten levels).
    #[serde(default)]
    pub nested_groups: bool,
    /// How long a lookup result is reused, in milliseconds (60000; 0: never).
    #[serde(default = "default_cache")]
    pub cache_duration_millis: u64,
    /// How long connecting may take, TLS included, in milliseconds (5000).
    #[serde(default = "default_timeout")]
    pub timeout_connect: u64,
    /// How long each directory operation may take, in milliseconds (5000).
    #[serde(default = "default_timeout")]
    pub timeout_read: u64,
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
fn default_mail() -> String {
    "mail".into()
}
fn default_cache() -> u64 {
    60_000
}
fn default_timeout() -> u64 {
    5_000
}

impl LdapConfig {
    /// Makes relative `caFile` and `bindPasswordFile` paths relative to
    /// `base` (the configuration file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        for path in [&mut self.ca_file, &mut self.bind_password_file].into_iter().flatten() {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }
}
