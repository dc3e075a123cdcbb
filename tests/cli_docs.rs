//! The command line is documented from one source: every subcommand and every
//! long flag that clap knows (src/cli.rs) must be mentioned in
//! docs/commands.md, and the generated shell completions and man page come
//! from the same definitions. Needs no engine.

use std::path::Path;
use std::process::Command;

use clap::CommandFactory;
use dockmaster::cli::Cli;

/// Flags clap adds to every command by itself; `--help` and `--version`
/// are not documented per command.
const GENERATED: [&str; 2] = ["help", "version"];

fn commands_md() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/commands.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether `text` contains `needle` not followed by a character that would
/// continue a flag or command name: `--env` is not mentioned by `--env-file`.
fn mentions(text: &str, needle: &str) -> bool {
    text.match_indices(needle).any(|(at, _)| {
        !text[at + needle.len()..].chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

/// One `## ` section of the document: its heading line and everything up
/// to the next heading.
struct Section<'a> {
    heading: &'a str,
    text: &'a str,
}

fn sections(doc: &str) -> Vec<Section<'_>> {
    let mut starts: Vec<usize> = doc.match_indices("\n## ").map(|(at, _)| at + 1).collect();
    starts.insert(0, 0);
    starts.push(doc.len());
    starts
        .windows(2)
        .map(|w| {
            let text = &doc[w[0]..w[1]];
            Section { heading: text.lines().next().unwrap_or_default(), text }
        })
        .collect()
}

/// Whether a subcommand's flag is documented where a reader of that
/// subcommand looks: in its own section (the one whose heading names
/// `` `dockmaster NAME``), or in a section that names the subcommand as
/// `` `NAME` `` beside the flag (the table of flags several commands share).
fn documented(sections: &[Section<'_>], path: &str, name: &str, flag: &str) -> bool {
    sections.iter().any(|s| {
        let about = mentions(s.heading, &format!("`{path}")) || mentions(s.text, &format!("`{name}`"));
        about && mentions(s.text, flag)
    })
}

/// Every missing item of `command` and its subcommands, depth first: a
/// subcommand needs a section headed `` `dockmaster NAME``, a top-level
/// flag a mention anywhere, a subcommand's flag a mention where that
/// subcommand is documented.
fn missing(command: &clap::Command, path: &str, doc: &str, out: &mut Vec<String>) {
    let sections = sections(doc);
    let top = !path.contains(' ');
    for arg in command.get_arguments() {
        if GENERATED.contains(&arg.get_id().as_str()) {
            continue;
        }
        if let Some(long) = arg.get_long() {
            let flag = format!("--{long}");
            let found = if top { mentions(doc, &flag) } else { documented(&sections, path, command.get_name(), &flag) };
            if !found {
                out.push(format!("flag `{flag}` of `{path}`"));
            }
        }
    }
    for sub in command.get_subcommands() {
        let sub_path = format!("{path} {}", sub.get_name());
        if !sections.iter().any(|s| s.heading.starts_with("## ") && mentions(s.heading, &format!("`{sub_path}"))) {
            out.push(format!("subcommand `{sub_path}` (no section headed \"## `{sub_path}\")"));
        }
        missing(sub, &sub_path, doc, out);
    }
}

#[test]
fn clap_definitions_are_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn every_subcommand_and_long_flag_is_in_commands_md() {
    let doc = commands_md();
    let command = Cli::command();
    let mut out = Vec::new();
    missing(&command, command.get_name(), &doc, &mut out);
    assert!(out.is_empty(), "docs/commands.md does not mention:\n  {}", out.join("\n  "));
}

#[test]
fn mentions_needs_the_whole_flag() {
    assert!(mentions("`--env-file FILE`", "--env-file"));
    assert!(!mentions("`--env-file FILE`", "--env"));
    assert!(mentions("`--env ENV` and `--env-file`", "--env"));
    assert!(mentions("ends with --adopt", "--adopt"));
}

/// Runs the built binary with a configuration that does not exist: the
/// generators must not read it.
fn generate(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_dockmaster"))
        .args(args)
        .env("DOCKMASTER_CONFIG", "/nonexistent/dockmaster.yml")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "dockmaster {}: {:?}\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn completions_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = generate(&["completions", shell]);
        assert!(!script.trim().is_empty(), "completions {shell}: empty");
        assert!(script.contains("deploy"), "completions {shell} does not name deploy:\n{script}");
        assert!(script.contains("adopt"), "completions {shell} does not name the --adopt flag");
    }
}

#[test]
fn man_page_names_the_subcommands() {
    let page = generate(&["man"]);
    assert!(page.starts_with(".ie") || page.contains(".TH"), "not roff:\n{page}");
    assert!(page.contains("dockmaster"), "man page does not name dockmaster:\n{page}");
    assert!(page.contains("deploy"), "man page does not name deploy:\n{page}");
}

#[test]
fn generators_are_not_hidden() {
    let command = Cli::command();
    for name in ["completions", "man"] {
        let sub = command.find_subcommand(name).unwrap_or_else(|| panic!("no `{name}` subcommand"));
        assert!(!sub.is_hide_set(), "`{name}` is hidden");
    }
}
