//! One deploy at a time per target, across processes.
//!
//! A CLI run, a Rundeck step and a cron job must not deploy the same target
//! at once. Each target has a lock file in the lock folder; the holder
//! keeps an exclusive OS lock on it (released by the kernel when the
//! process dies, so a crash never leaves a stale lock) and writes who holds
//! it, so the one that waits can say "in progress by Y since T".

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Who holds a target's lock, as written into the lock file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Holder {
    /// Who asked for the deploy.
    pub who: String,
    /// The action (`deploy`, `down`).
    pub action: String,
    /// The host the holding process runs on.
    #[serde(default)]
    pub host: String,
    /// The holding process.
    pub pid: u32,
    /// Seconds since the Unix epoch when the lock was taken.
    pub since: u64,
}

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct TargetLock {
    held: Held,
}

/// What holds the lock: a flock file on this host, or a PostgreSQL
/// session shared by the fleet (`state.url`).
#[derive(Debug)]
enum Held {
    File { file: File, path: PathBuf },
    Postgres(Box<crate::state::lock::PgLock>),
}

impl TargetLock {
    /// Takes the lock of `target` in `dir`, waiting up to `wait` for another
    /// holder to finish. Fails with [`Error::Busy`] (exit 6) naming the
    /// holder when the wait runs out.
    pub fn acquire(dir: &Path, target: &str, holder: &Holder, wait: Duration) -> Result<TargetLock> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Usage(format!("lock folder {}: cannot create it: {e} (set `lock_dir` in the config)", dir.display()))
        })?;
        let path = dir.join(format!("{target}.lock"));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::Usage(format!("lock file {}: cannot open it: {e}", path.display())))?;
        let deadline = Instant::now() + wait;
        let mut announced = false;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if Instant::now() >= deadline {
                        return Err(Error::Busy(busy_message(target, &read_holder(&mut file))));
                    }
                    if !announced {
                        tracing::info!(
                            "{}; waiting up to {}s",
                            busy_message(target, &read_holder(&mut file)),
                            wait.as_secs()
                        );
                        announced = true;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::Usage(format!("lock file {}: cannot lock it: {e}", path.display())))
                }
            }
        }
        let text = serde_json::to_string(holder).unwrap_or_default();
        let written =
            file.set_len(0).and_then(|_| file.seek(SeekFrom::Start(0))).and_then(|_| file.write_all(text.as_bytes()));
        if let Err(e) = written {
            tracing::warn!("lock file {}: cannot record the holder: {e}", path.display());
        }
        Ok(TargetLock { held: Held::File { file, path } })
    }

    /// Takes `target`'s lock where the configuration keeps locks: the
    /// fleet's PostgreSQL database when `state.url` names one, else a
    /// flock file in `lock_dir`.
    pub fn acquire_for(
        config: &crate::config::Config,
        target: &str,
        holder: &Holder,
        wait: Duration,
    ) -> Result<TargetLock> {
        match crate::state::postgres(config)? {
            Some(pg) => Ok(TargetLock {
                held: Held::Postgres(Box::new(crate::state::lock::PgLock::acquire(&pg, target, holder, wait)?)),
            }),
            None => TargetLock::acquire(&config.lock_dir(), target, holder, wait),
        }
    }

    /// Where the lock lives, for messages.
    pub fn place(&self) -> String {
        match &self.held {
            Held::File { path, .. } => path.display().to_string(),
            Held::Postgres(lock) => format!("{lock:?}"),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Held::File { file, .. } = self {
            // Clear the holder first so nobody reads a stale name, then unlock.
            let _ = file.set_len(0);
            let _ = file.unlock();
        }
    }
}

/// The holder recorded in a lock file, if it can be read.
fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// "deploy of T in progress by WHO on HOST (pid P) since WHEN": what the
/// one that waits is told.
pub fn busy_message(target: &str, holder: &Option<Holder>) -> String {
    match holder {
        Some(h) => {
            let ago = now_secs().saturating_sub(h.since);
            let host = if h.host.is_empty() { String::new() } else { format!(" on {}", h.host) };
            format!(
                "{} of {target} in progress by {}{host} (pid {}) since {} ({ago}s ago); try again when it has finished",
                h.action,
                h.who,
                h.pid,
                format_utc(h.since)
            )
        }
        None => format!("a deploy of {target} is in progress; try again when it has finished"),
    }
}

/// This host's name, for lock holders and audit records: where a
/// request ran, in a fleet.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for epoch seconds (civil-from-days, proleptic
/// Gregorian), so messages need no date library.
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(who: &str) -> Holder {
        Holder { who: who.into(), action: "deploy".into(), host: "ci".into(), pid: 42, since: now_secs() }
    }

    #[test]
    fn a_second_holder_waits_then_is_told_who_holds_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let first = TargetLock::acquire(dir.path(), "shop", &holder("alice"), Duration::ZERO).unwrap();
        let err = TargetLock::acquire(dir.path(), "shop", &holder("bob"), Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, Error::Busy(_)));
        assert!(err.to_string().contains("deploy of shop in progress by alice"), "{err}");
        // Another target is independent.
        let _other = TargetLock::acquire(dir.path(), "blog", &holder("bob"), Duration::ZERO).unwrap();
        drop(first);
        TargetLock::acquire(dir.path(), "shop", &holder("bob"), Duration::ZERO).unwrap();
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(1_795_305_600), "2026-11-22T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
    }
}
