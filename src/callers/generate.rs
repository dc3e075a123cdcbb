//! `dockmaster completions SHELL` and `dockmaster man`: shell completions
//! and the man page, generated from the clap definitions in `crate::cli`, so
//! they always match the binary they come with. Neither reads the
//! configuration nor talks to an engine.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{Error, Result};

/// Writes the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<i32> {
    let mut command = Cli::command();
    let name = command.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    write_stdout(&script)
}

/// Writes the man page (roff, section 1) on stdout.
pub fn man() -> Result<i32> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| Error::Internal(format!("cannot render the man page: {e}")))?;
    write_stdout(&page)
}

fn write_stdout(bytes: &[u8]) -> Result<i32> {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`dockmaster man | head`) is a normal way to end.
    let _ = stdout.write_all(bytes);
    let _ = stdout.flush();
    Ok(0)
}
