//! [`Source`]: the one way a load reads a file besides the descriptor
//! itself, handed down the loader's steps as a value.
//!
//! It exists for three reasons, each a promise the loader makes:
//!
//! - A descriptor's digest is what an approval binds and what the audit
//!   trail records as "what was deployed". If it covered the main file
//!   only, an edit to an included file would deploy under an old approval,
//!   so every file read through a `Source` is recorded with its SHA-256,
//!   and [`crate::descriptor::Descriptor::digest_with`] folds them in.
//! - A confined load ([`super::LoadOptions::confine`]) may not read outside
//!   its folders: a `Source` refuses such a file before touching it, so an
//!   outside file that exists and one that does not are refused alike.
//! - A descriptor held in memory (the registry's) reads no file at all: its
//!   `Source` refuses every read with [`Denied::NoFiles`].
//!
//! Each load makes its own `Source` and passes it down explicitly (no
//! global, no value local to the thread), so two loads on one thread, even
//! one started from inside another, cannot see each other's access or
//! reads.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::inputs::{resolve, Access, Denied, ReadError};

/// Where one load may read files from ([`Access`]), and every file it read
/// (path and hex SHA-256), for the descriptor's digest.
///
/// The load is synchronous, so the record sits in a [`RefCell`]: the
/// loader's steps hold a shared `&Source` and still record what they read.
#[derive(Debug)]
pub(crate) struct Source {
    /// What this load may read.
    access: Access,
    /// Every file read so far, by path: its content's hex SHA-256.
    reads: RefCell<BTreeMap<PathBuf, String>>,
}

impl Source {
    /// A load from disk that may read any file the process can read.
    pub(crate) fn open() -> Source {
        Source::with(Access::Open)
    }

    /// A load from disk that may read only files under `roots` (symlinks
    /// resolved); an empty list allows nothing.
    pub(crate) fn confined(roots: &[PathBuf]) -> Source {
        Source::with(Access::under(roots))
    }

    /// A load of a descriptor held in memory: every read is refused with
    /// [`Denied::NoFiles`].
    pub(crate) fn in_memory() -> Source {
        Source::with(Access::Nothing)
    }

    fn with(access: Access) -> Source {
        Source { access, reads: RefCell::new(BTreeMap::new()) }
    }

    /// Whether this load may read `path` (or hand it to the engine, as a
    /// build context). Checked before the file is touched.
    pub(crate) fn check(&self, path: &Path) -> Result<(), Denied> {
        match &self.access {
            Access::Open => Ok(()),
            Access::Nothing => Err(Denied::NoFiles),
            Access::Under(roots) => {
                let real = resolve(path);
                if roots.iter().any(|root| real.starts_with(&root.canonical)) {
                    return Ok(());
                }
                let lexical = super::mounts::clean(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
                let looks_inside = roots.iter().any(|root| lexical.starts_with(&root.given));
                Err(Denied::Outside {
                    resolved: looks_inside.then_some(real),
                    roots: roots.iter().map(|root| root.given.clone()).collect(),
                })
            }
        }
    }

    /// Reads `path` as text if this load may, and records it. Under
    /// [`Access::Under`], the file opened is checked again once open (on
    /// Linux, through `/proc/self/fd`), so a symlink swapped in between
    /// does not get out either.
    pub(crate) fn read(&self, path: &Path) -> Result<String, ReadError> {
        self.check(path).map_err(ReadError::Denied)?;
        let text = match &self.access {
            Access::Under(roots) => {
                use std::io::Read as _;
                let mut file = std::fs::File::open(resolve(path)).map_err(ReadError::Io)?;
                opened_inside(&file, roots)?;
                let mut text = String::new();
                file.read_to_string(&mut text).map_err(ReadError::Io)?;
                text
            }
            _ => std::fs::read_to_string(path).map_err(ReadError::Io)?,
        };
        self.record(path, &text);
        Ok(text)
    }

    /// Notes that this load read `path` with content `text`.
    fn record(&self, path: &Path, text: &str) {
        self.reads.borrow_mut().insert(path.to_path_buf(), hex::encode(Sha256::digest(text.as_bytes())));
    }

    /// Every file this load read: path and hex SHA-256.
    pub(crate) fn into_reads(self) -> BTreeMap<PathBuf, String> {
        self.reads.into_inner()
    }
}

/// Checks that the file actually opened lies under one of `roots`.
#[cfg(target_os = "linux")]
fn opened_inside(file: &std::fs::File, roots: &[super::inputs::Root]) -> Result<(), ReadError> {
    use std::os::fd::AsRawFd as _;
    let Ok(real) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) else { return Ok(()) };
    if roots.iter().any(|root| real.starts_with(&root.canonical)) {
        return Ok(());
    }
    Err(ReadError::Denied(Denied::Outside {
        resolved: None,
        roots: roots.iter().map(|root| root.given.clone()).collect(),
    }))
}

#[cfg(not(target_os = "linux"))]
fn opened_inside(_file: &std::fs::File, _roots: &[super::inputs::Root]) -> Result<(), ReadError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_keeps_its_own_reads_and_a_nested_one_stays_apart() {
        let outer = Source::open();
        outer.record(Path::new("/a"), "one");
        let inner = Source::open();
        inner.record(Path::new("/b"), "two");
        assert_eq!(inner.into_reads().keys().collect::<Vec<_>>(), [Path::new("/b")]);
        outer.record(Path::new("/c"), "three");
        let outer = outer.into_reads();
        assert_eq!(outer.keys().collect::<Vec<_>>(), [Path::new("/a"), Path::new("/c")]);
        assert_eq!(outer[Path::new("/a")], hex::encode(Sha256::digest(b"one")));
    }

    #[test]
    fn sources_with_different_access_on_one_thread_do_not_influence_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let (app, shop) = (base.join("app"), base.join("shop"));
        std::fs::create_dir_all(&app).unwrap();
        std::fs::create_dir_all(&shop).unwrap();
        let (mine, theirs) = (app.join("app.env"), shop.join(".env"));
        std::fs::write(&mine, "A=1\n").unwrap();
        std::fs::write(&theirs, "PASSWORD=x\n").unwrap();
        // Three loads in flight at once, their reads interleaved.
        let confined = Source::confined(std::slice::from_ref(&app));
        let memory = Source::in_memory();
        let open = Source::open();
        assert!(matches!(memory.read(&mine), Err(ReadError::Denied(Denied::NoFiles))));
        assert_eq!(confined.read(&mine).unwrap(), "A=1\n");
        assert_eq!(open.read(&theirs).unwrap(), "PASSWORD=x\n");
        assert!(matches!(confined.read(&theirs), Err(ReadError::Denied(Denied::Outside { .. }))));
        assert_eq!(memory.check(&theirs), Err(Denied::NoFiles));
        assert_eq!(open.check(&mine), Ok(()));
        assert_eq!(confined.check(&mine), Ok(()));
        assert!(memory.into_reads().is_empty());
        assert_eq!(confined.into_reads().keys().collect::<Vec<_>>(), [mine.as_path()]);
        assert_eq!(open.into_reads().keys().collect::<Vec<_>>(), [theirs.as_path()]);
    }
}
