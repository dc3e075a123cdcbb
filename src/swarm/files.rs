//! Secrets and configs on Swarm: where `external` ones finally have a home.
//!
//! Swarm keeps secrets and configs itself and gives each task a copy. An
//! `external` one must exist on the swarm already, under its engine-side
//! name; it is looked up before anything changes, so a missing one stops
//! the plan with the command that creates it. The stack's own ones (from a
//! host file, a variable or inline `content:`) are created by dockmaster,
//! labelled with the stack namespace like `docker stack deploy` does.
//!
//! Swarm refuses to change a secret's data, so each of the stack's own
//! objects is named after its content: `<stack>_<key>_<10 hex of SHA-256>`.
//! New content is a new object and a service update that Swarm can roll
//! back to the old one; objects no service of the target uses any more are
//! removed after the deploy and by `down`. The ten hex characters say
//! whether two values are equal, as the field hashes on services already
//! do; they do not carry the value.

use std::collections::{BTreeMap, HashMap, HashSet};

use base64::Engine as _;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ConfigSpec, SecretSpec, TaskSpecContainerSpecConfigs, TaskSpecContainerSpecFile, TaskSpecContainerSpecFile1,
    TaskSpecContainerSpecSecrets,
};
use bollard::query_parameters::{ListConfigsOptionsBuilder, ListSecretsOptionsBuilder};
use sha2::{Digest, Sha256};

use super::spec::LABEL_NAMESPACE;
use super::SwarmEngine;
use crate::engine::spec::LABEL_TARGET;
use crate::error::{Error, Result};
use crate::pipeline::Progress;
use crate::stack::{FileKind as Kind, FileMount, FileSource, Service, Stack};

/// Swarm's limit on secret and config names.
const NAME_LIMIT: usize = 64;

/// One object a service needs, as Swarm names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The engine-side name.
    pub name: String,
    /// The content for the stack's own objects; `None` for external ones.
    pub data: Option<Vec<u8>>,
}

/// The Swarm object behind one of a service's secrets or configs: its name
/// and, for the stack's own, its content (a host file is read now; a
/// missing one is a descriptor error naming it).
pub fn wanted(stack: &Stack, service: &str, kind: Kind, file: &FileMount) -> Result<Wanted> {
    let data = match &file.source {
        FileSource::External { name } => return Ok(Wanted { name: name.clone(), data: None }),
        FileSource::File(path) => std::fs::read(path).map_err(|e| {
            Error::Descriptor(format!(
                "service `{service}`: {} `{}` is the host file {path}, which cannot be read: {e}",
                kind.what(),
                file.name
            ))
        })?,
        FileSource::Environment { value, .. } => value.clone().into_bytes(),
        FileSource::Content(text) => text.clone().into_bytes(),
    };
    let digest = hex::encode(Sha256::digest(&data));
    let suffix = format!("_{}", &digest[..10]);
    let mut prefix = format!("{}_{}", stack.name, file.name);
    while prefix.len() + suffix.len() > NAME_LIMIT {
        prefix.pop();
    }
    Ok(Wanted { name: format!("{prefix}{suffix}"), data: Some(data) })
}

/// The names a service's files have on Swarm, for its configuration hash:
/// new content gives a new name and so a service update. A file that cannot
/// be read counts by its path (the deploy then stops on it).
pub fn names_for_hash(stack: &Stack, service: &str, svc: &Service) -> Vec<String> {
    svc.files()
        .map(|(kind, f)| wanted(stack, service, kind, f).map(|w| w.name).unwrap_or_else(|_| f.name.clone()))
        .collect()
}

/// The objects a deploy uses: for each secret or config key of the
/// stack, its engine-side name and, once it exists, its ID.
pub type Objects = HashMap<(Kind, String), (String, Option<String>)>;

/// The `secrets` and `configs` of a service's container spec, referring to
/// `objects` (from [`SwarmEngine::ensure_files`]). A file missing from them
/// is referred to by its key alone, which Swarm refuses by name.
pub fn references(
    svc: &Service,
    objects: &Objects,
) -> (Vec<TaskSpecContainerSpecSecrets>, Vec<TaskSpecContainerSpecConfigs>) {
    let (mut secrets, mut configs) = (Vec::new(), Vec::new());
    for (kind, f) in svc.files() {
        let (name, id) = objects.get(&(kind, f.name.clone())).cloned().unwrap_or_else(|| (f.name.clone(), None));
        let mode = Some(f.mode.unwrap_or(0o444));
        let (uid, gid) =
            (Some(f.uid.clone().unwrap_or_else(|| "0".into())), Some(f.gid.clone().unwrap_or_else(|| "0".into())));
        match kind {
            Kind::Secret => secrets.push(TaskSpecContainerSpecSecrets {
                file: Some(TaskSpecContainerSpecFile { name: Some(f.target.clone()), uid, gid, mode }),
                secret_id: id,
                secret_name: Some(name),
            }),
            Kind::Config => configs.push(TaskSpecContainerSpecConfigs {
                file: Some(TaskSpecContainerSpecFile1 { name: Some(f.target.clone()), uid, gid, mode }),
                config_id: id,
                config_name: Some(name),
                ..Default::default()
            }),
        }
    }
    (secrets, configs)
}

/// What exists on the swarm: name → ID.
type Existing = HashMap<String, String>;

impl SwarmEngine {
    /// Every secret or config of one kind on the swarm, with a label filter.
    async fn existing(&self, kind: Kind, label: Option<String>) -> Result<Existing> {
        let filters: HashMap<String, Vec<String>> = label.map(|l| ("label".to_string(), vec![l])).into_iter().collect();
        let docker = self.engine.docker();
        let mut out = Existing::new();
        match kind {
            Kind::Secret => {
                let options = ListSecretsOptionsBuilder::default().filters(&filters).build();
                for s in docker.list_secrets(Some(options)).await.map_err(|e| self.fail("list secrets", e))? {
                    out.insert(s.spec.and_then(|spec| spec.name).unwrap_or_default(), s.id.unwrap_or_default());
                }
            }
            Kind::Config => {
                let options = ListConfigsOptionsBuilder::default().filters(&filters).build();
                for c in docker.list_configs(Some(options)).await.map_err(|e| self.fail("list configs", e))? {
                    out.insert(c.spec.and_then(|spec| spec.name).unwrap_or_default(), c.id.unwrap_or_default());
                }
            }
        }
        Ok(out)
    }

    /// Checks that every external secret and config exists and every host
    /// file can be read; with `create`, also creates the stack's own objects
    /// that are missing (saying so on `create`'s progress). Returns the
    /// objects the service specs refer to.
    pub(super) async fn ensure_files(&self, stack: &Stack, create: Option<&dyn Progress>) -> Result<Objects> {
        // (kind, key) → (a service using it, what Swarm needs for it).
        let mut wanted_all: BTreeMap<(Kind, String), (String, Wanted)> = BTreeMap::new();
        for (service, svc) in &stack.services {
            for (kind, f) in svc.files() {
                if let std::collections::btree_map::Entry::Vacant(slot) = wanted_all.entry((kind, f.name.clone())) {
                    slot.insert((service.clone(), wanted(stack, service, kind, f)?));
                }
            }
        }
        let mut objects = Objects::new();
        let mut missing = Vec::new();
        for kind in [Kind::Secret, Kind::Config] {
            if !wanted_all.keys().any(|(k, _)| *k == kind) {
                continue;
            }
            let existing = self.existing(kind, None).await?;
            for ((_, key), (service, w)) in wanted_all.iter().filter(|((k, _), _)| *k == kind) {
                let name = &w.name;
                let id = match (existing.get(name), &w.data, create) {
                    (Some(id), _, _) => Some(id.clone()),
                    (None, None, _) => {
                        missing.push(format!(
                            "service `{service}`: {what} `{key}` is external, but no {what} `{name}` exists on the \
                             swarm; create it first (`docker {what} create {name} FILE`)",
                            what = kind.what()
                        ));
                        None
                    }
                    (None, Some(data), Some(progress)) => {
                        progress.step(&format!("creating {} {name}", kind.what()));
                        Some(self.create_file(stack, kind, name, data).await?)
                    }
                    (None, Some(_), None) => None,
                };
                objects.insert((kind, key.clone()), (name.clone(), id));
            }
        }
        crate::pipeline::refuse_problems(missing, &format!("environment `{}`", self.environment))?;
        Ok(objects)
    }

    async fn create_file(&self, stack: &Stack, kind: Kind, name: &str, data: &[u8]) -> Result<String> {
        let mut labels: HashMap<String, String> = self.engine.extra_labels.clone().into_iter().collect();
        labels.insert(LABEL_NAMESPACE.into(), stack.name.clone());
        labels.insert(LABEL_TARGET.into(), stack.name.clone());
        let data = Some(base64::engine::general_purpose::STANDARD.encode(data));
        let docker = self.engine.docker();
        let created = match kind {
            Kind::Secret => {
                let spec = SecretSpec { name: Some(name.into()), labels: Some(labels), data, ..Default::default() };
                docker.create_secret(spec).await
            }
            Kind::Config => {
                let spec = ConfigSpec { name: Some(name.into()), labels: Some(labels), data, ..Default::default() };
                docker.create_config(spec).await
            }
        };
        created.map(|r| r.id).map_err(|e| self.fail(&format!("create {} {name}", kind.what()), e))
    }

    /// Removes the target's own secrets and configs that none of its
    /// services refers to any more (after a deploy, its rollback, or
    /// `down`). One still held by a stopping task is left for next time.
    pub(super) async fn prune_files(&self, target: &str, progress: &dyn Progress) -> Result<()> {
        let mut used: HashSet<String> = HashSet::new();
        for s in self.services(target).await? {
            let container = s.spec.and_then(|spec| spec.task_template).and_then(|t| t.container_spec);
            for c in container.into_iter() {
                used.extend(c.secrets.unwrap_or_default().into_iter().filter_map(|r| r.secret_id));
                used.extend(c.configs.unwrap_or_default().into_iter().filter_map(|r| r.config_id));
            }
        }
        for kind in [Kind::Secret, Kind::Config] {
            for (name, id) in self.existing(kind, Some(format!("{LABEL_TARGET}={target}"))).await? {
                if used.contains(&id) {
                    continue;
                }
                progress.step(&format!("removing unused {} {name}", kind.what()));
                let docker = self.engine.docker();
                let removed = match kind {
                    Kind::Secret => docker.delete_secret(&id).await,
                    Kind::Config => docker.delete_config(&id).await,
                };
                match removed {
                    Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {}
                    Err(e) => progress.step(&format!("  left {name} in place for now: {e}")),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(text: &str) -> Stack {
        crate::descriptor::compose::test_stack(text, "shop")
    }

    #[test]
    fn own_objects_are_named_after_their_content_and_external_ones_keep_their_name() {
        let s = stack(
            "services:\n  web:\n    image: app:1\n    secrets: [tls, {source: token, target: tok, mode: 0400}]\n    \
             configs: [{source: motd, target: /etc/motd}]\nsecrets:\n  tls: {external: true, name: prod-tls}\n  \
             token: {external: true}\nconfigs:\n  motd: {content: hello}\n",
        );
        let web = &s.services["web"];
        let tls = wanted(&s, "web", Kind::Secret, &web.secrets[0]).unwrap();
        assert_eq!(tls, Wanted { name: "prod-tls".into(), data: None });
        let motd = wanted(&s, "web", Kind::Config, &web.configs[0]).unwrap();
        assert_eq!(motd.data.as_deref(), Some(&b"hello"[..]));
        assert_eq!(motd.name, format!("shop_motd_{}", &hex::encode(Sha256::digest(b"hello"))[..10]));
        let mut objects = Objects::new();
        objects.insert((Kind::Secret, "tls".into()), ("prod-tls".into(), Some("id-tls".into())));
        let (secrets, configs) = references(web, &objects);
        assert_eq!(secrets[0].secret_id.as_deref(), Some("id-tls"));
        let file = secrets[0].file.as_ref().unwrap();
        assert_eq!((file.name.as_deref(), file.mode), (Some("/run/secrets/tls"), Some(0o444)));
        assert_eq!(secrets[1].file.as_ref().unwrap().mode, Some(0o400));
        assert_eq!(configs[0].file.as_ref().unwrap().name.as_deref(), Some("/etc/motd"));
        // New content, new name: Swarm never changes an object's data.
        let changed = stack(
            "services:\n  web:\n    image: app:1\n    configs: [{source: motd, target: /etc/motd}]\n\
             configs:\n  motd: {content: bye}\n",
        );
        assert_ne!(names_for_hash(&changed, "web", &changed.services["web"]), vec![motd.name]);
    }

    #[test]
    fn long_names_fit_swarm_and_an_unreadable_file_names_the_service() {
        let key = "k".repeat(80);
        let s = stack(&format!(
            "services:\n  web:\n    image: app:1\n    configs: [{key}]\nconfigs:\n  {key}: {{content: x}}\n"
        ));
        let w = wanted(&s, "web", Kind::Config, &s.services["web"].configs[0]).unwrap();
        assert_eq!(w.name.len(), NAME_LIMIT);
        let gone = stack(
            "services:\n  web:\n    image: app:1\n    secrets: [cert]\nsecrets:\n  cert: {file: /nonexistent/cert.pem}\n",
        );
        let err = wanted(&gone, "web", Kind::Secret, &gone.services["web"].secrets[0]).unwrap_err().to_string();
        assert!(err.contains("service `web`: secret `cert`") && err.contains("/nonexistent/cert.pem"), "{err}");
    }
}
