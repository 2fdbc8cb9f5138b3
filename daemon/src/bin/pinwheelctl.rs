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
#[command(name = "pinwheelctl", version, about)]
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
    /// Show the daemon's status.
    Status,
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

fn main() -> ExitCode {
    let args = Args::parse();
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
        }) => AdminRequest::UserAdd {
            name: name.clone(),
            email: email.clone(),
            phone: phone.clone(),
            pin: match pin.as_deref() {
                Some("-") => match read_stdin_line() {
                    Ok(p) => Some(p),
                    Err(e) => {
                        eprintln!("pinwheelctl: cannot read the PIN from standard input: {e}");
                        return ExitCode::from(2);
                    }
                },
                other => other.map(str::to_string),
            },
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
    };
    let response = match client::call(&socket, &request, Duration::from_secs(30)) {
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
    match &u.device {
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
        Command::Provision(ProvisionCommand::Send { name }) => {
            println!(
                "Mobile Provision Code sent to {name} over transport {}",
                field("transport")
            )
        }
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
