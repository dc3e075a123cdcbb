//! `dockmaster state check` and `dockmaster state migrate`: the operator's
//! view of the state backend.

use crate::cli::StateCommand;
use crate::config::Config;
use crate::error::Result;
use crate::state::migrate::{self, Place};

/// Runs one `state` subcommand; its exit code.
pub async fn run(config: &Config, command: &StateCommand) -> Result<i32> {
    let config = config.clone();
    let command = match command {
        StateCommand::Check => None,
        StateCommand::Migrate { from, to } => Some((from.clone(), to.clone())),
    };
    tokio::task::spawn_blocking(move || match command {
        None => check(&config),
        Some((from, to)) => {
            let from = Place::parse(from.as_deref(), &config)?;
            let to = Place::parse(to.as_deref(), &config)?;
            let mut out = std::io::stdout().lock();
            migrate::run(&from, &to, &mut out)?;
            Ok(0)
        }
    })
    .await
    .map_err(|e| crate::error::Error::Internal(format!("the state task failed: {e}")))?
}

/// Opens every store (creating or upgrading its schema) and says where
/// each lives.
fn check(config: &Config) -> Result<i32> {
    let audit = crate::audit::open(config)?;
    let registry = crate::state::Database::for_store(config, crate::registry::server::database(config))?;
    crate::registry::store::Store::open_in(registry.clone())?;
    let replay = crate::replay::ReplayCache::for_config(config)?;
    drop(replay);
    let locks = match crate::state::postgres(config)? {
        Some(pg) => format!("PostgreSQL advisory locks in {}", pg.shown()),
        None => format!("flock files in {}", config.lock_dir().display()),
    };
    println!("audit trail, history and approvals: {}", audit.database().shown());
    println!("registry: {}", registry.shown());
    println!("target locks: {locks}");
    println!("state: ok");
    Ok(0)
}
