//! One conversation with the directory: connect (TLS when configured), bind,
//! find a user, read their groups, check their password.
//!
//! Every failure to reach or understand the directory becomes
//! [`Error::Unreachable`] (exit 5), so a caller can only ever get a
//! `Principal` from a directory that answered. User input reaches filters
//! only through [`ldap_escape`].

use std::collections::HashSet;
use std::time::Duration;

use ldap3::{ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};

use super::config::Settings;
use super::dn;
use crate::error::{Error, Result};

/// How many levels of groups-in-groups are followed with `nestedGroups`.
const NESTING_LIMIT: usize = 10;

/// A user entry, as found with the service account.
#[derive(Debug, Clone)]
pub(super) struct UserEntry {
    pub(super) dn: String,
    /// The login name as the directory spells it.
    pub(super) uid: String,
    pub(super) display_name: Option<String>,
    pub(super) mail: Option<String>,
    /// Group DNs from `memberOfAttribute`, when configured.
    pub(super) member_of: Vec<String>,
}

/// A group the user belongs to.
#[derive(Debug, Clone)]
pub(super) struct Group {
    pub(super) name: String,
    pub(super) dn: String,
}

/// What a user bind said.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Bind {
    Accepted,
    Refused,
}

/// An open connection. Dropping it closes the connection.
pub(super) struct Session<'a> {
    ldap: Ldap,
    settings: &'a Settings,
}

impl<'a> Session<'a> {
    /// Connects, doing StartTLS or TLS before anything else is sent.
    pub(super) async fn open(settings: &'a Settings) -> Result<Session<'a>> {
        let mut conn_settings =
            LdapConnSettings::new().set_conn_timeout(settings.connect_timeout).set_starttls(settings.config.start_tls);
        if let Some(tls) = &settings.tls {
            conn_settings = conn_settings.set_config(tls.clone());
        }
        let (conn, ldap) = LdapConnAsync::with_settings(conn_settings, &settings.config.provider_url)
            .await
            .map_err(|e| unreachable(settings, "connecting", "timeoutConnect", settings.connect_timeout, e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!("LDAP connection ended: {e}");
            }
        });
        Ok(Session { ldap, settings })
    }

    /// Binds as the service account (`bindDn`).
    pub(super) async fn bind_service(&mut self) -> Result<()> {
        let config = &self.settings.config;
        let result = self
            .ldap
            .with_timeout(self.settings.read_timeout)
            .simple_bind(&config.bind_dn, &self.settings.password.0)
            .await
            .map_err(|e| self.unreachable("binding as bindDn", e))?;
        match result.rc {
            0 => Ok(()),
            // Wrong DN or password, or the account may not bind: the
            // configuration is wrong, and nobody is let in meanwhile.
            32 | 48 | 49 | 50 | 53 => Err(Error::Usage(format!(
                "ldap.bindDn: the directory {} refused the service account {} (code {}{}): check bindDn and its \
                 password (bindPasswordEnv / bindPasswordFile); until then nobody can be identified",
                config.provider_url,
                config.bind_dn,
                result.rc,
                text(&result.text)
            ))),
            rc => Err(self.refused("binding as bindDn", rc, &result.text)),
        }
    }

    /// Finds the enabled user whose `userRdnAttribute` is `uid`. `None`
    /// when there is no such user, or they do not match `userFilter`.
    pub(super) async fn find_user(&mut self, uid: &str) -> Result<Option<UserEntry>> {
        let attribute = self.settings.config.user_rdn_attribute.clone();
        self.find_user_by(&attribute, uid).await
    }

    /// Finds the enabled user whose `attribute` is `uid` (e.g. a chat
    /// user id stored in the directory). `None` as for [`Self::find_user`].
    pub(super) async fn find_user_by(&mut self, attribute: &str, uid: &str) -> Result<Option<UserEntry>> {
        let config = &self.settings.config;
        let filter = format!(
            "(&(objectClass={})({}={}){})",
            config.user_object_class,
            attribute,
            ldap_escape(uid),
            config.user_filter.as_deref().map(str::trim).unwrap_or_default()
        );
        let mut attrs = vec![
            config.user_rdn_attribute.as_str(),
            config.display_name_attribute.as_str(),
            config.mail_attribute.as_str(),
        ];
        attrs.extend(config.member_of_attribute.as_deref());
        let entries = self.search(&config.user_base_dn, "userBaseDn", Scope::Subtree, &filter, attrs).await?;
        let entry = match entries.as_slice() {
            [] => return Ok(None),
            [entry] => entry,
            // A login name must name one person; never pick one.
            many => {
                return Err(Error::Denied(format!(
                    "user `{uid}` matches {} directory entries; refusing to guess (ask your administrator to fix \
                     the directory or userRdnAttribute)",
                    many.len()
                )));
            }
        };
        let values = |attr: &str| -> Vec<String> {
            entry.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(attr)).map(|(_, v)| v.clone()).unwrap_or_default()
        };
        let first = |attr: &str| values(attr).into_iter().next();
        // The directory's spelling of the name (`Alice` logs in as `alice`),
        // so access rules see one name per person.
        let names = values(&config.user_rdn_attribute);
        let canonical = names
            .iter()
            .find(|n| n.to_lowercase() == uid.to_lowercase())
            .or(names.first())
            .cloned()
            .unwrap_or_else(|| uid.to_string());
        Ok(Some(UserEntry {
            dn: entry.dn.clone(),
            uid: canonical,
            display_name: first(&config.display_name_attribute),
            mail: first(&config.mail_attribute),
            member_of: config.member_of_attribute.as_deref().map(values).unwrap_or_default(),
        }))
    }

    /// The user's groups: entries under `roleBaseDn` naming them as a
    /// member (by DN or by uid), the groups in their `memberOfAttribute`,
    /// and with `nestedGroups` the groups containing those.
    pub(super) async fn groups(&mut self, user: &UserEntry) -> Result<Vec<Group>> {
        let config = &self.settings.config;
        let membership = &self.settings.membership;
        let mut groups: Vec<Group> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        if let Some(base) = &config.role_base_dn {
            let mut clauses = String::new();
            for attr in &membership.by_dn {
                clauses.push_str(&format!("({attr}={})", ldap_escape(&user.dn)));
            }
            for attr in &membership.by_uid {
                clauses.push_str(&format!("({attr}={})", ldap_escape(&user.uid)));
            }
            if !clauses.is_empty() {
                for group in self.search_groups(base, &clauses).await? {
                    if seen.insert(dn::normalize(&group.dn)) {
                        groups.push(group);
                    }
                }
            }
        }
        for group_dn in &user.member_of {
            // Only groups under roleBaseDn count when it is set, so a group
            // elsewhere in the tree cannot pose as one of ours.
            if let Some(base) = &config.role_base_dn {
                if !dn::is_under(group_dn, base) {
                    continue;
                }
            }
            if !seen.insert(dn::normalize(group_dn)) {
                continue;
            }
            if let Some(group) = self.group_named(group_dn).await? {
                groups.push(group);
            }
        }
        if config.nested_groups {
            if let Some(base) = &config.role_base_dn {
                let mut frontier: Vec<String> = groups.iter().map(|g| g.dn.clone()).collect();
                for _ in 0..NESTING_LIMIT {
                    if frontier.is_empty() || membership.by_dn.is_empty() {
                        break;
                    }
                    let mut clauses = String::new();
                    for group_dn in &frontier {
                        for attr in &membership.by_dn {
                            clauses.push_str(&format!("({attr}={})", ldap_escape(group_dn)));
                        }
                    }
                    frontier.clear();
                    for group in self.search_groups(base, &clauses).await? {
                        if seen.insert(dn::normalize(&group.dn)) {
                            frontier.push(group.dn.clone());
                            groups.push(group);
                        }
                    }
                }
            }
        }
        Ok(groups)
    }

    /// Groups under `base` matching any of `clauses` (already escaped).
    async fn search_groups(&mut self, base: &str, clauses: &str) -> Result<Vec<Group>> {
        let config = &self.settings.config;
        let class = config.role_object_class.as_deref().map(|c| format!("(objectClass={c})")).unwrap_or_default();
        let filter = format!("(&{class}(|{clauses}))");
        let name_attr = config.role_name_attribute.clone();
        let entries = self.search(base, "roleBaseDn", Scope::Subtree, &filter, vec![name_attr.as_str()]).await?;
        Ok(entries.into_iter().filter_map(|e| group_of(e, &name_attr)).collect())
    }

    /// The group at `group_dn` (from `memberOf`), by its name attribute.
    /// The name comes from the DN when its first part is that attribute;
    /// otherwise the entry is read. A dangling DN is skipped.
    async fn group_named(&mut self, group_dn: &str) -> Result<Option<Group>> {
        let name_attr = self.settings.config.role_name_attribute.clone();
        if let Some((attr, value)) = dn::first_rdn(group_dn) {
            if attr.eq_ignore_ascii_case(&name_attr) {
                return Ok(Some(Group { name: value, dn: group_dn.to_string() }));
            }
        }
        let entries =
            self.search(group_dn, "memberOfAttribute", Scope::Base, "(objectClass=*)", vec![name_attr.as_str()]);
        match entries.await {
            Ok(entries) => Ok(entries.into_iter().find_map(|e| group_of(e, &name_attr))),
            // The group is gone; its DN lingers on the user.
            Err(Error::Usage(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Binds as the user: did the directory accept the password? Only an
    /// answer of "invalid credentials" or similar is a refusal; a directory
    /// that does not answer is [`Error::Unreachable`].
    pub(super) async fn bind_user(&mut self, user_dn: &str, password: &str) -> Result<Bind> {
        // The caller refuses empty passwords; this guards the invariant, as
        // an empty simple bind is an anonymous "success" on some servers.
        if password.is_empty() {
            return Ok(Bind::Refused);
        }
        let result = self
            .ldap
            .with_timeout(self.settings.read_timeout)
            .simple_bind(user_dn, password)
            .await
            .map_err(|e| self.unreachable("checking the password", e))?;
        match result.rc {
            0 => Ok(Bind::Accepted),
            // invalidCredentials, inappropriateAuthentication,
            // insufficientAccessRights, unwillingToPerform (locked or
            // expired accounts on some servers), constraintViolation.
            19 | 48 | 49 | 50 | 53 => Ok(Bind::Refused),
            rc => Err(self.refused("checking the password", rc, &result.text)),
        }
    }

    /// Closes politely; errors do not matter any more.
    pub(super) async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_millis(500), self.ldap.unbind()).await;
    }

    async fn search(
        &mut self,
        base: &str,
        key: &str,
        scope: Scope,
        filter: &str,
        attrs: Vec<&str>,
    ) -> Result<Vec<SearchEntry>> {
        let result = self
            .ldap
            .with_timeout(self.settings.read_timeout)
            .search(base, scope, filter, attrs)
            .await
            .map_err(|e| self.unreachable("searching", e))?;
        let (entries, status) = (result.0, result.1);
        match status.rc {
            0 => Ok(entries
                .into_iter()
                .filter(|e| !e.is_ref() && !e.is_intermediate())
                .map(SearchEntry::construct)
                .collect()),
            // noSuchObject: the base DN is wrong.
            32 => Err(Error::Usage(format!(
                "ldap.{key}: `{base}` does not exist in the directory {}",
                self.settings.config.provider_url
            ))),
            rc => Err(self.refused("searching", rc, &status.text)),
        }
    }

    fn unreachable(&self, doing: &str, e: LdapError) -> Error {
        unreachable(self.settings, doing, "timeoutRead", self.settings.read_timeout, e)
    }

    fn refused(&self, doing: &str, rc: u32, message: &str) -> Error {
        Error::Unreachable(format!(
            "directory {} failed while {doing} (code {rc}{}), so access is denied",
            self.settings.config.provider_url,
            text(message)
        ))
    }
}

fn group_of(entry: SearchEntry, name_attr: &str) -> Option<Group> {
    let name = entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name_attr))
        .and_then(|(_, v)| v.first().cloned())
        .or_else(|| dn::first_rdn(&entry.dn).map(|(_, value)| value))?;
    Some(Group { name, dn: entry.dn })
}

fn text(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

fn unreachable(settings: &Settings, doing: &str, key: &str, timeout: Duration, e: LdapError) -> Error {
    let url = &settings.config.provider_url;
    let cause = match &e {
        LdapError::Timeout { .. } => format!("no answer within {} ms ({key})", timeout.as_millis()),
        // rustls reports a handshake failure (an untrusted certificate, a
        // wrong name) as invalid data.
        LdapError::Io { source } if settings.tls.is_some() && source.kind() == std::io::ErrorKind::InvalidData => {
            format!("TLS: {source} (the certificate must chain to caFile and name the host in providerUrl)")
        }
        _ => e.to_string(),
    };
    Error::Unreachable(format!("directory {url} unreachable while {doing}, so access is denied: {cause}"))
}
