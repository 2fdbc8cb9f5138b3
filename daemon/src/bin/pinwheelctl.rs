//! `pinwheelctl`: the administrator's command line. Talks to a running
//! `pinwheeld` over its admin socket, found from the config file
//! (`--config`, default `/etc/pinwheel/pinwheel.toml`) or given with
//! `--socket`. Prints results as text (or JSON with `--json`); errors go to
//! stderr with exit code 1 (2 for usage or config errors).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use pinwheel::admin::{client, AdminRequest, UserView};

/// Administer a running Pinwheel daemon.
#[derive(Parser)]
#[command(name = "pinwheelctl", version)]
struct Args {
    /// Configuration file, read to find the admin socket.
    #[arg(long, short = 'c', global = true, default_value = pinwheel::config::DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Admin socket path (overrides the one in the config file).
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    /// Print the daemon's raw JSON answer.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Mobile Provision Codes.
    #[command(subcommand)]
    Provision(ProvisionCommand),
    /// OATH tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Show the audit trail (oldest first).
    Audit {
        /// Only this user.
        #[arg(long)]
        user: Option<String>,
        /// Only records newer than this, e.g. 15m, 2h, 7days.
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        /// At most this many records (the newest).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show the daemon's status.
    Status,
    /// List the loaded plugins (transports and directories) with their
    /// health, checked now.
    Plugins,
    /// Directories of users (`[[directory]]` plugins).
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// List the RADIUS clients (NASes) with their last request time and the
    /// requests counted since the daemon started.
    Clients,
    /// Back the database up to FILE with SQLite's online backup while the
    /// daemon serves. The daemon writes FILE (mode 0600), so its user must be
    /// able to write the folder. Keep the master key file with it.
    Backup {
        /// Destination file (made absolute; replaced atomically if it exists).
        file: PathBuf,
    },
    /// The configuration file, checked without a daemon.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a configuration file as the daemon would at start: parse and
    /// validate it, read the RADIUS secret files and load every plugin it
    /// names. Exit 0 if valid, 1 with the file, line and key otherwise.
    Check {
        /// The file to check (default: --config).
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Synchronise a directory's users now: update email, phone, groups and
    /// enabled from the directory, create records for new users, disable
    /// users gone from it.
    Sync {
        /// The `[[directory]]` entry's name.
        name: String,
        /// Apply the sync even if it would disable more users than the
        /// safeguard allows (an empty listing, or more than 10 users and
        /// more than 25 % of the directory's enabled users).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Resynchronise a user's HOTP token: type two consecutive codes it shows.
    Resync {
        /// Login name.
        name: String,
        /// A code the token shows.
        code1: String,
        /// The next code it shows.
        code2: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a local user. Without --pin a random PIN is generated and sent to the user.
    Add {
        /// Login name.
        name: String,
        /// Email address (codes and PINs are sent here).
        #[arg(long)]
        email: Option<String>,
        /// Phone number (for SMS transports).
        #[arg(long)]
        phone: Option<String>,
        /// A group (repeat for several); NASes configured for it get the groups in Access-Accepts.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// PIN (4 to 10 digits), or `-` to read it from the first line of standard input
        /// (a PIN on the command line lands in shell history and is visible to other users
        /// in the process list). Leave it out to have one generated and sent to the user.
        #[arg(long)]
        pin: Option<String>,
    },
    /// List users.
    List,
    /// Show one user.
    Show {
        /// Login name.
        name: String,
    },
    /// Delete a user with their device and outstanding provision code.
    Delete {
        /// Login name.
        name: String,
    },
    /// Lock a user until unlocked.
    Lock {
        /// Login name.
        name: String,
    },
    /// Unlock a user and clear their failure count.
    Unlock {
        /// Login name.
        name: String,
    },
    /// Disable a user: every login is rejected.
    Disable {
        /// Login name.
        name: String,
    },
    /// Enable a disabled user.
    Enable {
        /// Login name.
        name: String,
    },
    /// Set a user's PIN. Without --pin a random one is generated and sent to the user.
    SetPin {
        /// Login name.
        name: String,
        /// The new PIN, or `-` to read it from standard input.
        #[arg(long)]
        pin: Option<String>,
    },
    /// Replace the user's groups (comma-separated; empty clears them).
    SetGroups {
        /// Login name.
        name: String,
        /// Groups, e.g. `vpn-staff,admins`.
        groups: String,
    },
    /// Set the user's directory password for two-stage RADIUS logins (read from standard input).
    SetPassword {
        /// Login name.
        name: String,
        /// Remove the password instead: the first leg then carries none.
        #[arg(long)]
        clear: bool,
    },
    /// Choose what the user's next provisioning makes: security strings or an OATH token.
    SetMode {
        /// Login name.
        name: String,
        /// `strings` or `oath`.
        #[arg(value_parser = ["strings", "oath"])]
        mode: String,
        /// OATH: the user types PIN then code (`true`), the code alone (`false`), or as
        /// `[oath] require_pin` says (`default`). Left out: unchanged.
        #[arg(long, value_parser = ["true", "false", "default"])]
        require_pin: Option<String>,
    },
}

#[derive(Subcommand)]
enum ProvisionCommand {
    /// Send the user a new Mobile Provision Code over their transport.
    Send {
        /// Login name.
        name: String,
    },
}

fn socket_path(args: &Args) -> Result<PathBuf, String> {
    if let Some(s) = &args.socket {
        return Ok(s.clone());
    }
    pinwheel::config::Config::load(&args.config)
        .map(|c| c.server.admin_socket_path())
        .map_err(|e| format!("{e} (or give the admin socket with --socket PATH)"))
}

/// The first line of standard input, without its line ending.
fn read_stdin_line() -> std::io::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Text safe for a terminal: control characters are shown escaped, so a
/// user name cannot forge table rows or send escape sequences.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// A `--pin` value: `-` reads it from standard input.
fn read_pin_argument(pin: Option<&str>) -> Result<Option<String>, ExitCode> {
    match pin {
        Some("-") => read_stdin_line().map(Some).map_err(|e| {
            eprintln!("pinwheelctl: cannot read the PIN from standard input: {e}");
            ExitCode::from(2)
        }),
        other => Ok(other.map(str::to_string)),
    }
}

/// `pinwheelctl config check`: the daemon's own start-up checks, without a
/// daemon. Prints one line per loaded plugin, then the verdict.
fn config_check(file: &std::path::Path) -> ExitCode {
    let config = match pinwheel::config::Config::load(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pinwheelctl: configuration error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match pinwheel::daemon::check_config(&config) {
        Ok(plugins) => {
            for info in &plugins {
                println!(
                    "{} plugin {}: {} {} loaded",
                    info.kind,
                    printable(&info.name),
                    printable(&info.implementation),
                    printable(&info.version)
                );
            }
        }
        Err(e) => {
            eprintln!("pinwheelctl: configuration error: {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    }
    println!("{}: configuration is valid", file.display());
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Command::Config(ConfigCommand::Check { file }) = &args.command {
        return config_check(file.as_deref().unwrap_or(&args.config));
    }
    let socket = match socket_path(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pinwheelctl: {e}");
            return ExitCode::from(2);
        }
    };
    let request = match &args.command {
        Command::User(UserCommand::Add {
            name,
            email,
            phone,
            pin,
            groups,
        }) => AdminRequest::UserAdd {
            groups: groups.clone(),
            name: name.clone(),
            email: email.clone(),
            phone: phone.clone(),
            pin: match read_pin_argument(pin.as_deref()) {
                Ok(p) => p,
                Err(code) => return code,
            },
        },
        Command::User(UserCommand::Lock { name }) => AdminRequest::UserLock { name: name.clone() },
        Command::User(UserCommand::Unlock { name }) => {
            AdminRequest::UserUnlock { name: name.clone() }
        }
        Command::User(UserCommand::Disable { name }) => {
            AdminRequest::UserDisable { name: name.clone() }
        }
        Command::User(UserCommand::Enable { name }) => {
            AdminRequest::UserEnable { name: name.clone() }
        }
        Command::User(UserCommand::SetPin { name, pin }) => AdminRequest::UserSetPin {
            name: name.clone(),
            pin: match read_pin_argument(pin.as_deref()) {
                Ok(p) => p,
                Err(code) => return code,
            },
        },
        Command::User(UserCommand::SetGroups { name, groups }) => AdminRequest::UserSetGroups {
            name: name.clone(),
            groups: groups
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect(),
        },
        Command::User(UserCommand::SetPassword { name, clear }) => AdminRequest::UserSetPassword {
            name: name.clone(),
            password: if *clear {
                None
            } else {
                match read_stdin_line() {
                    Ok(p) if !p.is_empty() => Some(p),
                    Ok(_) => {
                        eprintln!(
                            "pinwheelctl: no password on standard input (use --clear to remove it)"
                        );
                        return ExitCode::from(2);
                    }
                    Err(e) => {
                        eprintln!("pinwheelctl: cannot read the password from standard input: {e}");
                        return ExitCode::from(2);
                    }
                }
            },
        },
        Command::User(UserCommand::SetMode {
            name,
            mode,
            require_pin,
        }) => AdminRequest::UserSetMode {
            name: name.clone(),
            mode: mode.clone(),
            require_pin: require_pin.clone(),
        },
        Command::Token(TokenCommand::Resync { name, code1, code2 }) => AdminRequest::TokenResync {
            name: name.clone(),
            code1: code1.clone(),
            code2: code2.clone(),
        },
        Command::Audit { user, since, limit } => AdminRequest::Audit {
            user: user.clone(),
            since_seconds: since.map(|d| d.as_secs()),
            limit: Some(*limit),
        },
        Command::User(UserCommand::List) => AdminRequest::UserList,
        Command::User(UserCommand::Show { name }) => AdminRequest::UserShow { name: name.clone() },
        Command::User(UserCommand::Delete { name }) => {
            AdminRequest::UserDelete { name: name.clone() }
        }
        Command::Provision(ProvisionCommand::Send { name }) => {
            AdminRequest::ProvisionSend { name: name.clone() }
        }
        Command::Status => AdminRequest::Status,
        Command::Plugins => AdminRequest::Plugins,
        Command::Directory(DirectoryCommand::Sync { name, force }) => AdminRequest::DirectorySync {
            name: name.clone(),
            force: *force,
        },
        Command::Clients => AdminRequest::Clients,
        Command::Backup { file } => {
            // The daemon resolves nothing relative to the caller's folder.
            let absolute = match std::path::absolute(file) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("pinwheelctl: {}: {e}", file.display());
                    return ExitCode::from(2);
                }
            };
            match absolute.to_str() {
                Some(p) => AdminRequest::Backup {
                    path: p.to_string(),
                },
                None => {
                    eprintln!("pinwheelctl: {}: the path is not UTF-8", file.display());
                    return ExitCode::from(2);
                }
            }
        }
        // Handled above, without a daemon.
        Command::Config(ConfigCommand::Check { .. }) => return ExitCode::SUCCESS,
    };
    // A sync lists a whole directory: give it longer.
    let limit = match &request {
        AdminRequest::DirectorySync { .. } | AdminRequest::Backup { .. } => {
            Duration::from_secs(600)
        }
        _ => Duration::from_secs(30),
    };
    let response = match client::call(&socket, &request, limit) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pinwheelctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !response.ok {
        eprintln!(
            "pinwheelctl: {}",
            response
                .error
                .as_deref()
                .unwrap_or("the daemon refused the command")
        );
        return ExitCode::FAILURE;
    }
    let result = response.result.unwrap_or(serde_json::Value::Null);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    print_result(&args.command, &result);
    ExitCode::SUCCESS
}

fn print_user(u: &UserView) {
    println!("name:      {}", u.name);
    println!("directory: {}", u.directory);
    println!("email:     {}", u.email.as_deref().unwrap_or("-"));
    println!("phone:     {}", u.phone.as_deref().unwrap_or("-"));
    println!("enabled:   {}", if u.enabled { "yes" } else { "no" });
    println!("pin:       {}", if u.has_pin { "set" } else { "not set" });
    println!(
        "groups:    {}",
        if u.groups.is_empty() {
            "-".to_string()
        } else {
            u.groups.join(", ")
        }
    );
    println!("mode:      {}", u.mode);
    if u.mode == "oath" || u.device.as_ref().is_some_and(|d| d.mode == "oath") {
        match u.require_pin {
            Some(r) => println!("require_pin: {r}"),
            None => println!("require_pin: as [oath] require_pin"),
        }
    }
    match u.locked_until {
        Some(i64::MAX) => println!(
            "locked:    until unlocked (pinwheelctl user unlock {})",
            u.name
        ),
        Some(t) => println!(
            "locked:    until {}",
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64)
            )
        ),
        None => println!("locked:    no"),
    }
    println!("failures:  {} in a row", u.failures);
    match &u.device {
        Some(d) if d.mode == "oath" => println!(
            "device:    {} ({}), OATH {}",
            d.id,
            d.name,
            d.oath_kind.as_deref().unwrap_or("token")
        ),
        Some(d) => println!(
            "device:    {} ({}), batch {}, {} strings left",
            d.id, d.name, d.batch, d.strings_left
        ),
        None => println!(
            "device:    none (send a provision code: pinwheelctl provision send {})",
            u.name
        ),
    }
}

fn print_result(command: &Command, result: &serde_json::Value) {
    let field = |k: &str| {
        result
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    match command {
        Command::User(UserCommand::Add { name, .. }) => {
            if field("pin") == "generated and sent" {
                println!(
                    "user {name} added; a generated PIN was sent over transport {}",
                    field("transport")
                );
            } else {
                println!("user {name} added");
            }
        }
        Command::User(UserCommand::List) => {
            let users: Vec<UserView> = serde_json::from_value(result.clone()).unwrap_or_default();
            println!("{:<24} {:<32} {:<8} DEVICE", "NAME", "EMAIL", "ENABLED");
            for u in &users {
                println!(
                    "{:<24} {:<32} {:<8} {}",
                    u.name,
                    u.email.as_deref().unwrap_or("-"),
                    if u.enabled { "yes" } else { "no" },
                    if u.device.is_some() {
                        "provisioned"
                    } else {
                        "-"
                    }
                );
            }
            println!("{} user(s)", users.len());
        }
        Command::User(UserCommand::Show { .. }) => {
            match serde_json::from_value::<UserView>(result.clone()) {
                Ok(u) => print_user(&u),
                Err(_) => println!("{result}"),
            }
        }
        Command::User(UserCommand::Delete { name }) => println!("user {name} deleted"),
        Command::User(UserCommand::Lock { name }) => println!("user {name} locked until unlocked"),
        Command::User(UserCommand::Unlock { name }) => println!("user {name} unlocked"),
        Command::User(UserCommand::Disable { name }) => println!("user {name} disabled"),
        Command::User(UserCommand::Enable { name }) => println!("user {name} enabled"),
        Command::User(UserCommand::SetPin { name, .. }) => {
            if field("pin") == "generated and sent" {
                println!("PIN of {name} changed; the generated PIN was sent to the user");
            } else {
                println!("PIN of {name} changed");
            }
        }
        Command::User(UserCommand::SetMode {
            name,
            mode,
            require_pin,
        }) => {
            println!(
                "user {name}: the next provisioning makes a device in {mode} mode; a device the user \
                 already has keeps working until then (send a code: pinwheelctl provision send {name})"
            );
            if let Some(r) = require_pin {
                println!("require_pin = {r} applies to OATH logins from now on");
            }
        }
        Command::User(UserCommand::SetGroups { name, .. }) => println!("groups of {name} set"),
        Command::User(UserCommand::SetPassword { name, clear }) => {
            if *clear {
                println!("directory password of {name} removed");
            } else {
                println!("directory password of {name} set");
            }
        }
        Command::Token(TokenCommand::Resync { name, .. }) => {
            println!("HOTP token of {name} resynchronised")
        }
        Command::Audit { .. } => {
            let rows: Vec<pinwheel::audit::AuditRow> =
                serde_json::from_value(result.clone()).unwrap_or_default();
            println!(
                "{:<20} {:<15} {:<16} {:<38} {:<6} REASON",
                "TIME (UTC)", "EVENT", "USER", "SOURCE", "RESULT"
            );
            for r in &rows {
                let time =
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(r.at.max(0) as u64);
                let time = humantime::format_rfc3339_seconds(time).to_string();
                println!(
                    "{:<20} {:<15} {:<16} {:<38} {:<6} {}",
                    time.trim_end_matches('Z').replace('T', " "),
                    printable(&r.event),
                    printable(r.username.as_deref().unwrap_or("-")),
                    printable(&r.source),
                    printable(&r.result),
                    printable(r.reason.as_deref().unwrap_or("-"))
                );
            }
            println!("{} record(s)", rows.len());
        }
        Command::Provision(ProvisionCommand::Send { name }) => {
            println!(
                "Mobile Provision Code sent to {name} over transport {}",
                field("transport")
            )
        }
        Command::Plugins => {
            let rows = result.as_array().cloned().unwrap_or_default();
            let text = |row: &serde_json::Value, k: &str| {
                printable(
                    &row.get(k)
                        .map(|v| {
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string())
                        })
                        .unwrap_or_default(),
                )
            };
            println!(
                "{:<16} {:<10} {:<48} {:<10} HEALTH",
                "NAME", "KIND", "PLUGIN FILE", "VERSION"
            );
            for row in &rows {
                println!(
                    "{:<16} {:<10} {:<48} {:<10} {}",
                    text(row, "name"),
                    text(row, "kind"),
                    text(row, "file"),
                    text(row, "version"),
                    text(row, "health")
                );
            }
            println!("{} plugin(s)", rows.len());
        }
        Command::Directory(DirectoryCommand::Sync { name, .. }) => {
            let count = |k: &str| result.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
            println!(
                "directory {} sync: {} listed, {} updated, {} created, {} disabled",
                printable(name),
                count("listed"),
                count("updated"),
                count("created"),
                count("disabled")
            );
            if count("skipped") > 0 {
                println!(
                    "{} listed user(s) skipped: invalid or repeated names, or names used by a local user or another directory",
                    count("skipped")
                );
            }
        }
        Command::Clients => {
            let rows = result.as_array().cloned().unwrap_or_default();
            println!(
                "{:<20} {:<24} {:<22} REQUESTS",
                "NAME", "ADDRESS", "LAST SEEN (UTC)"
            );
            for row in &rows {
                let text = |k: &str| printable(row.get(k).and_then(|v| v.as_str()).unwrap_or("-"));
                let last = match row.get("last_seen").and_then(|v| v.as_i64()) {
                    Some(t) => humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64),
                    )
                    .to_string()
                    .trim_end_matches('Z')
                    .replace('T', " "),
                    None => "never".to_string(),
                };
                println!(
                    "{:<20} {:<24} {:<22} {}",
                    text("name"),
                    text("address"),
                    last,
                    row.get("requests").and_then(|v| v.as_u64()).unwrap_or(0)
                );
            }
            println!("{} client(s)", rows.len());
        }
        Command::Backup { .. } => {
            let path = result.get("path").and_then(|v| v.as_str()).unwrap_or("?");
            let bytes = result.get("bytes").and_then(|v| v.as_u64()).unwrap_or(0);
            println!("database backed up to {} ({bytes} bytes)", printable(path));
            println!(
                "keep the master key with it: {} (without it the PINs and devices in the backup cannot be used)",
                printable(field("master_key").as_str())
            );
        }
        Command::Config(_) => {}
        Command::Status => {
            if let Some(map) = result.as_object() {
                for (k, v) in map {
                    println!(
                        "{k}: {}",
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    );
                }
            }
        }
    }
}
