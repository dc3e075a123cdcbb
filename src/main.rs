//! The dockmaster binary: parse the command line, run it, exit with the
//! contract's code. Everything else lives in the library.

use clap::Parser;

fn main() {
    let cli = dockmaster::cli::Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dockmaster: error: cannot start the async runtime: {e}");
            std::process::exit(dockmaster::error::EXIT_INTERNAL);
        }
    };
    let code = runtime.block_on(dockmaster::callers::cli::run(cli));
    std::process::exit(code);
}

/// Diagnostic logs go to stderr, off unless `DOCKMASTER_LOG` (or `RUST_LOG`)
/// asks for them, e.g. `DOCKMASTER_LOG=debug`; one JSON object per line
/// with `DOCKMASTER_LOG_FORMAT=json`, for log collectors.
fn init_logging() {
    let filter =
        std::env::var("DOCKMASTER_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| "off".into());
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let json = std::env::var("DOCKMASTER_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
}
