//! One redaction for everything that leaves a request: the report (text,
//! JSON, chat), log tails and health causes, errors on every path, webhook
//! posts and the audit record.
//!
//! A [`Redactor`] learns the request's secret values as the pipeline finds
//! them: the way in's variables (Rundeck's Key Storage secrets and secure
//! options), then, once the descriptor is loaded, the values of
//! environment keys that look secret (`MYSQL_ROOT_PASSWORD`), secret
//! variables and the contents of secret files. The pipeline runs every
//! outcome and every error through it before anyone renders them, so a
//! service that prints its password at start, or a loader error that
//! quotes an interpolated value, shows `********` instead.

use crate::audit::{is_secret_key, AuditConfig, MASK};
use crate::error::Error;
use crate::request::{Outcome, Request};
use crate::stack::{FileSource, Stack};

/// Values shorter than this are not masked: masking `no` or `1` in every
/// log line would hide more than it protects, and such a value is no
/// secret worth the name.
const SHORTEST: usize = 4;

/// The secret values one request knows of.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor that knows the way in's secret variables.
    pub fn for_request(request: &Request) -> Redactor {
        let mut redactor = Redactor::default();
        for value in request.variables.values() {
            redactor.add(&value.0);
        }
        if let Some(password) = &request.password {
            redactor.add(&password.0);
        }
        redactor
    }

    /// Learns the secrets dockmaster itself holds for this configuration:
    /// the directory's bind password, the state database's password and
    /// the registry tokens in the environment, should an engine, a
    /// directory or a database ever echo them.
    pub fn learn_config(&mut self, config: &crate::config::Config) {
        if let Some(password) = config.ldap.as_ref().and_then(|l| l.bind_secret()) {
            self.add(&password);
        }
        for var in ["DOCKMASTER_REGISTRY_TOKEN", "DOCKMASTER_REGISTRY_READ_TOKEN", "DOCKMASTER_PASSWORD"] {
            if let Ok(value) = std::env::var(var) {
                self.add(&value);
            }
        }
        // The state database's password, should a driver ever echo it.
        if let Some(value) = crate::state::password(config) {
            self.add(&value);
        }
    }

    /// Remembers one secret value (and its trimmed form).
    pub fn add(&mut self, value: &str) {
        for v in [value, value.trim()] {
            if v.chars().count() >= SHORTEST && !self.secrets.iter().any(|s| s == v) {
                self.secrets.push(v.to_string());
            }
        }
        // Longest first, so a secret that contains another is masked whole.
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Learns the loaded descriptor's secrets: values of secret-looking
    /// environment keys and build arguments, secrets and configs given by
    /// variable or content, and the contents of secret files.
    pub fn learn(&mut self, config: &AuditConfig, stack: &Stack) {
        for svc in stack.services.values() {
            for (key, value) in &svc.environment {
                if let Some(value) = value.as_deref().filter(|_| is_secret_key(config, key)) {
                    self.add(value);
                }
            }
            if let Some(build) = &svc.build {
                for (key, value) in &build.args {
                    if is_secret_key(config, key) {
                        self.add(value);
                    }
                }
            }
            for mount in &svc.secrets {
                match &mount.source {
                    FileSource::Environment { value, .. } | FileSource::Content(value) => self.add(value),
                    FileSource::File(path) => {
                        // Small text files only: a secret, not a data dump.
                        if let Ok(text) = std::fs::read_to_string(path) {
                            if text.len() <= 4096 {
                                self.add(&text);
                            }
                        }
                    }
                    FileSource::External { .. } => {}
                }
            }
        }
    }

    /// `text` with every known secret replaced by [`MASK`].
    pub fn text(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_string(), |t, s| if t.contains(s.as_str()) { t.replace(s, MASK) } else { t })
    }

    /// Masks an outcome in place: log tails, health causes, the error.
    pub fn outcome(&self, outcome: &mut Outcome) {
        if self.secrets.is_empty() {
            return;
        }
        let reports = outcome.report.iter_mut().chain(outcome.rollback.iter_mut().filter_map(|r| r.restored.as_mut()));
        for report in reports {
            for service in &mut report.services {
                for line in service.log_tail.iter_mut().chain(service.cause.iter_mut()) {
                    *line = self.text(line);
                }
            }
        }
        if let Some(rollback) = &mut outcome.rollback {
            rollback.reason = self.text(&rollback.reason);
        }
        if let Some(error) = &mut outcome.error {
            error.message = self.text(&error.message);
            error.items = error.items.iter().map(|i| self.text(i)).collect();
        }
    }

    /// Findings with every secret this request met replaced.
    fn findings(&self, f: crate::error::Findings) -> crate::error::Findings {
        crate::error::Findings { subject: self.text(&f.subject), items: f.items.iter().map(|i| self.text(i)).collect() }
    }

    /// The same error with its message masked.
    pub fn error(&self, error: Error) -> Error {
        if self.secrets.is_empty() {
            return error;
        }
        match error {
            Error::Usage(m) => Error::Usage(self.text(&m)),
            Error::Descriptor(m) => Error::Descriptor(self.text(&m)),
            Error::Denied(m) => Error::Denied(self.text(&m)),
            Error::Unreachable(m) => Error::Unreachable(self.text(&m)),
            Error::Busy(m) => Error::Busy(self.text(&m)),
            Error::Engine(m) => Error::Engine(self.text(&m)),
            Error::Internal(m) => Error::Internal(self.text(&m)),
            Error::Violations(f) => Error::Violations(self.findings(f)),
            Error::Problems(f) => Error::Problems(self.findings(f)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_secret_is_masked_and_short_values_are_left() {
        let mut r = Redactor::default();
        r.add("hunter2-canary");
        r.add("hunter2-canary-longer");
        r.add("no");
        assert_eq!(r.text("pw=hunter2-canary-longer; short=no"), format!("pw={MASK}; short=no"));
        let e = r.error(Error::Descriptor("ports[0]: invalid port \"hunter2-canary:80\"".into()));
        assert_eq!(e.to_string(), format!("ports[0]: invalid port \"{MASK}:80\""));
        assert_eq!(e.exit_code(), crate::error::EXIT_DESCRIPTOR, "the kind is kept");
    }

    #[test]
    fn a_secret_inside_listed_findings_is_masked_in_the_subject_the_items_and_the_outcome() {
        let mut r = Redactor::default();
        r.add("hunter2-canary");
        let listed = Error::Violations(crate::error::Findings {
            subject: "Shop/web (token hunter2-canary) breaks the policy for `prod`".into(),
            items: vec!["service `app`: environment TOKEN=hunter2-canary is not allowed".into()],
        });
        let e = r.error(listed);
        assert!(!e.to_string().contains("hunter2-canary") && e.to_string().contains(MASK), "{e}");
        assert!(e.items().iter().all(|i| !i.contains("hunter2-canary") && i.contains(MASK)), "{:?}", e.items());
        assert_eq!(e.exit_code(), crate::error::EXIT_DENIED, "the kind is kept");
        // The same list carried inside an outcome (a webhook's error).
        let mut outcome = crate::request::Outcome::new(
            "shop".into(),
            crate::request::Action::Deploy,
            crate::request::DescriptorSummary {
                reference: "Shop/web".into(),
                version: None,
                source: "x".into(),
                digest: "sha256:0".into(),
            },
        );
        outcome.error = Some(crate::request::OutcomeError {
            exit_code: 4,
            message: "hunter2-canary".into(),
            items: vec!["a hunter2-canary item".into()],
        });
        r.outcome(&mut outcome);
        let error = outcome.error.unwrap();
        assert_eq!((error.message.as_str(), error.items[0].as_str()), (MASK, format!("a {MASK} item").as_str()));
    }

    #[test]
    fn the_state_databases_password_is_learned_from_its_variable() {
        // A variable only this test sets: tests share the environment.
        std::env::set_var("DM_TEST_REDACT_STATE_PASSWORD", "state-db-canary-77");
        let mut config = crate::config::Config::default();
        config.state.password_env = Some("DM_TEST_REDACT_STATE_PASSWORD".into());
        let mut r = Redactor::default();
        r.learn_config(&config);
        assert_eq!(r.text("auth failed for state-db-canary-77"), format!("auth failed for {MASK}"));
    }

    #[test]
    fn a_descriptors_secret_environment_values_are_learned() {
        let stack = crate::descriptor::compose::test_stack(
            "services:\n  db:\n    image: x\n    environment: {MYSQL_ROOT_PASSWORD: s3cret-root, LOG_LEVEL: debug}\n",
            "p",
        );
        let mut r = Redactor::default();
        r.learn(&AuditConfig::default(), &stack);
        assert_eq!(r.text("root pw s3cret-root, level debug"), format!("root pw {MASK}, level debug"));
    }
}
