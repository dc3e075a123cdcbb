//! `dockmaster history`: reads the audit trail.
//!
//! Under access rules, a reader sees only the records of descriptors and
//! environments where they have the `history` right; without them,
//! everything (the file's permissions are then the only guard).

use std::io::Write;

use crate::audit::{self, Query, Record};
use crate::cli::{HistoryArgs, OutputFormat};
use crate::config::Config;
use crate::descriptor::{compose, DescriptorRef};
use crate::error::{Error, Result};
use crate::pipeline;

/// Runs `history` and returns the exit code.
pub async fn run(config: &Config, user: Option<&str>, args: &HistoryArgs) -> Result<i32> {
    config.check_environment(&args.env)?;
    let password =
        match user {
            Some(uid) => Some(crate::request::Secret(std::env::var("DOCKMASTER_PASSWORD").map_err(|_| {
                Error::Usage(format!("--user {uid}: set DOCKMASTER_PASSWORD to the directory password"))
            })?)),
            None => None,
        };
    let principal = pipeline::identify(config, user, password.as_ref(), false, &pipeline::Silent).await?;
    if args.verify {
        return verify(config);
    }
    let mut query = Query { user: args.by.clone(), limit: Some(args.limit), ..Query::default() };
    if let Some(since) = &args.since {
        query.since = Some(since_secs(since)?);
    }
    if let Some(reference) = &args.reference {
        query.target = Some(target_of(config, reference, args).await?);
    }
    if audit::existing(config)?.is_none() {
        return Err(Error::Usage(format!(
            "no audit trail at {} yet: nothing has been recorded (or `audit.database` points elsewhere)",
            audit::database(config).display()
        )));
    }
    let records = visible(config, principal.as_ref(), &query)?;
    let text = match args.output {
        OutputFormat::Json => serde_json::to_string_pretty(&records).unwrap_or_default() + "\n",
        OutputFormat::Text => render(&records),
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(0)
}

/// The read side of the audit trail, for every way in (the CLI's
/// `history`, chat's `history`): the records matching `query` that the
/// principal's `history` right covers (all of them without access rules),
/// without the recorded descriptors. A trail not written yet has none.
pub fn visible(config: &Config, principal: Option<&crate::identity::Principal>, query: &Query) -> Result<Vec<Record>> {
    let Some(store) = audit::existing(config)? else { return Ok(Vec::new()) };
    let mut records = store.query(query)?;
    if let (Some(access), Some(principal)) = (&config.access, principal) {
        records.retain(|r| {
            let scope = DescriptorRef::parse(&r.reference).map(|d| pipeline::scope(&d)).unwrap_or(r.reference.clone());
            crate::access::authorize(access, principal, "history", &scope, &r.environment).is_allowed()
        });
    }
    for r in &mut records {
        r.descriptor = None;
    }
    Ok(records)
}

/// The target a reference deploys to, as the pipeline names it: a named
/// descriptor's from its scope alone, a file's from `-p` or its `name:`.
async fn target_of(config: &Config, reference: &str, args: &HistoryArgs) -> Result<String> {
    let reference = DescriptorRef::parse(reference)?;
    let declared = match (&reference, &args.project) {
        (DescriptorRef::File(_), None) => pipeline::resolve(config, &reference)
            .await
            .ok()
            .and_then(|d| compose::load(&d, &reference.default_project()).ok())
            .map(|s| s.name),
        _ => None,
    };
    crate::target::of(&reference, &args.env, args.project.as_deref(), declared.as_deref())
}

/// `history --verify`: walks the hash chain; exit 0 intact, 1 broken.
fn verify(config: &Config) -> Result<i32> {
    let Some(store) = audit::existing(config)? else {
        return Err(Error::Usage(format!(
            "no audit trail at {} yet: nothing to verify",
            audit::database(config).display()
        )));
    };
    let path = store.database().shown();
    let mut out = std::io::stdout().lock();
    match store.verify()? {
        Ok(n) => {
            let _ = writeln!(out, "audit trail {path}: {n} chained records, every link holds");
            Ok(0)
        }
        Err((id, why)) => {
            let _ = writeln!(
                out,
                "audit trail {path}: BROKEN at record {id}: {why}; the records from there on cannot be trusted"
            );
            Ok(1)
        }
    }
}

/// `--since`: a duration back from now, or a time.
fn since_secs(text: &str) -> Result<u64> {
    if let Ok(d) = humantime::parse_duration(text) {
        return Ok(audit::now().saturating_sub(d.as_secs()));
    }
    let full = if text.len() == 10 { format!("{text}T00:00:00Z") } else { text.to_string() };
    humantime::parse_rfc3339_weak(&full)
        .or_else(|_| humantime::parse_rfc3339(&full))
        .map(|t| t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0))
        .map_err(|_| {
            Error::Usage(format!(
                "--since {text}: give a duration back from now (`2h`, `7d`) or a time (`2026-11-01`, \
                 `2026-11-01T08:00:00Z`)"
            ))
        })
}

/// The records as a table, newest first.
pub fn render(records: &[Record]) -> String {
    if records.is_empty() {
        return "no records\n".into();
    }
    let rows: Vec<[String; 9]> = records
        .iter()
        .map(|r| {
            let reference = match &r.version {
                Some(v) if !r.reference.ends_with(&format!("/{v}")) => format!("{} (v{v})", r.reference),
                _ => r.reference.clone(),
            };
            let mut verdict = r.verdict.clone();
            if r.rolled_back {
                verdict.push_str(", rolled back");
            }
            [
                audit::timestamp(r.started),
                r.user.clone(),
                origin(r),
                r.action.clone(),
                reference,
                r.environment.clone(),
                r.classification.clone().unwrap_or_else(|| "-".into()),
                verdict,
                r.exit_code.to_string(),
            ]
        })
        .collect();
    let header = ["TIME", "USER", "ORIGIN", "ACTION", "DESCRIPTOR", "ENV", "CHANGE", "VERDICT", "EXIT"];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `rundeck #42`, `cli`, `slack #ops`: where a request came from.
fn origin(r: &Record) -> String {
    match r.origin_detail.get("execution").and_then(|v| v.as_str()).filter(|e| !e.is_empty()) {
        Some(execution) => format!("{} #{execution}", r.origin),
        None => r.origin.clone(),
    }
}
