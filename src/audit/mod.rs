//! The audit trail: who asked for what, from where, and what came of it.
//!
//! Every request the pipeline sees writes exactly one [`Record`], allowed
//! or denied, healthy or not, before the way in reports back, so "who
//! changed what" always has an answer. Approvals of structural changes are
//! recorded beside them. Values that look secret never enter the trail:
//! the descriptor stored with each deploy has them masked.

pub mod schema;
pub mod store;

use serde::Serialize;

pub use store::Store;

use crate::config::Config;
use crate::stack::Stack;

pub use crate::config::audit::{AuditConfig, DEFAULT_SECRET_KEYS};

/// What replaces a masked value.
pub const MASK: &str = "********";

/// One request, as the trail keeps it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Record {
    /// The row id, once stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// When the request arrived (Unix seconds).
    pub started: u64,
    /// When it ended (Unix seconds).
    pub finished: u64,
    /// Who asked: the directory uid when known, else what the way in said.
    pub user: String,
    /// Their directory groups, when looked up.
    pub groups: Vec<String>,
    /// The way in: `cli`, `rundeck`, `discord`, `slack`, `mattermost`,
    /// `schedule`, `hook`.
    pub origin: String,
    /// Details of the way in (Rundeck execution id and URL, channel...).
    pub origin_detail: serde_json::Value,
    /// The action asked for.
    pub action: String,
    /// The descriptor reference as given.
    pub reference: String,
    /// The environment.
    pub environment: String,
    /// The target (project) acted on, once known.
    pub target: Option<String>,
    /// The descriptor version resolved.
    pub version: Option<String>,
    /// The descriptor digest resolved.
    pub digest: Option<String>,
    /// What the access check said (the rule that allowed, or why not).
    pub decision: Option<String>,
    /// `none`, `image-only` or `structural`, for deploys.
    pub classification: Option<String>,
    /// The structural differences found.
    pub differences: Vec<String>,
    /// The policy violations found.
    pub violations: Vec<String>,
    /// The plan in one line: `2 create, 1 recreate, 3 keep`.
    pub plan: Option<String>,
    /// `healthy`, `unhealthy`, `ok` (nothing to watch), `denied`, `error`.
    pub verdict: String,
    /// The exit code the request ended with.
    pub exit_code: i32,
    /// Whether a failed deploy was rolled back.
    pub rolled_back: bool,
    /// The error message, when it ended in one.
    pub error: Option<String>,
    /// The normalised descriptor deployed, secrets masked (deploys only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub descriptor: Option<String>,
    /// The engine the request acted on (absent in records written before
    /// environments named engines, and for requests refused before one
    /// was reached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The hash chain link: SHA-256 of the previous record's link and this
    /// record's content, so a rewritten, removed or inserted row shows
    /// (`dockmaster history --verify`). Set by the store when it appends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
}

impl Record {
    /// The content the hash chain covers: every column as written, in a
    /// fixed order, without the row id and the link itself.
    pub fn chained_content(&self) -> String {
        serde_json::json!([
            self.started,
            self.finished,
            self.user,
            self.groups,
            self.origin,
            self.origin_detail.to_string(),
            self.action,
            self.reference,
            self.environment,
            self.target,
            self.version,
            self.digest,
            self.decision,
            self.classification,
            self.differences,
            self.violations,
            self.plan,
            self.verdict,
            self.exit_code,
            self.rolled_back,
            self.error,
            self.descriptor,
            self.engine,
        ])
        .to_string()
    }

    /// The link that follows `previous` (empty for the first row).
    pub fn link(&self, previous: &str) -> String {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        hash.update(previous.as_bytes());
        hash.update(b"\n");
        hash.update(self.chained_content().as_bytes());
        hex::encode(hash.finalize())
    }
}

/// An approval of one exact descriptor for one environment.
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    /// When (Unix seconds).
    pub time: u64,
    /// Who approved (directory uid).
    pub approver: String,
    /// `APPLICATION/RELEASE`, or the file path.
    pub reference: String,
    /// The version approved (empty for files).
    pub version: String,
    /// The digest approved: a changed descriptor needs a new approval.
    pub digest: String,
    /// The environment it is approved for.
    pub environment: String,
    /// The structural differences the approver saw.
    pub differences: Vec<String>,
}

/// A filter over the trail, for `dockmaster history`.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only this target.
    pub target: Option<String>,
    /// Only requests that started at or after (Unix seconds).
    pub since: Option<u64>,
    /// Only this user.
    pub user: Option<String>,
    /// Only these actions.
    pub actions: Option<Vec<String>>,
    /// At most this many rows.
    pub limit: Option<usize>,
    /// Only requests from this way in (`schedule`, `slack`, …).
    pub origin: Option<String>,
    /// Only requests whose origin carries this name (a schedule's, a
    /// hook's).
    pub origin_name: Option<String>,
}

/// Opens the trail the configuration names: the fleet's PostgreSQL
/// database when `state.url` is set, else the SQLite file.
pub fn open(config: &Config) -> crate::error::Result<Store> {
    Store::open_in(crate::state::Database::for_store(config, database(config))?)
}

/// The trail, for readers: `None` when nothing has been recorded yet (no
/// SQLite file), so reading never creates one.
pub fn existing(config: &Config) -> crate::error::Result<Option<Store>> {
    if crate::state::postgres(config)?.is_none() && !database(config).is_file() {
        return Ok(None);
    }
    open(config).map(Some)
}

/// The SQLite file in force when the state is kept in files.
pub fn database(config: &Config) -> std::path::PathBuf {
    config.audit.database.clone().unwrap_or_else(|| config.state_dir().join("audit.db"))
}

/// Whether an environment key's value must be masked under `config`.
pub fn is_secret_key(config: &AuditConfig, key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    match &config.secret_keys {
        Some(words) => words.iter().any(|w| upper.contains(&w.to_ascii_uppercase())),
        None => DEFAULT_SECRET_KEYS.iter().any(|w| upper.contains(w)),
    }
}

/// A copy of `stack` with every secret-looking environment value, build
/// argument and inline secret or config replaced by [`MASK`], safe to
/// store and show. `secrets` are values known to be secret (variables a
/// way in supplied): wherever one appears, it is masked too, whatever the
/// key is called.
pub fn masked(config: &AuditConfig, stack: &Stack, secrets: &[&str]) -> Stack {
    let mut stack = stack.clone();
    let hide = |text: &str| secrets.iter().filter(|s| !s.is_empty()).fold(text.to_string(), |t, s| t.replace(s, MASK));
    for svc in stack.services.values_mut() {
        for (key, value) in svc.environment.iter_mut() {
            if let Some(v) = value {
                *v = if is_secret_key(config, key) { MASK.to_string() } else { hide(v) };
            }
        }
        if let Some(command) = &mut svc.command {
            for part in command.iter_mut() {
                *part = hide(part);
            }
        }
        for label in svc.labels.values_mut() {
            *label = hide(label);
        }
        if let Some(build) = &mut svc.build {
            for (key, value) in build.args.iter_mut() {
                if is_secret_key(config, key) {
                    *value = MASK.to_string();
                }
            }
        }
        for mount in svc.secrets.iter_mut().chain(svc.configs.iter_mut()) {
            match &mut mount.source {
                crate::stack::FileSource::Content(text) => *text = MASK.to_string(),
                crate::stack::FileSource::Environment { value, .. } => *value = MASK.to_string(),
                crate::stack::FileSource::File(_) | crate::stack::FileSource::External { .. } => {}
            }
        }
    }
    stack
}

/// Unix seconds now.
pub fn now() -> u64 {
    crate::lock::now_secs()
}

/// A Unix time as `2026-11-23T10:04:05Z`.
pub fn timestamp(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string()
}

/// From the trail, newest first: the version running now and the last
/// healthy version before it, for rollback. Only healthy deploys and
/// rollbacks of `target` count.
pub fn rollback_candidates(records: &[Record]) -> (Option<String>, Option<String>) {
    let mut healthy = records
        .iter()
        .filter(|r| matches!(r.action.as_str(), "deploy" | "rollback") && r.verdict == "healthy")
        .filter_map(|r| r.version.clone());
    let current = healthy.next();
    let previous = healthy.find(|v| Some(v) != current.as_ref());
    (current, previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_match_in_any_case_and_can_be_configured() {
        let default = AuditConfig::default();
        for key in ["MYSQL_ROOT_PASSWORD", "TRPASSWD", "api_token", "Secret_Sauce", "SSH_KEY"] {
            assert!(is_secret_key(&default, key), "{key}");
        }
        assert!(!is_secret_key(&default, "LOG_LEVEL"));
        let custom = AuditConfig { secret_keys: Some(vec!["pin".into()]), ..AuditConfig::default() };
        assert!(is_secret_key(&custom, "BANK_PIN"));
        assert!(!is_secret_key(&custom, "MYSQL_PASSWORD"));
    }

    fn record(action: &str, version: &str, verdict: &str) -> Record {
        Record { action: action.into(), version: Some(version.into()), verdict: verdict.into(), ..Record::default() }
    }

    #[test]
    fn rollback_skips_failed_and_repeated_versions() {
        // Newest first.
        let records = vec![
            record("deploy", "5", "unhealthy"),
            record("deploy", "4", "healthy"),
            record("deploy", "4", "healthy"),
            record("plan", "3", "ok"),
            record("deploy", "3", "healthy"),
        ];
        assert_eq!(rollback_candidates(&records), (Some("4".into()), Some("3".into())));
        assert_eq!(rollback_candidates(&records[..2]), (Some("4".into()), None));
    }

    #[test]
    fn the_store_appends_queries_and_refuses_to_rewrite_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("sub/audit.db")).unwrap();
        let mut r = record("deploy", "3", "healthy");
        r.user = "alice".into();
        r.target = Some("t".into());
        r.started = 100;
        let id = store.append(&r).unwrap();
        r.user = "bob".into();
        r.started = 200;
        store.append(&r).unwrap();
        let all = store.query(&Query { target: Some("t".into()), ..Query::default() }).unwrap();
        assert_eq!(all.iter().map(|r| r.user.as_str()).collect::<Vec<_>>(), ["bob", "alice"]);
        let since = store.query(&Query { since: Some(150), ..Query::default() }).unwrap();
        assert_eq!(since.len(), 1);
        let alice = store.query(&Query { user: Some("ALICE".into()), ..Query::default() }).unwrap();
        assert_eq!(alice[0].id, Some(id));
        let conn = rusqlite::Connection::open(store.database().sqlite_path().unwrap()).unwrap();
        let err = conn.execute("DELETE FROM requests", []).unwrap_err().to_string();
        assert!(err.contains("append-only"), "{err}");
        assert!(conn.execute("UPDATE requests SET user = 'mallory'", []).is_err());
    }

    #[test]
    fn approvals_match_the_exact_digest_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("audit.db")).unwrap();
        let approval = Approval {
            time: 1,
            approver: "carol".into(),
            reference: "TLO GE/Milestone".into(),
            version: "3".into(),
            digest: "sha256:aa".into(),
            environment: "prod".into(),
            differences: vec!["service `db`: new service".into()],
        };
        store.approve(&approval).unwrap();
        let found = store.approval("TLO GE/Milestone", "3", "sha256:aa", "prod").unwrap().unwrap();
        assert_eq!(found.approver, "carol");
        assert_eq!(found.differences, approval.differences);
        assert!(store.approval("TLO GE/Milestone", "3", "sha256:bb", "prod").unwrap().is_none());
        assert!(store.approval("TLO GE/Milestone", "3", "sha256:aa", "dev").unwrap().is_none());
    }
}
