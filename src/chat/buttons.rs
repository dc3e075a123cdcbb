//! The buttons a chat report ends with, the same on every platform that
//! draws them (Slack's Block Kit, Discord's message components): each
//! stands for a command, and pressing it runs that command as the person
//! who pressed it, through identity, access and audit.

use crate::config::Config;
use crate::request::{Action, Outcome};

use super::command::{Command, Verb};
use super::Reply;

/// How a button looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A destructive or undoing action (red).
    Danger,
    /// The action the message is waiting for (green or blue).
    Primary,
    /// Anything else.
    Plain,
}

/// One button: its label and the command it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    /// What it says.
    pub label: &'static str,
    /// `rollback`, `approve` or `logs` (a status whose answer is the
    /// services' log lines, for the presser alone).
    pub verb: &'static str,
    /// The descriptor reference.
    pub reference: String,
    /// The environment.
    pub environment: String,
    /// How it looks.
    pub style: Style,
}

/// The buttons for a report: **Roll back** on a failed deploy or
/// rollback, **Approve** on a plan whose structural change needs an
/// approval in its environment, **Show logs** on any report of containers.
pub fn buttons(config: &Config, outcome: &Outcome, command: &Command) -> Vec<Button> {
    let base = base_reference(&command.reference);
    let environment = command.environment.clone();
    let mut list = Vec::new();
    let failed = matches!(outcome.action, Action::Deploy | Action::Rollback) && outcome.exit_code() != 0;
    if failed {
        let reference = base.clone();
        list.push(Button {
            label: "Roll back",
            verb: "rollback",
            reference,
            environment: environment.clone(),
            style: Style::Danger,
        });
    }
    let structural = outcome.classification.as_ref().is_some_and(|c| c.class == crate::policy::ChangeClass::Structural);
    if outcome.action == Action::Plan && structural && config.policy.approval_needed(&environment) {
        if let Some(version) = &outcome.descriptor.version {
            let reference = format!("{base}/{version}");
            list.push(Button {
                label: "Approve",
                verb: "approve",
                reference,
                environment: environment.clone(),
                style: Style::Primary,
            });
        }
    }
    if outcome.report.is_some() {
        list.push(Button { label: "Show logs", verb: "logs", reference: base, environment, style: Style::Plain });
    }
    list
}

/// The command a pressed button stands for, from the parts every platform
/// carries back (`verb` is a [`Button::verb`]), and whether its answer is
/// the services' log lines; `None` for a button dockmaster never draws.
/// The one mapping from a press to a command.
pub fn pressed(verb: &str, reference: &str, environment: &str) -> Option<(Command, bool)> {
    let (verb, logs) = match verb {
        "rollback" => (Verb::Rollback, false),
        "approve" => (Verb::Approve, false),
        "logs" => (Verb::Status, true),
        _ => return None,
    };
    Some((Command { verb, reference: reference.to_string(), environment: environment.to_string() }, logs))
}

/// What a platform renders for a command's reply: for **Show logs**, the
/// services' log lines for the presser alone; for a report, the report and
/// the buttons it ends with; anything else as it is.
pub fn finish(config: &Config, reply: Reply, command: &Command, logs: bool) -> (Reply, Vec<Button>) {
    match reply {
        Reply::Outcome(outcome, _) if logs => {
            (Reply::Text { text: log_text(&outcome), error: false, private: true }, Vec::new())
        }
        Reply::Outcome(outcome, asker) => {
            let drawn = buttons(config, &outcome, command);
            (Reply::Outcome(outcome, asker), drawn)
        }
        other => (other, Vec::new()),
    }
}

/// `APPLICATION/RELEASE` of a reference that may end in a version.
fn base_reference(reference: &str) -> String {
    match crate::descriptor::DescriptorRef::parse_named(reference) {
        Ok(crate::descriptor::DescriptorRef::Named { application, release, .. }) => format!("{application}/{release}"),
        _ => reference.to_string(),
    }
}

/// The services' last log lines, for **Show logs**.
pub fn log_text(outcome: &Outcome) -> String {
    let Some(report) = &outcome.report else { return "No containers run for this target.".into() };
    let mut text = String::new();
    for s in &report.services {
        if s.log_tail.is_empty() {
            continue;
        }
        text.push_str(&format!("*{}* ({}):\n```\n", s.name, s.status.as_str()));
        for line in &s.log_tail {
            text.push_str(&line.replace("```", "'''"));
            text.push('\n');
        }
        text.push_str("```\n");
    }
    if text.is_empty() {
        text = format!(
            "{}: no service has log lines to show (only failing services' logs are kept).",
            crate::report::chat::headline(outcome)
        );
    }
    text
}
