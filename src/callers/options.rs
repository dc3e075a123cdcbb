//! Option lists for Rundeck jobs (`valuesUrl`), and `dockmaster options`.
//!
//! Rundeck fills a job option's choices from JSON; the
//! `[{"name": …, "value": …, "selected": …}]` shape keeps the order, so the
//! newest version comes first, and `selected` pre-selects the version that
//! runs now. Cascading options (application → release → version) work by
//! putting `${option.application.value}` into the next option's URL.

use serde::Serialize;

use crate::config::Config;
use crate::descriptor::{folder, DescriptorRef};
use crate::error::Result;

/// One choice in a Rundeck option list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Choice {
    /// The label shown.
    pub name: String,
    /// The value passed to the job.
    pub value: String,
    /// Pre-selected.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub selected: bool,
}

fn plain(names: Vec<String>) -> Vec<Choice> {
    names.into_iter().map(|n| Choice { name: n.clone(), value: n, selected: false }).collect()
}

/// The applications: from the registry when `registry.url` is set, else
/// the descriptor folder.
pub async fn applications(config: &Config) -> Result<Vec<Choice>> {
    match &config.registry.url {
        Some(base) => Ok(plain(crate::registry::client::list(config, base, &[]).await?)),
        None => Ok(plain(folder::applications(&config.descriptor_root())?)),
    }
}

/// The releases of an application.
pub async fn releases(config: &Config, application: &str) -> Result<Vec<Choice>> {
    match &config.registry.url {
        Some(base) => Ok(plain(crate::registry::client::list(config, base, &[application]).await?)),
        None => Ok(plain(folder::releases(&config.descriptor_root(), application)?)),
    }
}

/// The versions of a release, newest first; the one running now in
/// `environment` (from the audit trail of its target) is selected.
pub async fn versions(config: &Config, application: &str, release: &str, environment: &str) -> Result<Vec<Choice>> {
    config.check_environment(environment)?;
    let mut list: Vec<String> = match &config.registry.url {
        Some(base) => crate::registry::client::list(config, base, &[application, release]).await?,
        None => {
            let root = config.descriptor_root();
            folder::releases(&root, application)?;
            folder::versions(&root.join(application).join(release))?.into_iter().map(|(v, _)| v).collect()
        }
    };
    list.reverse();
    let running = running_version(config, application, release, environment)?;
    Ok(list
        .into_iter()
        .map(|v| Choice { selected: running.as_deref() == Some(v.as_str()), name: v.clone(), value: v })
        .collect())
}

/// The version of `application/release` running now in `environment`:
/// the last healthy deploy or rollback of its target in the audit trail.
/// `None` when nothing was deployed there (or there is no trail yet). The
/// registry's `?format=rundeck&env=ENV` list selects it too.
pub fn running_version(config: &Config, application: &str, release: &str, environment: &str) -> Result<Option<String>> {
    let reference = DescriptorRef::Named { application: application.into(), release: release.into(), version: None };
    let target = crate::target::of(&reference, environment, None, None)?;
    let query = crate::audit::Query {
        target: Some(target),
        actions: Some(vec!["deploy".into(), "rollback".into()]),
        limit: Some(200),
        ..Default::default()
    };
    // The trail is only read here: a missing one means nothing was deployed.
    let past = match crate::audit::existing(config) {
        Ok(Some(store)) => store.query(&query).unwrap_or_default(),
        _ => Vec::new(),
    };
    Ok(crate::audit::rollback_candidates(&past).0)
}

/// Renders a list as Rundeck expects it.
pub fn render(choices: &[Choice]) -> String {
    let mut text = serde_json::to_string_pretty(choices).unwrap_or_else(|_| "[]".into());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn versions_come_newest_first_with_the_running_one_selected() {
        let root = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let dir = root.path().join("TLO GE/Milestone");
        std::fs::create_dir_all(&dir).unwrap();
        for v in ["1", "2", "10"] {
            std::fs::write(dir.join(format!("{v}.yml")), "services:\n  a:\n    image: busybox\n").unwrap();
        }
        std::fs::create_dir_all(root.path().join("TLO EE/Milestone")).unwrap();
        let config = Config {
            descriptors: Some(root.path().to_path_buf()),
            state_dir: Some(state.path().to_path_buf()),
            ..Default::default()
        };
        let deployed = crate::audit::Record {
            action: "deploy".into(),
            reference: "TLO GE/Milestone/2".into(),
            target: Some(crate::target::named("TLO GE", "Milestone", "default")),
            version: Some("2".into()),
            verdict: "healthy".into(),
            user: "alice".into(),
            ..Default::default()
        };
        crate::audit::open(&config).unwrap().append(&deployed).unwrap();
        let v = versions(&config, "TLO GE", "Milestone", "default").await.unwrap();
        let order: Vec<(&str, bool)> = v.iter().map(|c| (c.value.as_str(), c.selected)).collect();
        assert_eq!(order, vec![("10", false), ("2", true), ("1", false)]);
        let apps: Vec<String> = applications(&config).await.unwrap().into_iter().map(|c| c.value).collect();
        assert_eq!(apps, vec!["TLO EE", "TLO GE"]);
        let json: serde_json::Value = serde_json::from_str(&render(&v)).unwrap();
        assert_eq!(json[1], serde_json::json!({"name": "2", "value": "2", "selected": true}));
        assert_eq!(json[0], serde_json::json!({"name": "10", "value": "10"}));
        assert!(releases(&config, "../etc").await.is_err());
        let qa = versions(&config, "TLO GE", "Milestone", "qa").await;
        assert!(qa.is_err(), "an environment the configuration does not name is refused");
    }
}
