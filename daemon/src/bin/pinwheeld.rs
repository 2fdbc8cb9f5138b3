//! `pinwheeld`: the Pinwheel daemon. Parses the command line, loads and
//! validates the config, and runs [`pinwheel::daemon::run`]. Exit codes:
//! 0 after a clean SIGTERM/SIGINT, 1 on a start-up error, 2 on a config error.
//! `--check-config` runs [`pinwheel::daemon::check_config`] (the same checks
//! as `pinwheelctl config check`, plugins loaded) and exits 0, 2 on a config
//! error, or 1 when a plugin is refused or cannot start.
//! `--restore FILE` replaces the stopped daemon's database by a backup.
//! SIGHUP re-reads the same config file (see [`pinwheel::daemon::reload`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Pinwheel two-factor authentication daemon: RADIUS, REST provisioning and
/// the admin socket.
///
/// Started as root without systemd, it binds its sockets, opens the database
/// and master key, then switches to `[server] user` (default `pinwheel`) for
/// good, or refuses to start if that user does not exist. Sockets passed by
/// systemd socket activation (LISTEN_FDS) are used for the listeners whose
/// addresses they have.
#[derive(Parser)]
#[command(name = "pinwheeld", version)]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', default_value = pinwheel::config::DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Check the configuration, load and initialise its plugins, and exit
    /// (0 if valid, 2 on a config error, 1 when a plugin is refused).
    #[arg(long)]
    check_config: bool,
    /// Replace the database of the (stopped) daemon by a copy of this backup
    /// (made with `pinwheelctl backup`) and exit. The backup must be a
    /// Pinwheel database whose secrets open with the configured master key.
    /// The current database is kept as `pinwheel.db.before-restore-<UTC
    /// time>`; migrations run at the next start.
    #[arg(long, value_name = "FILE")]
    restore: Option<PathBuf>,
}

/// `--restore FILE`: refuses while a daemon answers on the admin socket or
/// holds the database; otherwise checks the backup and puts it in place.
fn restore(config: &pinwheel::config::Config, backup: &std::path::Path) -> ExitCode {
    let socket = config.server.admin_socket_path();
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        eprintln!(
            "pinwheeld: a daemon is running (its admin socket {} answers): stop it first (systemctl stop pinwheeld)",
            socket.display()
        );
        return ExitCode::FAILURE;
    }
    let keys = match restore_keys(config) {
        Ok(keys) => keys,
        Err(e) => {
            eprintln!("pinwheeld: restore refused: {e}");
            return ExitCode::FAILURE;
        }
    };
    let db = config.server.database_path();
    match pinwheel::store::backup::restore(&db, backup, &keys) {
        Ok(done) => {
            println!(
                "{} restored from {}",
                done.database.display(),
                backup.display()
            );
            if let Some(previous) = done.previous {
                println!("the database it replaced is kept as {}", previous.display());
            }
            println!(
                "the backup's PINs and devices open only with the master key they were sealed with ({}); start the daemon to apply migrations",
                config.server.master_key_path().display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pinwheeld: restore refused: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The master keys a restored backup's secrets may open with, as the
/// daemon would find them: the systemd credential `master.key` (when
/// `$CREDENTIALS_DIRECTORY` is set), the configured key file, and the
/// packaged unit's credential store file. Only existing files are read;
/// none is created. Errors: a key file that exists but cannot be used
/// (unreadable, wrong length, readable by others), naming the file.
fn restore_keys(
    config: &pinwheel::config::Config,
) -> Result<Vec<pinwheel::store::backup::KeyCandidate>, String> {
    let mut paths = Vec::new();
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        paths.push(PathBuf::from(dir).join("master.key"));
    }
    paths.push(config.server.master_key_path());
    paths.push(PathBuf::from("/etc/credstore/pinwheel.master.key"));
    let mut keys = Vec::new();
    for path in paths {
        if !path.is_file()
            || keys
                .iter()
                .any(|k: &pinwheel::store::backup::KeyCandidate| k.path == path)
        {
            continue;
        }
        let key = pinwheel::secrets::MasterKey::load_or_create(&path).map_err(|e| e.to_string())?;
        keys.push(pinwheel::store::backup::KeyCandidate { path, key });
    }
    Ok(keys)
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Everything the daemon creates (database, WAL, keys, spool files) is
    // private to its user, whatever umask it was started with.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    pinwheel::system::init_logging();
    // Sockets passed by systemd (socket activation), taken before any
    // thread starts.
    pinwheel::system::activation::capture();
    let config = match pinwheel::config::Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pinwheeld: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(backup) = &args.restore {
        return restore(&config, backup);
    }
    if args.check_config {
        // What a start would check before binding anything (the same as
        // `pinwheelctl config check`): secret files readable, every plugin
        // loads and accepts its config.
        return match pinwheel::daemon::check_config(&config) {
            Ok(plugins) => {
                println!(
                    "{}: configuration is valid ({} plugins loaded)",
                    args.config.display(),
                    plugins.len()
                );
                ExitCode::SUCCESS
            }
            Err(e @ pinwheel::daemon::CheckError::Config(_)) => {
                eprintln!(
                    "pinwheeld: configuration error: {}: {e}",
                    args.config.display()
                );
                ExitCode::from(2)
            }
            Err(e @ pinwheel::daemon::CheckError::Plugin(_)) => {
                eprintln!("pinwheeld: {}: {e}", args.config.display());
                ExitCode::FAILURE
            }
        };
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
