//! Malformed input of every kind must end in an error, never a panic: the
//! loader reads descriptors written by anyone allowed to publish one.
//!
//! Every test run feeds a fixed, seeded set of inputs. `scripts/fuzz-loader.sh`
//! runs the same generator for longer with fresh seeds
//! (`DOCKMASTER_FUZZ_SECONDS`, `DOCKMASTER_FUZZ_SEED`). An input that makes
//! the loader panic is written to `target/fuzz-crashes/` and fails the run;
//! copy it into `fuzz_regressions/` and every later run replays it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use super::tests::{load_text, KITCHEN_SINK};
use super::{load_with_options, LoadOptions};
use crate::descriptor::{Descriptor, DescriptorRef};

/// A tiny deterministic generator, so the inputs of a seed are the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Fragments of YAML and Compose the random soups are made of.
const PIECES: &[&str] = &[
    "services:",
    "\n",
    "  ",
    "    ",
    "- ",
    ": ",
    "web",
    "image",
    "ports",
    "\"80:80\"",
    "volumes",
    "./a:/b:ro,z",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a ",
    "*a",
    "<<: ",
    "!reset ",
    "!override ",
    "!custom ",
    "${",
    "$",
    "}",
    "null",
    "~",
    "'",
    "\"",
    "#",
    "healthcheck",
    "interval",
    "1m",
    "depends_on",
    "networks",
    "build",
    ".",
    "8000-8010:80",
    "::",
    "é",
    "\t",
    "-1",
    "1e999",
    "?",
    "|",
    ">",
    "%",
    "@",
    "`",
    "\u{0}",
    "\u{feff}",
    "extends",
    "service",
    "file",
    "include",
    "path",
    "secrets",
    "configs",
    "environment",
    "content",
    "external",
    "name",
    "db-data",
    "rel/./x/",
    "profiles",
    "cap_add",
    "devices",
    "/dev/x:/dev/y:rwm",
    "ulimits",
    "soft",
    "hard",
    "tmpfs",
    "/run:size=1m,mode=1777",
    "sysctls",
    "shm_size",
    "64m",
    "pid",
    "ipc",
    "service:web",
    "deploy",
    "replicas",
    "0",
    "scale",
    "net",
    "container:web",
    "volumes_from",
    "links",
    "version",
    "'2'",
    "name",
    "mode",
    "0440",
];

/// The inputs of one round: every prefix of a rich descriptor, deep
/// nesting, an alias bomb, random soups and random bytes, and mutations of
/// the rich descriptor.
fn round(rng: &mut XorShift, soups: usize) -> Vec<String> {
    let mut inputs: Vec<String> = Vec::new();
    for _ in 0..soups {
        let len = 1 + rng.below(60);
        inputs.push((0..len).map(|_| rng.pick(PIECES)).collect());
    }
    for _ in 0..soups / 6 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| (rng.next() & 0xff) as u8).collect();
        inputs.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    let sink: Vec<char> = KITCHEN_SINK.chars().collect();
    for _ in 0..soups / 6 {
        let mut chars = sink.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(chars.len());
            match rng.below(3) {
                0 => {
                    chars.remove(at);
                }
                1 => chars.insert(at, rng.pick(PIECES).chars().next().unwrap_or(' ')),
                _ => {
                    let piece: Vec<char> = rng.pick(PIECES).chars().collect();
                    chars.splice(at..at, piece);
                }
            }
        }
        inputs.push(chars.into_iter().collect());
    }
    inputs
}

/// The inputs every run sees, whatever the seed.
fn fixed_inputs() -> Vec<String> {
    let mut inputs: Vec<String> = Vec::new();
    for (i, _) in KITCHEN_SINK.char_indices().step_by(3) {
        inputs.push(KITCHEN_SINK[..i].to_string());
    }
    inputs.push("[".repeat(100_000));
    inputs.push(format!("{}1{}", "[".repeat(5000), "]".repeat(5000)));
    inputs.push(format!("services: {}1{}", "{a: ".repeat(3000), "}".repeat(3000)));
    inputs.push(format!("services: {}1", "!reset ".repeat(3000)));
    let mut block = String::from("services:\n");
    for depth in 1..300 {
        block.push_str(&" ".repeat(depth));
        block.push_str("a:\n");
    }
    inputs.push(block);
    inputs.push(format!("services:\n  a:\n    image: \"{}\"\n", "${A:-".repeat(5000)));
    inputs.push(format!("services:\n  a:\n    image: \"{}x{}\"\n", "${A:-".repeat(5000), "}".repeat(5000)));
    let mut chain = String::from("services:\n  s0: {image: x}\n");
    for i in 1..200 {
        chain.push_str(&format!("  s{i}: {{extends: s{}}}\n", i - 1));
    }
    inputs.push(chain);
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = i - 1;
        bomb.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
    }
    inputs.push(bomb);
    let regressions = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/descriptor/compose/fuzz_regressions");
    if let Ok(entries) = std::fs::read_dir(regressions) {
        let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "yaml")) {
            inputs.push(std::fs::read_to_string(file).unwrap_or_default());
        }
    }
    inputs
}

/// Loads `input` and says whether it panicked; a panicking input is kept.
fn survives(input: &str) -> bool {
    if catch_unwind(AssertUnwindSafe(|| load_text(input))).is_ok() {
        return true;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes");
    let _ = std::fs::create_dir_all(&dir);
    let name = format!("crash-{:016x}.yaml", fingerprint(input));
    let _ = std::fs::write(dir.join(&name), input);
    eprintln!("the loader panicked; input kept as target/fuzz-crashes/{name}");
    false
}

fn fingerprint(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[test]
fn malformed_input_never_panics() {
    let mut crashes = 0;
    for input in fixed_inputs() {
        crashes += usize::from(!survives(&input));
    }
    let seed = std::env::var("DOCKMASTER_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_cafe_f00d_d00d);
    let budget = std::env::var("DOCKMASTER_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).map(Duration::from_secs);
    let mut rng = XorShift(seed | 1);
    let started = Instant::now();
    let mut rounds = 0u64;
    loop {
        for input in round(&mut rng, 3000) {
            crashes += usize::from(!survives(&input));
        }
        rounds += 1;
        if budget.is_none_or(|b| started.elapsed() >= b) {
            break;
        }
    }
    if budget.is_some() {
        eprintln!("fuzz: seed {seed}, {rounds} rounds in {:?}", started.elapsed());
    }
    assert_eq!(crashes, 0, "inputs that made the loader panic are in target/fuzz-crashes/");
}

#[test]
fn files_that_include_and_extend_each_other_never_panic() {
    let dir = tempfile::tempdir().expect("a temp folder");
    let main = dir.path().join("compose.yaml");
    let other = dir.path().join("other.yaml");
    let mut rng = XorShift(0xfeed_beef_dead_c0de);
    let heads = [
        "include: [other.yaml]\n",
        "services:\n  web:\n    extends: {file: other.yaml, service: web}\n",
        "services:\n  web:\n    extends: web\n",
        "include:\n  - path: [other.yaml, compose.yaml]\n    env_file: other.yaml\n",
        "services:\n  web:\n    image: x\n    secrets: [s]\nsecrets:\n  s:\n    file: other.yaml\n",
    ];
    for _ in 0..400 {
        let head = rng.pick(&heads);
        let tail: String = (0..rng.below(30)).map(|_| rng.pick(PIECES)).collect();
        let body: String = (0..rng.below(40)).map(|_| rng.pick(PIECES)).collect();
        std::fs::write(&main, format!("{head}{tail}")).expect("write");
        std::fs::write(&other, format!("{}{body}", rng.pick(&heads))).expect("write");
        let text = std::fs::read_to_string(&main).unwrap_or_default();
        let descriptor = Descriptor {
            reference: DescriptorRef::File(main.clone()),
            version: None,
            path: main.clone(),
            text,
            digest: String::new(),
        };
        let options = LoadOptions { overrides: vec![other.clone()], ..Default::default() };
        for options in [LoadOptions::default(), options] {
            let outcome = catch_unwind(AssertUnwindSafe(|| load_with_options(&descriptor, "p", &options, &|_| None)));
            assert!(
                outcome.is_ok(),
                "panicked on:\n{}\n--- other.yaml:\n{}",
                descriptor.text,
                std::fs::read_to_string(&other).unwrap_or_default()
            );
        }
    }
}
