//! Identity: who is asking, according to the directory (LDAP, via `ldap3`).
//!
//! Two ways to establish it, both ending in a [`Principal`]:
//! - [`Directory::authenticate`], a password login (the CLI): the user's
//!   entry is found with the service account, then the directory must
//!   accept a bind as that entry with the password;
//! - [`Directory::lookup`], for callers that already authenticated the
//!   person (Rundeck's `RD_JOB_USERNAME`, a verified chat user, a
//!   schedule's service account): the user must exist and match the
//!   enabled-user filter.
//!
//! What a caller may rely on:
//! - it fails closed: a directory that is down, slow or answering
//!   nonsense is [`Error::Unreachable`] (exit 5), never a `Principal`;
//! - an unknown user or a wrong password is [`Error::Denied`] (exit 4),
//!   and a password login does not say which of the two it was;
//! - an empty password is refused before anything is sent (some
//!   directories answer an empty simple bind with an anonymous "success");
//! - every user-supplied value goes through [`ldap3::ldap_escape`];
//! - TLS (`ldaps://` or StartTLS) always verifies the certificate, against
//!   `caFile` when set;
//! - lookup results are reused for `cacheDurationMillis`, so a membership
//!   change takes effect after that time; a password is checked by the
//!   directory on every login, and failures are never cached.
//!
//! The configuration uses Rundeck's LDAP vocabulary ([`LdapConfig`]).

mod config;
mod dn;
mod ldap;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

pub use config::LdapConfig;

use crate::error::{Error, Result};
use config::Settings;
use ldap::{Bind, Session};

/// The person behind a request, as the directory knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The login name, as the directory spells it (`userRdnAttribute`).
    pub uid: String,
    /// Their directory entry.
    pub dn: String,
    /// `displayNameAttribute` (`cn`), when set.
    pub display_name: Option<String>,
    /// `mailAttribute` (`mail`), when set.
    pub mail: Option<String>,
    /// Their groups' names (`roleNameAttribute`, usually `cn`), sorted.
    pub groups: Vec<String>,
    /// Their groups' DNs, sorted.
    pub group_dns: Vec<String>,
}

/// The directory people are looked up in, with a cache of lookups. Cheap
/// to share behind an `Arc`; every call opens its own connection.
pub struct Directory {
    settings: Settings,
    cache: Mutex<HashMap<String, (Instant, Principal)>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").field("provider_url", &self.settings.config.provider_url).finish_non_exhaustive()
    }
}

impl Directory {
    /// Checks the configuration and reads the bind password and CA file.
    /// Nothing is sent to the directory yet. A mistake is
    /// [`Error::Usage`] naming the key (`ldap.providerUrl: ...`).
    pub fn new(config: LdapConfig) -> Result<Directory> {
        Ok(Directory { settings: config.check()?, cache: Mutex::new(HashMap::new()) })
    }

    /// The configuration this directory was made from.
    pub fn config(&self) -> &LdapConfig {
        &self.settings.config
    }

    /// This process's directory for the `ldap` section, `None` without one.
    /// Built at the first call and kept beside the configuration (which
    /// holds no connection), so its lookup cache serves every request of
    /// the process, all of `serve`'s included. A set-up error names the key
    /// at fault and is not kept: a directory that cannot be set up yet (its
    /// password variable only set for deploys, say) is reported by each
    /// request that needs it, and never by a command that does not.
    pub fn shared(ldap: Option<&LdapConfig>) -> Result<Option<Arc<Directory>>> {
        static SHARED: Mutex<Vec<Arc<Directory>>> = Mutex::new(Vec::new());
        let Some(ldap) = ldap else {
            return Ok(None);
        };
        let mut shared = SHARED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(directory) = shared.iter().find(|d| d.config() == ldap) {
            return Ok(Some(directory.clone()));
        }
        let directory = Arc::new(Directory::new(ldap.clone())?);
        shared.push(directory.clone());
        Ok(Some(directory))
    }

    /// Password login: finds `uid`'s entry (enabled users only), then binds
    /// as it with `password`. The directory checks the password on every
    /// call; only the entry and groups may come from the cache.
    pub async fn authenticate(&self, uid: &str, password: &str) -> Result<Principal> {
        // Before anything is sent: an empty simple bind is an anonymous
        // login, and some directories call that success.
        if password.is_empty() {
            return Err(Error::Denied(format!("login refused for `{uid}`: an empty password is refused")));
        }
        check_name(uid)?;
        let wrong = || Error::Denied(format!("login failed for `{uid}`: wrong user name or password"));
        let mut session = Session::open(&self.settings).await?;
        let principal = match self.cached(uid) {
            Some(principal) => principal,
            None => match self.query(&mut session, uid).await? {
                Some(principal) => principal,
                // Unknown and disabled users get the same answer as a wrong
                // password: a guesser learns nothing about who exists.
                None => {
                    session.close().await;
                    return Err(wrong());
                }
            },
        };
        let bind = session.bind_user(&principal.dn, password).await;
        session.close().await;
        match bind? {
            Bind::Accepted => {
                self.remember(uid, &principal);
                Ok(principal)
            }
            Bind::Refused => Err(wrong()),
        }
    }

    /// Looks up a person someone else authenticated: they must exist and
    /// match `userFilter`. An answer is reused for `cacheDurationMillis`.
    pub async fn lookup(&self, uid: &str) -> Result<Principal> {
        check_name(uid)?;
        if let Some(principal) = self.cached(uid) {
            return Ok(principal);
        }
        let mut session = Session::open(&self.settings).await?;
        let found = self.query(&mut session, uid).await;
        session.close().await;
        match found? {
            Some(principal) => {
                self.remember(uid, &principal);
                Ok(principal)
            }
            None => Err(Error::Denied(format!(
                "user `{uid}` is not in the directory, or is disabled there: ask your administrator to add or enable \
                 them"
            ))),
        }
    }

    /// Looks up the person whose directory `attribute` holds `value` (a
    /// chat user id the directory records), as [`Directory::lookup`] does,
    /// cached under `attribute=value`.
    pub async fn lookup_by(&self, attribute: &str, value: &str) -> Result<Principal> {
        check_name(value)?;
        if !attribute.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';') || attribute.is_empty() {
            return Err(Error::Usage(format!("`{attribute}` is not an LDAP attribute name")));
        }
        let key = format!("{attribute}={value}");
        if let Some(principal) = self.cached(&key) {
            return Ok(principal);
        }
        let mut session = Session::open(&self.settings).await?;
        session.bind_service().await?;
        let found = match session.find_user_by(attribute, value).await {
            Ok(Some(user)) => {
                let uid = user.uid.clone();
                // The uid found is then looked up as usual (groups, filter).
                self.query(&mut session, &uid).await
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        session.close().await;
        match found? {
            Some(principal) => {
                self.remember(&key, &principal);
                Ok(principal)
            }
            None => Err(Error::Denied(format!(
                "no enabled directory user has `{attribute}: {value}`: ask your administrator to record it"
            ))),
        }
    }

    /// Forgets every cached lookup (e.g. on a configuration reload).
    pub fn clear_cache(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Service bind, user entry, groups. `None`: no such enabled user.
    async fn query(&self, session: &mut Session<'_>, uid: &str) -> Result<Option<Principal>> {
        session.bind_service().await?;
        let Some(user) = session.find_user(uid).await? else { return Ok(None) };
        let groups = session.groups(&user).await?;
        let mut names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
        names.sort();
        names.dedup();
        let mut group_dns: Vec<String> = groups.into_iter().map(|g| g.dn).collect();
        group_dns.sort();
        group_dns.dedup();
        Ok(Some(Principal {
            uid: user.uid,
            dn: user.dn,
            display_name: user.display_name,
            mail: user.mail,
            groups: names,
            group_dns,
        }))
    }

    fn cached(&self, uid: &str) -> Option<Principal> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(uid).filter(|(expires, _)| Instant::now() < *expires).map(|(_, principal)| principal.clone())
    }

    fn remember(&self, uid: &str, principal: &Principal) {
        let duration = self.settings.cache_duration;
        if duration.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|_, (expires, _)| now < *expires);
        cache.insert(uid.to_string(), (now + duration, principal.clone()));
    }
}

/// A login name worth asking the directory about. Surrounding spaces would
/// be ignored by the directory's matching, so `" alice"` is refused rather
/// than silently becoming `alice`.
fn check_name(uid: &str) -> Result<()> {
    if uid.is_empty() {
        return Err(Error::Denied("no user name given".into()));
    }
    if uid.trim() != uid || uid.chars().any(char::is_control) {
        return Err(Error::Denied(format!("`{}` is not a valid user name", uid.escape_debug())));
    }
    Ok(())
}

/// `dn` in one canonical spelling (case, spaces and escapes normalised),
/// for comparing DNs as the directory would, e.g. a group DN in an access
/// rule against [`Principal::group_dns`].
pub fn normalize_dn(dn: &str) -> String {
    dn::normalize(dn)
}

/// One-shot [`Directory::authenticate`] without a cache, for callers that
/// hold only the configuration.
pub async fn authenticate(config: &LdapConfig, uid: &str, password: &str) -> Result<Principal> {
    if password.is_empty() {
        return Err(Error::Denied(format!("login refused for `{uid}`: an empty password is refused")));
    }
    Directory::new(config.clone())?.authenticate(uid, password).await
}

/// One-shot [`Directory::lookup`] without a cache, for callers that hold
/// only the configuration.
pub async fn lookup(config: &LdapConfig, uid: &str) -> Result<Principal> {
    Directory::new(config.clone())?.lookup(uid).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> Directory {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "secret").unwrap();
        // Port 9 on loopback: nothing listens, and nothing must be sent.
        let config: LdapConfig = serde_yaml::from_str(&format!(
            "providerUrl: ldap://127.0.0.1:9\nbindDn: cn=a,dc=x\nbindPasswordFile: {}\nuserBaseDn: dc=x\n\
             timeoutConnect: 200\n",
            file.display()
        ))
        .unwrap();
        Directory::new(config).unwrap()
    }

    #[tokio::test]
    async fn empty_passwords_and_odd_names_are_refused_before_anything_is_sent() {
        let directory = directory();
        for (uid, password) in [("alice", ""), ("", "pw"), (" alice", "pw"), ("al\nice", "pw")] {
            match directory.authenticate(uid, password).await {
                Err(e @ Error::Denied(_)) => assert_eq!(e.exit_code(), 4),
                other => panic!("{uid:?}/{password:?}: expected a denial, got {other:?}"),
            }
        }
        // A real attempt with a password does reach for the (absent)
        // directory, and fails closed.
        assert!(matches!(directory.authenticate("alice", "pw").await, Err(Error::Unreachable(_))));
        assert!(matches!(directory.lookup("alice").await, Err(Error::Unreachable(_))));
    }

    #[test]
    fn a_directory_can_be_shared_across_tasks() {
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: T) {}
        let directory = directory();
        send_sync(&directory);
        send(directory.lookup("alice"));
        send(directory.authenticate("alice", "pw"));
    }

    #[test]
    fn the_debug_form_shows_no_secret() {
        assert!(!format!("{:?}", directory()).contains("secret"));
    }
}
