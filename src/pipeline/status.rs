//! `status` describes what runs, not the newest file: the version and
//! digest come from the labels the running containers were deployed with,
//! and their health is judged against that version's descriptor. Asking
//! for a version that is not the one running says so (verdict
//! `not-running`, exit 1) instead of reporting another version's health
//! under the asked version's name.

use super::{load, resolve, summarize, Cx, Engine};
use crate::descriptor::{Descriptor, DescriptorRef};
use crate::error::{Result, EXIT_UNHEALTHY};
use crate::plan::ObservedContainer;
use crate::request::{Action, Outcome, OutcomeError};
use crate::stack::Stack;

/// The descriptor the target's containers were deployed from, read from
/// their labels: the most common version and digest among them (a target
/// mid-way through a failed `--no-rollback` deploy can mix two).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Running {
    /// The descriptor version, when the containers recorded one.
    pub version: Option<String>,
    /// The descriptor digest, when the containers recorded one.
    pub digest: Option<String>,
}

impl Running {
    /// What the observed containers say runs; `None` when nothing of the
    /// target exists.
    pub fn of(observed: &[ObservedContainer]) -> Option<Running> {
        if observed.is_empty() {
            return None;
        }
        Some(Running {
            version: most_common(observed.iter().filter_map(|c| c.descriptor_version.as_deref())),
            digest: most_common(observed.iter().filter_map(|c| c.descriptor_digest.as_deref())),
        })
    }
}

fn most_common<'a>(values: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(v, _)| v.to_string())
}

/// The status stage: observe, pick the descriptor that runs, report its
/// health under its own version and digest.
pub(super) async fn status<E: Engine>(
    engine: &E,
    cx: &Cx<'_>,
    stack: &Stack,
    descriptor: &Descriptor,
) -> Result<Outcome> {
    let request = cx.request;
    let observed = engine.observe(&stack.name).await?;
    let mut summary = summarize(request, descriptor);
    let Some(running) = Running::of(&observed) else {
        // Nothing runs: the report says every service is missing.
        return engine.status(cx, stack, summary).await;
    };
    let asked = match &request.descriptor {
        DescriptorRef::Named { version, .. } => version.clone(),
        DescriptorRef::File(_) => None,
    };
    if let (Some(asked), Some(runs)) = (&asked, &running.version) {
        if asked != runs {
            let message = format!(
                "version {asked} is not running on `{}`: version {runs} is (see `dockmaster status` without a version)",
                stack.name
            );
            cx.progress.step(&message);
            summary.digest = running.digest.clone().unwrap_or(summary.digest);
            let mut outcome = Outcome::new(stack.name.clone(), Action::Status, summary);
            outcome.not_running = Some(runs.clone());
            outcome.error = Some(OutcomeError { exit_code: EXIT_UNHEALTHY, message, items: vec![] });
            return Ok(outcome);
        }
    }
    // The newest version is not what runs: judge what runs by its own
    // descriptor, when it can still be resolved.
    let mut own: Option<(Stack, Descriptor)> = None;
    if let (None, Some(runs), DescriptorRef::Named { application, release, .. }) =
        (&asked, &running.version, &request.descriptor)
    {
        if descriptor.version.as_ref() != Some(runs) {
            let mut then = request.clone();
            then.descriptor = DescriptorRef::Named {
                application: application.clone(),
                release: release.clone(),
                version: Some(runs.clone()),
            };
            let found = match resolve(cx.config, &then.descriptor).await {
                Ok(d) => load(&then, cx.config, &d).map(|mut s| {
                    s.retarget(&stack.name);
                    (s, d)
                }),
                Err(e) => Err(e),
            };
            match found {
                Ok(pair) => own = Some(pair),
                Err(e) => cx.progress.step(&format!(
                    "warning: version {runs} runs but cannot be read ({e}); judging it by version {}",
                    descriptor.version.as_deref().unwrap_or("latest")
                )),
            }
        }
    }
    let judged = own.as_ref().map(|(s, _)| s).unwrap_or(stack);
    if let Some((_, d)) = &own {
        summary = summarize(request, d);
    }
    summary.version = running.version.clone().or(summary.version);
    if let Some(digest) = &running.digest {
        if *digest != summary.digest {
            cx.progress.step(&format!(
                "note: the running containers were deployed from digest {digest}; the descriptor now reads {}",
                summary.digest
            ));
        }
        summary.digest = digest.clone();
    }
    engine.status(cx, judged, summary).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(version: Option<&str>, digest: Option<&str>) -> ObservedContainer {
        ObservedContainer {
            id: "x".into(),
            name: "x".into(),
            service: "web".into(),
            config_hash: String::new(),
            field_hashes: Default::default(),
            image_id: String::new(),
            running: true,
            exit_code: None,
            descriptor_version: version.map(String::from),
            descriptor_digest: digest.map(String::from),
            top_level: None,
        }
    }

    #[test]
    fn what_runs_is_read_from_the_labels() {
        assert_eq!(Running::of(&[]), None);
        let observed = [
            container(Some("3"), Some("sha256:c")),
            container(Some("3"), Some("sha256:c")),
            container(Some("4"), None),
        ];
        assert_eq!(
            Running::of(&observed),
            Some(Running { version: Some("3".into()), digest: Some("sha256:c".into()) })
        );
        assert_eq!(Running::of(&[container(None, None)]), Some(Running::default()));
    }
}
