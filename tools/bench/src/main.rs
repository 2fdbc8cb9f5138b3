//! `pinwheel-bench`: test data and load for benchmarking `pinwheeld`.
//!
//! `setup` bulk-creates users `bench0..benchN-1`, each with a random PIN and a
//! provisioned security-strings device, straight into the state directory of
//! a config (through the library's store modules, so the rows are exactly
//! what the daemon writes), while the daemon is not running. `codes` prints
//! `user code` lines with fresh one-time codes (OTC for the user's PIN plus
//! the two-digit index of a string not yet spent), reading the database
//! read-only, so it can run while the daemon serves (SQLite WAL). It never
//! prints the same (user, index) twice, and never an index the database
//! already records as spent.
//!
//! Benchmark data only: the PINs stay sealed in the database (`codes` opens
//! them with the master key of the state directory), and nothing here should
//! ever be pointed at a production state directory.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use pinwheel::config::Config;
use pinwheel::otc::{self, Alphabet, DeviceSeed, Pin, UsedSet};
use pinwheel::secrets::{self, MasterKey, Purpose};
use pinwheel::store::{devices, users, StoreError};
use rusqlite::{params, OpenFlags};

/// Users are created in transactions of this many (and a progress line is
/// printed after each).
const CHUNK: usize = 10_000;

/// Prefix of every user `setup` creates and `codes` uses.
const PREFIX: &str = "bench";

/// Benchmark helper for pinwheeld: bulk users and fresh one-time codes.
#[derive(Parser)]
#[command(name = "pinwheel-bench", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create users bench0..benchN-1, each with a random PIN and a provisioned
    /// security-strings device (batch 1, nothing spent). The daemon must not
    /// be running.
    Setup {
        /// The daemon's configuration file (its state directory is written).
        #[arg(long)]
        config: PathBuf,
        /// Number of users to create.
        #[arg(long)]
        users: usize,
        /// PIN length in digits (within the config's [pin] bounds).
        #[arg(long, default_value_t = 4)]
        pin_length: usize,
    },
    /// Print COUNT lines `user code` with fresh codes, index-major over the
    /// first K bench users (consecutive lines name different users).
    Codes {
        /// The daemon's configuration file (its database is only read).
        #[arg(long)]
        config: PathBuf,
        /// Number of lines to print.
        #[arg(long)]
        count: usize,
        /// Spread the codes over the first K bench users (default: all).
        #[arg(long)]
        users: Option<usize>,
    },
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Setup {
            config,
            users,
            pin_length,
        } => setup(&config, users, pin_length),
        Command::Codes {
            config,
            count,
            users,
        } => codes(&config, count, users),
    }
}

fn load_config(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(anyhow::Error::msg)
}

fn setup(config_path: &Path, count: usize, pin_length: usize) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let pin_cfg = &config.pin;
    if !(pin_cfg.min_length..=pin_cfg.max_length).contains(&pin_length) {
        bail!(
            "--pin-length {pin_length} is outside the config's [pin] bounds {}..{}",
            pin_cfg.min_length,
            pin_cfg.max_length
        );
    }
    let admin = config.server.admin_socket_path();
    if std::os::unix::net::UnixStream::connect(&admin).is_ok() {
        bail!(
            "a daemon answers on {}: stop it before running setup",
            admin.display()
        );
    }
    // Open state, key and store exactly as the daemon does.
    let app = pinwheel::daemon::App::open(config)?;
    let (config, key, store) = (&app.config, &app.key, &app.store);
    let alphabet = Alphabet::parse(&config.strings.alphabet).map_err(anyhow::Error::msg)?;
    let now = pinwheel::unix_now();
    let started = Instant::now();
    let mut done = 0usize;
    while done < count {
        let end = (done + CHUNK).min(count);
        store
            .transaction(|tx| {
                for i in done..end {
                    let name = format!("{PREFIX}{i}");
                    let pin = Pin::random(pin_length);
                    let pin_sealed = key.seal(Purpose::Pin, &name, pin.as_bytes());
                    let email = format!("{name}@bench.invalid");
                    let user_id = users::insert(tx, &name, Some(&email), None, &pin_sealed, now)?;
                    let seed = DeviceSeed::random();
                    let device = devices::DeviceRow {
                        id: hex::encode(secrets::random_bytes(16)),
                        user_id,
                        name: "bench".to_string(),
                        seed_sealed: key.seal(Purpose::DeviceSeed, &name, seed.as_bytes()),
                        alphabet: alphabet.as_str().to_string(),
                        batch: 1,
                        used: UsedSet::default(),
                        created_at: now,
                        mode: "strings".to_string(),
                        oath: None,
                    };
                    // Nobody ever holds this token: the device only needs a
                    // unique keyed hash, as a real provisioning leaves.
                    let token = hex::encode(secrets::random_bytes(32));
                    let token_hash = key.keyed_hash(Purpose::DeviceToken, token.as_bytes());
                    devices::replace(tx, &device, &token_hash)?;
                }
                Ok::<_, StoreError>(())
            })
            .map_err(|e| match e {
                StoreError::Duplicate(what) => anyhow::anyhow!(
                    "{what}: this state directory already has bench users; use a fresh one"
                ),
                other => other.into(),
            })?;
        done = end;
        eprintln!(
            "setup: {done}/{count} users ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
    }
    eprintln!(
        "setup: {count} users with a PIN of {pin_length} digits and a provisioned strings device in {}",
        config.server.database_path().display()
    );
    Ok(())
}

/// What `codes` needs of one user, opened on first use.
struct Opened {
    pin: Pin,
    seed: DeviceSeed,
    alphabet: Alphabet,
}

struct BenchUser {
    name: String,
    pin_sealed: Vec<u8>,
    seed_sealed: Vec<u8>,
    alphabet: String,
    batch: u32,
    /// Indexes not yet spent, ascending.
    fresh: Vec<u8>,
    opened: Option<Opened>,
}

impl BenchUser {
    fn code(&mut self, key: &MasterKey, index: u8) -> anyhow::Result<String> {
        if self.opened.is_none() {
            let pin = key
                .open(Purpose::Pin, &self.name, &self.pin_sealed)
                .with_context(|| format!("user {}: PIN", self.name))?;
            let pin = Pin::parse(std::str::from_utf8(&pin)?, 4, 10).map_err(anyhow::Error::msg)?;
            let seed = key
                .open(Purpose::DeviceSeed, &self.name, &self.seed_sealed)
                .with_context(|| format!("user {}: device seed", self.name))?;
            let seed = DeviceSeed::from_bytes(&seed).map_err(anyhow::Error::msg)?;
            let alphabet = Alphabet::parse(&self.alphabet).map_err(anyhow::Error::msg)?;
            self.opened = Some(Opened {
                pin,
                seed,
                alphabet,
            });
        }
        let o = self.opened.as_ref().expect("opened above");
        let string = otc::derive_string(&o.seed, self.batch, index, o.alphabet)
            .map_err(anyhow::Error::msg)?;
        Ok(format!("{}{index:02}", otc::extract(&string, &o.pin)))
    }
}

fn codes(config_path: &Path, count: usize, limit: Option<usize>) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let key_path = config.server.master_key_path();
    if !key_path.exists() {
        bail!(
            "no master key at {}: run `pinwheel-bench setup` first",
            key_path.display()
        );
    }
    let key = MasterKey::load_or_create(&key_path)?;
    let db = config.server.database_path();
    let mut conn = rusqlite::Connection::open_with_flags(
        &db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open database {} read-only", db.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let now = pinwheel::unix_now();
    let limit = i64::try_from(limit.unwrap_or(usize::MAX)).unwrap_or(i64::MAX);
    // One read transaction: a consistent snapshot of every spent set.
    let tx = conn.transaction()?;
    let mut bench_users = Vec::new();
    {
        let mut stmt = tx.prepare(
            "SELECT u.name, u.pin_sealed, d.seed_sealed, d.alphabet, d.batch, d.used
             FROM users u JOIN devices d ON d.user_id = u.id
             WHERE u.name GLOB 'bench[0-9]*' AND u.enabled = 1 AND u.pin_sealed IS NOT NULL
               AND (u.locked_until IS NULL OR u.locked_until <= ?1) AND d.mode = 'strings'
             ORDER BY u.id LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![now, limit])?;
        while let Some(r) = rows.next()? {
            let used: Vec<u8> = r.get(5)?;
            let used = UsedSet::from_bytes(&used).map_err(anyhow::Error::msg)?;
            bench_users.push(BenchUser {
                name: r.get(0)?,
                pin_sealed: r.get(1)?,
                seed_sealed: r.get(2)?,
                alphabet: r.get(3)?,
                batch: r.get(4)?,
                fresh: (1..=otc::BATCH_SIZE)
                    .filter(|&i| !used.is_used(i))
                    .collect(),
                opened: None,
            });
        }
    }
    tx.finish()?;
    if bench_users.is_empty() {
        bail!("no usable bench users in {}", db.display());
    }
    let available: usize = bench_users.iter().map(|u| u.fresh.len()).sum();
    if available < count {
        bail!(
            "only {available} fresh codes left over {} bench users, {count} asked for",
            bench_users.len()
        );
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0usize;
    // Index-major: round r gives every user their r-th fresh index.
    'rounds: for round in 0..usize::from(otc::BATCH_SIZE) {
        for user in bench_users.iter_mut() {
            if printed == count {
                break 'rounds;
            }
            let Some(&index) = user.fresh.get(round) else {
                continue;
            };
            let code = user.code(&key, index)?;
            writeln!(out, "{} {code}", user.name)?;
            printed += 1;
        }
    }
    out.flush()?;
    Ok(())
}
