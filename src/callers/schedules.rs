//! `dockmaster schedules`: what `serve` will run, and when; what it ran
//! last, and how that ended.

use std::io::Write;

use chrono::Utc;
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::config::Config;
use crate::error::Result;
use crate::schedule::run::last_run;

#[derive(Serialize)]
struct Row {
    name: String,
    cron: String,
    timezone: String,
    descriptor: String,
    environment: String,
    user: String,
    policy: String,
    next: Vec<String>,
    last_run: Option<String>,
    last_verdict: Option<String>,
}

/// Prints the schedules; exit 0.
pub fn run(config: &Config, next: usize, output: OutputFormat) -> Result<i32> {
    let mut rows = Vec::new();
    for job in &config.schedules {
        let tz = job.timezone()?;
        let mut times = Vec::new();
        let mut at = Utc::now();
        for _ in 0..next.max(1) {
            let Some(t) = job.next_after(at)? else { break };
            times.push(t.with_timezone(&tz).to_rfc3339());
            at = t;
        }
        let last = last_run(config, &job.name);
        rows.push(Row {
            name: job.name.clone(),
            cron: job.cron.clone().unwrap_or_default(),
            timezone: tz.name().to_string(),
            descriptor: job.descriptor.clone(),
            environment: job.environment.clone(),
            user: job.user.clone(),
            policy: format!("{:?}", job.policy).to_lowercase().replace("ifchanged", "if-changed"),
            next: times,
            last_run: last.as_ref().map(|r| crate::audit::timestamp(r.started)),
            last_verdict: last.as_ref().map(|r| format!("{} (exit {})", r.verdict, r.exit_code)),
        });
    }
    let text = match output {
        OutputFormat::Json => serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n",
        OutputFormat::Text if rows.is_empty() => "no schedules configured\n".to_string(),
        OutputFormat::Text => {
            let mut out = String::new();
            for r in &rows {
                out.push_str(&format!(
                    "{}: `{}` ({}) {} {} in `{}` as {}\n  next: {}\n  last: {}\n",
                    r.name,
                    r.cron,
                    r.timezone,
                    r.policy,
                    r.descriptor,
                    r.environment,
                    r.user,
                    r.next.join(", "),
                    match (&r.last_run, &r.last_verdict) {
                        (Some(at), Some(v)) => format!("{at}, {v}"),
                        _ => "never".into(),
                    }
                ));
            }
            out
        }
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(0)
}
