//! `post_start` and `pre_stop`: commands run inside a service's container
//! right after it starts and right before it is stopped, the way Compose
//! runs them (an exec, attached, that must exit 0).

use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use futures_util::StreamExt;

use super::DockerEngine;
use crate::error::{Error, Result};
use crate::stack::Hook;

/// The exec request for one hook.
pub(crate) fn exec_config(hook: &Hook) -> ExecConfig {
    let env: Vec<String> =
        hook.environment.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}"))).collect();
    ExecConfig {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(hook.command.clone()),
        env: super::spec::non_empty(env),
        privileged: hook.privileged.then_some(true),
        user: hook.user.clone(),
        working_dir: hook.working_dir.clone(),
        ..Default::default()
    }
}

impl DockerEngine {
    /// Runs `hooks` (`what`: `post_start` or `pre_stop`) in container `id`,
    /// one after the other; the first that cannot run or exits non-zero
    /// fails with its command, exit code and last output line.
    pub async fn run_hooks(&self, id: &str, container: &str, what: &str, hooks: &[Hook]) -> Result<()> {
        for hook in hooks {
            let command = hook.command.join(" ");
            let doing = format!("run {what} hook `{command}` in {container}");
            let created = self.docker.create_exec(id, exec_config(hook)).await.map_err(|e| self.fail(&doing, e))?;
            let started = self
                .docker
                .start_exec(&created.id, Some(StartExecOptions { detach: false, ..Default::default() }))
                .await
                .map_err(|e| self.fail(&doing, e))?;
            let mut last = String::new();
            if let StartExecResults::Attached { mut output, .. } = started {
                while let Some(chunk) = output.next().await {
                    let text = chunk.map_err(|e| self.fail(&doing, e))?.to_string();
                    if let Some(line) = text.lines().rev().find(|l| !l.trim().is_empty()) {
                        last = line.trim().to_string();
                    }
                }
            }
            let inspected = self.docker.inspect_exec(&created.id).await.map_err(|e| self.fail(&doing, e))?;
            match inspected.exit_code {
                Some(0) | None => {}
                Some(code) => {
                    let said = if last.is_empty() { String::new() } else { format!(": {last}") };
                    return Err(Error::Engine(format!("{what} hook `{command}` in {container} exited {code}{said}")));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_reaches_the_exec_request() {
        let hook = Hook {
            command: vec!["sh".into(), "-c".into(), "echo hi".into()],
            user: Some("root".into()),
            privileged: true,
            working_dir: Some("/app".into()),
            environment: [("A".to_string(), Some("1".to_string())), ("UNSET".to_string(), None)].into_iter().collect(),
        };
        let exec = exec_config(&hook);
        assert_eq!(exec.cmd, Some(hook.command.clone()));
        assert_eq!(exec.env, Some(vec!["A=1".to_string()]));
        assert_eq!(
            (exec.privileged, exec.user.as_deref(), exec.working_dir.as_deref()),
            (Some(true), Some("root"), Some("/app"))
        );
        assert_eq!((exec.attach_stdout, exec.attach_stderr), (Some(true), Some(true)));
    }
}
