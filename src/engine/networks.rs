//! Networks: which exist, which are a target's, creating and removing
//! them (riding out the engine's active-endpoints race).

use bollard::errors::Error as BollardError;

use super::spec::LABEL_TARGET;
use super::*;
use crate::error::Result;
use crate::stack::Stack;

impl DockerEngine {
    /// Names of the networks that exist among `wanted`.
    pub async fn existing_networks(&self, wanted: &[String]) -> Result<Vec<String>> {
        let list = self.all_networks().await?;
        Ok(list.into_iter().filter_map(|n| n.name).filter(|n| wanted.contains(n)).collect())
    }

    /// Names of the networks labelled as the target's.
    pub async fn target_networks(&self, target: &str) -> Result<Vec<String>> {
        let list = self.all_networks().await?;
        Ok(list
            .into_iter()
            .filter(|n| n.labels.as_ref().and_then(|l| l.get(LABEL_TARGET)).map(String::as_str) == Some(target))
            .filter_map(|n| n.name)
            .collect())
    }

    /// Creates a network the stack owns.
    pub async fn create_network(&self, stack: &Stack, key: &str) -> Result<()> {
        self.survey.forget();
        let body = spec::network_body(stack, key, &self.extra_labels);
        let name = body.name.clone();
        self.docker.create_network(body).await.map_err(|e| self.fail(&format!("create network {name}"), e))?;
        Ok(())
    }

    /// Removes a network; one already gone is not an error. Right after its
    /// containers are removed the engine may still report endpoints on it
    /// (seen on Docker 20.10); that is retried for up to
    /// [`NETWORK_REMOVAL_GRACE`], as Compose rides the race out.
    pub async fn remove_network(&self, name: &str) -> Result<()> {
        self.survey.forget();
        let deadline = std::time::Instant::now() + NETWORK_REMOVAL_GRACE;
        loop {
            match self.docker.remove_network(name).await {
                Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => return Ok(()),
                Err(BollardError::DockerResponseServerError { ref message, .. })
                    if message.contains("active endpoints") && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
                Err(e) => return Err(self.fail(&format!("remove network {name}"), e)),
            }
        }
    }
}
