//! `pinwheeld`: the Pinwheel daemon. Parses the command line, loads and
//! validates the config, and runs [`pinwheel::daemon::run`]. Exit codes:
//! 0 after a clean SIGTERM/SIGINT, 1 on a start-up error, 2 on a config error.
//! SIGHUP re-reads the same config file (see [`pinwheel::daemon::reload`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Pinwheel two-factor authentication daemon: RADIUS, REST provisioning and
/// the admin socket.
#[derive(Parser)]
#[command(name = "pinwheeld", version)]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', default_value = pinwheel::config::DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Check the configuration and exit (0 if valid).
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Everything the daemon creates (database, WAL, keys, spool files) is
    // private to its user, whatever umask it was started with.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    pinwheel::system::init_logging();
    let config = match pinwheel::config::Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pinwheeld: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        // The secret files must be readable too, or the daemon would not start.
        if let Err(e) = config.resolved_radius_clients() {
            eprintln!(
                "pinwheeld: configuration error: {}: {e}",
                args.config.display()
            );
            return ExitCode::from(2);
        }
        println!("{}: configuration is valid", args.config.display());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pinwheeld: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(pinwheel::daemon::run(config, args.config.clone())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("pinwheeld: {e:#}");
            ExitCode::FAILURE
        }
    }
}
