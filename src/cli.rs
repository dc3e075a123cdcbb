//! Command-line definitions: every flag, with its documentation beside it.
//!
//! `docs/commands.md` mirrors these (`tests/cli_docs.rs` fails when a
//! subcommand or long flag is missing there); every flag that has a configuration
//! counterpart can also be set through an environment variable, for cron
//! and containers.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Deploy Docker Compose descriptors safely, and know at once whether they
/// came up healthy.
#[derive(Debug, Parser)]
#[command(name = "dockmaster", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// Configuration file (YAML). Without one, dockmaster uses the local
    /// engine and the descriptor folder ./descriptors.
    #[arg(long, global = true, env = "DOCKMASTER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Root of the local descriptor folder
    /// (<root>/<application>/<release>/<version>.yml); overrides the config.
    #[arg(long, global = true, env = "DOCKMASTER_DESCRIPTORS", value_name = "DIR")]
    pub descriptors: Option<PathBuf>,

    /// Log in as this directory user (with the password from
    /// DOCKMASTER_PASSWORD). Needed when access rules are configured.
    #[arg(long, global = true, env = "DOCKMASTER_USER", value_name = "UID")]
    pub user: Option<String>,

    /// For cron: print nothing unless the command fails (exit code not 0);
    /// then print the report. No progress lines, no notes.
    #[arg(long, short = 'q', global = true, env = "DOCKMASTER_QUIET")]
    pub quiet: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deploy a descriptor and watch it until every service is healthy (exit 0)
    /// or one fails or the deadline passes (exit 1).
    Deploy(DeployArgs),
    /// Show what a deploy would change, and why, without changing anything.
    Plan(TargetArgs),
    /// Report the health of what runs now for a descriptor's target.
    Status(TargetArgs),
    /// Remove a target's containers and networks; volumes only with --volumes.
    Down(DownArgs),
    /// Print the normalised descriptor (what would be deployed), like
    /// `docker compose config`. Needs no engine.
    Config {
        /// APPLICATION/RELEASE[/VERSION] or a compose file.
        #[arg(value_name = "REF")]
        reference: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ConfigFormat::Yaml)]
        format: ConfigFormat,
        /// Project (target) name, overriding the descriptor's.
        #[arg(long, short = 'p', value_name = "NAME")]
        project: Option<String>,
        /// Activate a profile (repeatable); default: COMPOSE_PROFILES.
        #[arg(long = "profile", value_name = "NAME")]
        profiles: Vec<String>,
        /// Read variables from this file instead of the .env next to the
        /// descriptor.
        #[arg(long, value_name = "FILE")]
        env_file: Option<PathBuf>,
        /// Merge this file over the descriptor, like `docker compose -f`
        /// (repeatable, in order; relative paths inside start at the
        /// descriptor's folder).
        #[arg(long = "override", value_name = "FILE")]
        overrides: Vec<PathBuf>,
    },
    /// Print option lists for Rundeck jobs as JSON ([{"name","value","selected"}]):
    /// applications, the releases of one, or the versions of a release (newest
    /// first, the running one selected).
    Options {
        /// `applications`, `releases APPLICATION` or `versions APPLICATION RELEASE`.
        #[arg(value_name = "LIST", num_args = 1..=3, required = true)]
        what: Vec<String>,
        /// For `versions`: the environment whose running version is selected.
        #[arg(long, default_value = "default", env = "DOCKMASTER_ENV")]
        env: String,
    },
    /// Run the long-lived service: health (/healthz, /readyz) and Rundeck
    /// option lists (/options/...) over HTTP, until SIGINT/SIGTERM.
    Serve {
        /// Address to listen on; default: the config's serve.listen, else
        /// 127.0.0.1:8080.
        #[arg(long, value_name = "HOST:PORT", env = "DOCKMASTER_LISTEN")]
        listen: Option<String>,
    },
    /// Run as a Rundeck script step: read the request from RD_* variables
    /// (see docs/rundeck.md), log to stdout, print RUNDECK:DATA lines.
    Rundeck,
    /// Deploy the version before the one running now (or --to VERSION), with
    /// the same plan, watch, rollback and report as deploy.
    Rollback(RollbackArgs),
    /// Approve one exact descriptor (reference, version and digest) for an
    /// environment, so people who may only deploy image changes may deploy
    /// its structural change. Needs the `approve` right.
    Approve(ApproveArgs),
    /// Classify FILE against the descriptor REF (image-only or structural)
    /// and check it against the policy, without deploying. Exit 0 only when
    /// the change is self-service: for CI pipelines that auto-merge image
    /// bumps.
    Review(ReviewArgs),
    /// Read the audit trail: who did what, when, from where, and how it
    /// ended. Newest first.
    History(HistoryArgs),
    /// Publish a compose fragment to the registry: a new version of every
    /// application × release named (for build servers).
    Publish {
        /// The fragment (a compose file with the services just built).
        #[arg(value_name = "FRAGMENT")]
        file: PathBuf,
        /// An application to publish to (repeatable).
        #[arg(long = "application", required = true, value_name = "NAME")]
        applications: Vec<String>,
        /// A release to publish to (repeatable).
        #[arg(long = "release", required = true, value_name = "NAME")]
        releases: Vec<String>,
        /// The registry; default: the config's registry.url. The token comes
        /// from DOCKMASTER_REGISTRY_TOKEN only, never a flag.
        #[arg(long, env = "DOCKMASTER_REGISTRY", value_name = "URL")]
        registry: Option<String>,
        /// Refuse (exit 3, nothing published) when a new version would
        /// reference a service, container, volume or network no fragment
        /// defines, instead of publishing it with warnings.
        #[arg(long)]
        strict: bool,
    },
    /// Exit 0 when a running `serve` answers /healthz: the container
    /// image's HEALTHCHECK (it has no curl).
    Healthcheck {
        /// The address `serve` listens on; default: DOCKMASTER_LISTEN, the
        /// config's serve.listen, else 127.0.0.1:8080.
        #[arg(long, value_name = "HOST:PORT")]
        address: Option<String>,
    },
    /// List the configured schedules with their next run times, and each
    /// one's last run and verdict from the audit trail.
    Schedules {
        /// How many next run times to show per schedule.
        #[arg(long, default_value_t = 1, value_name = "N")]
        next: usize,
        /// Report format.
        #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// The state backend: check it, or copy a host's SQLite state into the
    /// fleet's PostgreSQL database (see docs/fleet.md).
    State {
        /// What to do.
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Print the shell completion script for SHELL on stdout.
    ///
    /// Generated from these very definitions, so it never falls behind a new
    /// command or flag: `dockmaster completions bash >
    /// /etc/bash_completion.d/dockmaster`. Reads no configuration and needs
    /// no engine.
    Completions {
        /// The shell to complete in.
        #[arg(value_name = "SHELL", value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout.
    ///
    /// Generated from these very definitions, as `--help` is, so it always
    /// matches the binary: `dockmaster man >
    /// /usr/local/share/man/man1/dockmaster.1`. Reads no configuration and
    /// needs no engine.
    Man,
}

/// Flags of `approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// The version to approve (the same as writing REF/VERSION).
    #[arg(value_name = "VERSION")]
    pub version: Option<String>,
}

/// Flags of `review`.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The proposed descriptor (a compose file).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// The descriptor it replaces: APPLICATION/RELEASE[/VERSION] or a file.
    #[arg(long, value_name = "REF")]
    pub against: String,

    /// The environment whose policy applies.
    #[arg(long, default_value = "default", env = "DOCKMASTER_ENV")]
    pub env: String,

    /// Report format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Flags of `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this descriptor's target: APPLICATION/RELEASE or a file.
    #[arg(value_name = "REF")]
    pub reference: Option<String>,

    /// Only records since then: a duration back from now (`2h`, `7d`) or a
    /// time (`2026-11-01`, `2026-11-01T08:00:00Z`).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,

    /// Only requests by this user.
    #[arg(long = "by", value_name = "UID")]
    pub by: Option<String>,

    /// At most this many records.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub limit: usize,

    /// Check the trail's hash chain instead of listing: exit 0 when every
    /// record is as it was written, 1 naming the first record that was
    /// changed, removed or slipped in.
    #[arg(long)]
    pub verify: bool,

    /// Project (target) name, when REF's is overridden.
    #[arg(long, short = 'p', value_name = "NAME")]
    pub project: Option<String>,

    /// The environment of REF's target.
    #[arg(long, default_value = "default", env = "DOCKMASTER_ENV")]
    pub env: String,

    /// Report format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Which descriptor and target a command acts on.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// APPLICATION/RELEASE[/VERSION] from the descriptor folder (no version =
    /// the latest), or a path to a compose file (.yml/.yaml).
    #[arg(value_name = "REF")]
    pub reference: String,

    /// The environment to act on: `default`, or one named under
    /// `environments` in the configuration.
    #[arg(long, default_value = "default", env = "DOCKMASTER_ENV")]
    pub env: String,

    /// Project (target) name of a compose file, overriding its `name:`.
    /// A named descriptor always deploys to its own target: there `-p` is
    /// refused unless it names that target (see docs/access.md).
    #[arg(long, short = 'p', value_name = "NAME")]
    pub project: Option<String>,

    /// Take over engine objects of the target that carry no dockmaster
    /// owner labels (made by an earlier version, or by hand). Needs the
    /// `admin` right under access rules.
    #[arg(long)]
    pub adopt: bool,

    /// Report format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text, env = "DOCKMASTER_OUTPUT")]
    pub output: OutputFormat,

    /// Activate a profile (repeatable); default: COMPOSE_PROFILES.
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,

    /// Read variables from this file instead of the .env next to the
    /// descriptor.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,

    /// Merge this file over the descriptor (after the environment's own
    /// override files), like `docker compose -f` (repeatable, in order).
    #[arg(long = "override", value_name = "FILE")]
    pub overrides: Vec<PathBuf>,
}

/// Flags of `deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// How long to wait for every service to settle: 90s, 2m, 1m30s.
    /// Default: the config's deploy.timeout, else 120s.
    #[arg(long, value_name = "DURATION", env = "DOCKMASTER_TIMEOUT")]
    pub timeout: Option<String>,

    /// How long a service without a healthcheck must run without restarting
    /// to count as running. Default: deploy.stability_window, else 3s.
    #[arg(long, value_name = "DURATION")]
    pub stability_window: Option<String>,

    /// Rebuild images that have a build section even when they exist.
    #[arg(long)]
    pub build: bool,

    /// How long to wait while another deploy of the same target runs, then
    /// give up with exit 6. Default: deploy.lock_wait, else 60s.
    #[arg(long, value_name = "DURATION", env = "DOCKMASTER_LOCK_WAIT")]
    pub lock_wait: Option<String>,

    /// Leave a failed deploy in place instead of putting the previous
    /// containers back, for debugging.
    #[arg(long)]
    pub no_rollback: bool,

    /// Recreate every container, even those whose configuration and image
    /// have not changed (like `docker compose up --force-recreate`).
    #[arg(long)]
    pub force_recreate: bool,

    /// Give recreated containers new anonymous volumes instead of the
    /// previous container's (like `docker compose up --renew-anon-volumes`):
    /// the old anonymous volumes and their data are removed.
    #[arg(long, short = 'V')]
    pub renew_anon_volumes: bool,

    /// How many services to create and start at once. Default:
    /// deploy.parallelism, else 32.
    #[arg(long, value_name = "N", env = "DOCKMASTER_PARALLELISM")]
    pub parallelism: Option<usize>,
}

/// Flags of `rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub deploy: DeployArgs,

    /// The version to go back to; default: the one before the version the
    /// target's containers were deployed from.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
}

/// Flags of `down`.
#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Remove the target's named volumes too. Their data is lost.
    #[arg(long)]
    pub volumes: bool,
}

/// Formats of `dockmaster config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConfigFormat {
    /// YAML, like `docker compose config`.
    Yaml,
    /// JSON.
    Json,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A table and a verdict line, for people.
    Text,
    /// One JSON object, for scripts (shape in docs/commands.md).
    Json,
}

/// `dockmaster state …`.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Check that the configured state backend answers and its schemas are
    /// up to date (exit 0), or say why not (exit 5 when unreachable).
    Check,
    /// Copy every audit record (keeping the hash chain), approval and
    /// registry version from one backend into another, empty one, then
    /// verify the copy. Nothing is written unless all of it can be.
    Migrate {
        /// Where to copy from: sqlite:FOLDER (a state folder holding
        /// audit.db and registry.db) or postgres://USER@HOST:PORT/DATABASE.
        /// Default: this configuration's state.
        #[arg(long, value_name = "SOURCE")]
        from: Option<String>,
        /// Where to copy to, in the same forms. The password comes from the
        /// variable `state.password_env` names, never from a flag.
        /// Default: this configuration's state.
        #[arg(long, value_name = "TARGET")]
        to: Option<String>,
    },
}
