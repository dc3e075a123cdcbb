//! Volumes: which exist, which are a target's, creating and removing
//! them.

use bollard::errors::Error as BollardError;
use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::RemoveVolumeOptionsBuilder;

use super::spec::LABEL_TARGET;
use super::*;
use crate::error::Result;
use crate::stack::Stack;

impl DockerEngine {
    /// Names of the volumes that exist among `wanted`.
    pub async fn existing_volumes(&self, wanted: &[String]) -> Result<Vec<String>> {
        let list = self.all_volumes().await?;
        Ok(list.into_iter().map(|v| v.name).filter(|n| wanted.contains(n)).collect())
    }

    /// Names of every volume (and network) labelled as the target's: what
    /// `down --volumes` removes.
    pub async fn target_volumes(&self, target: &str) -> Result<Vec<String>> {
        let list = self.all_volumes().await?;
        Ok(list
            .into_iter()
            .filter(|v| v.labels.get(LABEL_TARGET).map(String::as_str) == Some(target))
            .map(|v| v.name)
            .collect())
    }

    /// Creates a named volume the stack owns.
    pub async fn create_volume(&self, stack: &Stack, key: &str) -> Result<()> {
        self.survey.forget();
        let declared = stack.volumes.get(key).cloned().unwrap_or_default();
        let mut labels = spec::resource_labels(stack, &declared.labels, &self.extra_labels);
        labels.insert("com.docker.compose.volume".into(), key.into());
        let request = VolumeCreateRequest {
            name: Some(stack.volume_name(key)),
            driver: declared.driver.clone(),
            driver_opts: if declared.driver_opts.is_empty() {
                None
            } else {
                Some(declared.driver_opts.into_iter().collect())
            },
            labels: Some(labels),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map_err(|e| self.fail(&format!("create volume {}", stack.volume_name(key)), e))?;
        Ok(())
    }

    /// Removes a volume unless a container still uses it (the engine answers
    /// 409); one already gone is not an error either.
    pub async fn remove_unused_volume(&self, name: &str) -> Result<()> {
        self.survey.forget();
        let options = RemoveVolumeOptionsBuilder::default().build();
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(())
            | Err(BollardError::DockerResponseServerError { status_code: 404, .. })
            | Err(BollardError::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
            Err(e) => Err(self.fail(&format!("remove volume {name}"), e)),
        }
    }

    /// Removes a volume; one already gone is not an error.
    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        self.survey.forget();
        let options = RemoveVolumeOptionsBuilder::default().build();
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(self.fail(&format!("remove volume {name}"), e)),
        }
    }
}
