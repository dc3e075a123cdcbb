//! The files a load reads besides the descriptor itself: included,
//! extended and override files, `.env`/`--env-file` and `env_file`s.
//!
//! A descriptor's digest is what an approval binds and what the audit trail
//! records as "what was deployed". If it covered the main file only, an
//! edit to an included file would deploy under an old approval, so every
//! file the loader reads is recorded here with its SHA-256, and
//! [`crate::descriptor::Descriptor::digest_with`] folds them in. Secret and
//! config files are not recorded: they are mounted, not read, and rotating
//! one is not a change to approve.
//!
//! The loader is synchronous and reads files from many places deep in its
//! steps; a recorder local to the thread (set for the length of one load by
//! [`recording`]) keeps those steps free of bookkeeping arguments.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

thread_local! {
    static READS: RefCell<Option<BTreeMap<PathBuf, String>>> = const { RefCell::new(None) };
}

/// Notes that the loader read `path` with content `text`.
pub(crate) fn record(path: &Path, text: &str) {
    READS.with(|reads| {
        if let Some(map) = reads.borrow_mut().as_mut() {
            map.insert(path.to_path_buf(), hex::encode(Sha256::digest(text.as_bytes())));
        }
    });
}

/// Runs `load`, returning what it gave and every file it read (path and
/// hex SHA-256). A load inside a load keeps its own record.
pub(crate) fn recording<T>(load: impl FnOnce() -> T) -> (T, BTreeMap<PathBuf, String>) {
    let outer = READS.with(|reads| reads.borrow_mut().replace(BTreeMap::new()));
    let result = load();
    let read = READS.with(|reads| std::mem::replace(&mut *reads.borrow_mut(), outer)).unwrap_or_default();
    (result, read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_inside_a_recording_are_kept_and_nested_ones_stay_apart() {
        record(Path::new("/outside"), "x");
        let ((), outer) = recording(|| {
            record(Path::new("/a"), "one");
            let ((), inner) = recording(|| record(Path::new("/b"), "two"));
            assert_eq!(inner.keys().collect::<Vec<_>>(), [Path::new("/b")]);
            record(Path::new("/c"), "three");
        });
        assert_eq!(outer.keys().collect::<Vec<_>>(), [Path::new("/a"), Path::new("/c")]);
        assert_eq!(outer[Path::new("/a")], hex::encode(Sha256::digest(b"one")));
    }
}
