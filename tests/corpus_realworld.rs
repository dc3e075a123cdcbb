//! Conformance against the second, hidden Compose corpus
//! (`../shared/corpus/compose-realworld` from the repository root, beside
//! the first one that `tests/corpus.rs` reads): real-world files checked
//! with the corpus's own `compare.py` against Docker Compose's `config`.
//!
//! The corpus is not copied into the repository (nor is the first one):
//! CI checks it out beside it, so without it the test fails under CI and
//! prints a note elsewhere. Needs `python3` and no engine.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The corpus folder, if it is there.
fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/compose-realworld");
    let found = dir.join("compare.py").is_file() && dir.join("manifest.json").is_file();
    // A skipped conformance test in CI would hide breakage.
    assert!(found || !common::in_ci(), "CI is set but the corpus is missing at {}", dir.display());
    found.then(|| dir.canonicalize().unwrap_or(dir))
}

/// `(loaded, valid, matched, matched_of, rejected, invalid)` from
/// `corpus2: loaded X/Y valid, matched M/X, rejected R/Z invalid[, N panics]`.
fn summary(line: &str) -> Option<(u32, u32, u32, u32, u32, u32)> {
    let rest = line.strip_prefix("corpus2: loaded ")?;
    let numbers: Vec<u32> = rest
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().ok())
        .collect::<Option<_>>()?;
    if rest.contains("panics") {
        return None;
    }
    match numbers.as_slice() {
        [a, b, c, d, e, f] => Some((*a, *b, *c, *d, *e, *f)),
        _ => None,
    }
}

#[test]
fn the_summary_line_is_read_strictly() {
    assert_eq!(
        summary("corpus2: loaded 65/65 valid, matched 65/65, rejected 9/9 invalid"),
        Some((65, 65, 65, 65, 9, 9))
    );
    assert_eq!(
        summary("corpus2: loaded 54/65 valid, matched 54/54, rejected 9/9 invalid"),
        Some((54, 65, 54, 54, 9, 9))
    );
    assert_eq!(summary("corpus2: loaded 65/65 valid, matched 65/65, rejected 9/9 invalid, 1 panics"), None);
    assert_eq!(summary("something else"), None);
}

#[test]
fn the_realworld_corpus_loads_matches_and_refuses_as_compose_does() {
    let Some(dir) = corpus() else {
        println!("note: ../shared/corpus/compose-realworld not found; the second corpus test did not run");
        return;
    };
    let binary = env!("CARGO_BIN_EXE_dockmaster");
    let output = Command::new("python3")
        .arg(dir.join("compare.py"))
        .arg(binary)
        .current_dir(&dir)
        .output()
        .expect("python3 runs compare.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let failures: Vec<&str> =
        stdout.lines().filter(|l| !l.starts_with("pass ") && !l.starts_with("corpus2:")).collect();
    let last = stdout.lines().last().unwrap_or_default();
    let Some((loaded, valid, matched, matched_of, rejected, invalid)) = summary(last) else {
        panic!("compare.py did not end with its summary line:\n{stdout}\n{stderr}");
    };
    println!("{last}");
    assert!(
        loaded == valid && matched == loaded && matched_of == loaded && rejected == invalid,
        "{last}\n{}",
        failures.join("\n")
    );
    // Not trivially passing: the corpus has this many of each.
    assert!(valid >= 65 && invalid >= 9, "{last}");
    assert!(output.status.success(), "compare.py exited {:?}:\n{stdout}\n{stderr}", output.status.code());
}
