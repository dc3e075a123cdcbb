//! `dockmaster review`: classify a proposed descriptor against the one it
//! replaces and check it against the policy, changing nothing.
//!
//! Made for CI: a merge request that only bumps an image exits 0 and can
//! be merged by a bot; anything else exits 4 with the reasons, for a
//! person. No engine and no directory are needed.

use std::io::Write;

use serde::Serialize;

use crate::cli::{OutputFormat, ReviewArgs};
use crate::config::Config;
use crate::descriptor::{compose, Descriptor, DescriptorRef};
use crate::error::{Result, EXIT_DENIED};
use crate::policy::{self, ChangeClass, Classification};

/// What `review` found.
#[derive(Debug, Serialize)]
pub struct Review {
    /// The proposed file.
    pub file: String,
    /// The descriptor it was compared with, and its version.
    pub against: String,
    /// The version of `against`, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against_version: Option<String>,
    /// The environment whose policy was applied.
    pub environment: String,
    /// The classification.
    #[serde(flatten)]
    pub classification: Classification,
    /// Policy violations, each naming service, key and rule.
    pub violations: Vec<String>,
    /// `self-service`, `needs-approval` or `refused`.
    pub verdict: ReviewVerdict,
}

/// What a review decides about a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReviewVerdict {
    /// An image-only change within the policy: anyone who may deploy may.
    SelfService,
    /// A structural change within the policy: needs an approval.
    NeedsApproval,
    /// The descriptor breaks the policy.
    Refused,
}

/// Runs `review` and returns the exit code: 0 only for self-service.
pub async fn run(config: &Config, args: &ReviewArgs) -> Result<i32> {
    let review = review(config, args).await?;
    let text = match args.output {
        OutputFormat::Json => serde_json::to_string_pretty(&review).unwrap_or_default() + "\n",
        OutputFormat::Text => render(&review),
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(if review.verdict == ReviewVerdict::SelfService { 0 } else { EXIT_DENIED })
}

/// Builds the review without printing it.
pub async fn review(config: &Config, args: &ReviewArgs) -> Result<Review> {
    config.check_environment(&args.env)?;
    let against = DescriptorRef::parse(&args.against)?;
    let old = crate::pipeline::resolve(config, &against).await?;
    let project = against.default_project();
    let old_stack = compose::load(&old, &project)?;
    let file = DescriptorRef::File(args.file.clone());
    let new = Descriptor::read(file, None, &args.file)?;
    let mut new_stack = compose::load(&new, &project)?;
    // Compared as the same target, whatever `name:` says.
    new_stack.name.clone_from(&old_stack.name);
    let classification = policy::classify_against(&new_stack, &old_stack);
    let scope = crate::pipeline::scope(&against);
    let violations: Vec<String> =
        policy::check(&config.policy, &new_stack, &scope, &args.env).iter().map(ToString::to_string).collect();
    let verdict = if !violations.is_empty() {
        ReviewVerdict::Refused
    } else if classification.class == ChangeClass::Structural {
        ReviewVerdict::NeedsApproval
    } else {
        ReviewVerdict::SelfService
    };
    Ok(Review {
        file: args.file.display().to_string(),
        against: against.to_string(),
        against_version: old.version,
        environment: args.env.clone(),
        classification,
        violations,
        verdict,
    })
}

/// The review for people.
pub fn render(r: &Review) -> String {
    let mut out = String::new();
    let version = r.against_version.as_deref().map(|v| format!(" (version {v})")).unwrap_or_default();
    out.push_str(&format!("review of {} against {}{version} in `{}`\n", r.file, r.against, r.environment));
    out.push_str(&format!("change: {}\n", r.classification.class.as_str()));
    for (title, list) in
        [("images", &r.classification.images), ("structural differences", &r.classification.differences)]
    {
        if !list.is_empty() {
            out.push_str(&format!("{title}:\n"));
            for line in list {
                out.push_str(&format!("  - {line}\n"));
            }
        }
    }
    if !r.violations.is_empty() {
        out.push_str("policy violations:\n");
        for line in &r.violations {
            out.push_str(&format!("  - {line}\n"));
        }
    }
    let verdict = match r.verdict {
        ReviewVerdict::SelfService => "SELF-SERVICE: anyone who may deploy may deploy this",
        ReviewVerdict::NeedsApproval => {
            "NEEDS APPROVAL: a structural change; someone with the `approve` right must approve it"
        }
        ReviewVerdict::Refused => "REFUSED: the descriptor breaks the policy and cannot be deployed",
    };
    out.push_str(&format!("VERDICT: {verdict}\n"));
    out
}
