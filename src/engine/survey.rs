//! One look at the engine per request phase.
//!
//! The stages of one deploy all ask the same questions: which containers
//! the target has (ownership, classification, the plan, leftovers), which
//! networks and volumes exist (ownership, preflight, the plan). A
//! [`Survey`] answers them from three list calls, made at once, and a
//! surveyed engine ([`super::DockerEngine::surveyed`]) keeps it until it
//! changes something itself. Only the pipeline's Docker path, under the
//! target's lock, uses a surveyed engine: nobody else changes the target
//! then, so the survey stays true until dockmaster's own next change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bollard::models::{ContainerSummary, Network, Volume};
use bollard::query_parameters::{ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder};

use super::DockerEngine;
use crate::error::Result;

/// The engine's containers (all of them, running or not), networks and
/// volumes, as one list call each returned them.
#[derive(Debug, Default)]
pub struct Survey {
    /// Every container on the engine.
    pub containers: Vec<ContainerSummary>,
    /// Every network.
    pub networks: Vec<Network>,
    /// Every volume.
    pub volumes: Vec<Volume>,
}

impl Survey {
    /// A container's first name, without the leading `/`.
    pub fn name_of(c: &ContainerSummary) -> String {
        c.names.as_ref().and_then(|n| n.first()).map(|n| n.trim_start_matches('/').to_string()).unwrap_or_default()
    }
}

/// Where a surveyed engine keeps its survey: `enabled` only for the
/// pipeline's Docker path; any change the engine makes empties it.
#[derive(Debug, Default)]
pub(crate) struct SurveyCache {
    enabled: bool,
    slot: Mutex<Option<Arc<Survey>>>,
}

impl SurveyCache {
    /// A cache that keeps surveys.
    pub(crate) fn enabled() -> Arc<SurveyCache> {
        Arc::new(SurveyCache { enabled: true, slot: Mutex::new(None) })
    }

    /// Forgets the survey: the engine changed (or another process may have).
    pub(crate) fn forget(&self) {
        if let Ok(mut slot) = self.slot.lock() {
            *slot = None;
        }
    }

    pub(super) fn get(&self) -> Option<Arc<Survey>> {
        self.slot.lock().ok().and_then(|s| s.clone())
    }

    fn put(&self, survey: Arc<Survey>) {
        if self.enabled {
            if let Ok(mut slot) = self.slot.lock() {
                *slot = Some(survey);
            }
        }
    }
}

impl DockerEngine {
    /// A copy of this engine that keeps one survey until it changes
    /// something; for one request that holds the target's lock.
    pub fn surveyed(&self) -> DockerEngine {
        DockerEngine { survey: SurveyCache::enabled(), ..self.clone() }
    }

    /// Forgets what was surveyed: the next question reads the engine again
    /// (after the target's lock is taken, say).
    pub fn forget_survey(&self) {
        self.survey.forget();
    }

    /// The engine's containers, networks and volumes: the kept survey, or
    /// three list calls made at once.
    async fn survey(&self) -> Result<Arc<Survey>> {
        if let Some(survey) = self.survey.get() {
            return Ok(survey);
        }
        let containers = ListContainersOptionsBuilder::default().all(true).build();
        let networks = ListNetworksOptionsBuilder::default().build();
        let volumes = ListVolumesOptionsBuilder::default().build();
        let (containers, networks, volumes) = tokio::join!(
            self.docker.list_containers(Some(containers)),
            self.docker.list_networks(Some(networks)),
            self.docker.list_volumes(Some(volumes)),
        );
        let survey = Arc::new(Survey {
            containers: containers.map_err(|e| self.fail("list containers", e))?,
            networks: networks.map_err(|e| self.fail("list networks", e))?,
            volumes: volumes.map_err(|e| self.fail("list volumes", e))?.volumes.unwrap_or_default(),
        });
        self.survey.put(survey.clone());
        Ok(survey)
    }

    /// Every container (running or not) carrying `label=value`, or named
    /// one of `names`: from the survey on a surveyed engine, else from list
    /// calls filtered by the engine.
    pub(crate) async fn containers_where(
        &self,
        label: Option<(&str, &str)>,
        names: &[String],
    ) -> Result<Vec<ContainerSummary>> {
        let wanted = |c: &ContainerSummary| {
            label.is_some_and(|(k, v)| c.labels.as_ref().and_then(|l| l.get(k)).map(String::as_str) == Some(v))
                || names.contains(&Survey::name_of(c))
        };
        if self.survey.enabled {
            return Ok(self.survey().await?.containers.iter().filter(|c| wanted(c)).cloned().collect());
        }
        let mut found: Vec<ContainerSummary> = Vec::new();
        let by_label = label.map(|(k, v)| ("label".to_string(), vec![format!("{k}={v}")]));
        let by_name = (!names.is_empty())
            .then(|| ("name".to_string(), names.iter().map(|n| format!("^/?{}$", regex_quote(n))).collect()));
        for filter in [by_label, by_name].into_iter().flatten() {
            let filters: HashMap<String, Vec<String>> = [filter].into_iter().collect();
            let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
            let list = self.docker.list_containers(Some(options)).await.map_err(|e| self.fail("list containers", e))?;
            for c in list {
                if wanted(&c) && !found.iter().any(|f| f.id == c.id) {
                    found.push(c);
                }
            }
        }
        Ok(found)
    }

    /// Every network on the engine.
    pub(crate) async fn all_networks(&self) -> Result<Vec<Network>> {
        if self.survey.enabled {
            return Ok(self.survey().await?.networks.clone());
        }
        let options = ListNetworksOptionsBuilder::default().build();
        self.docker.list_networks(Some(options)).await.map_err(|e| self.fail("list networks", e))
    }

    /// Every volume on the engine.
    pub(crate) async fn all_volumes(&self) -> Result<Vec<Volume>> {
        if self.survey.enabled {
            return Ok(self.survey().await?.volumes.clone());
        }
        let options = ListVolumesOptionsBuilder::default().build();
        let list = self.docker.list_volumes(Some(options)).await.map_err(|e| self.fail("list volumes", e))?;
        Ok(list.volumes.unwrap_or_default())
    }
}

/// `text` with the engine's name-filter regular-expression characters
/// escaped (container names may hold `.`).
pub(crate) fn regex_quote(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if !c.is_ascii_alphanumeric() && c != '_' && c != '-' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn name_filters_escape_regular_expression_characters() {
        assert_eq!(super::regex_quote("a.b-c_1"), "a\\.b-c_1");
    }
}
