//! `pinwheel-mobile`: a command-line Mobile Phone Client for Pinwheel. It does what
//! the mobile app of the user guide does: provisions itself with a Mobile Provision
//! Code (`provision`), keeps the batch of 99 security strings it receives, shows the
//! code to type at a login prompt (`otc`: OTC extracted with the PIN, followed by the
//! 2-digit string index), fetches new batches (`strings refresh`) and reports its
//! state (`status`, `strings show`). For a user in OATH mode the server sends an
//! `otpauth://` key URI instead of strings: `provision` saves it and prints it once
//! (to paste into any authenticator app), and `otc` shows the TOTP code of the
//! current time or the HOTP code of the saved counter (then advanced), after the PIN
//! if one is given. This file owns the command line, the messages the user sees
//! (word for word those of the guide where it names one) and the exit statuses: 0
//! success, 1 failure, 2 bad input or missing settings.

mod client;
mod codes;
mod state;

use std::fmt;
use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use pinwheel::otc::oath::OathKind;
use pinwheel::otc::{Pin, BATCH_SIZE};

use client::{ApiError, Client};
use state::{Device, Mode, State};

/// Guide wording: shown while the provision call is in flight.
const PROVISIONING: &str = "Provisioning. Please wait...";
/// Guide wording: shown when the provision succeeded.
const PROVISIONED: &str = "Device Provisioned";
/// Guide wording: no user name in the options or on the command line.
const USER_NOT_SET: &str = "User not set";
/// Guide wording: a provision code that is wrong, expired or spent.
const PROVISION_FAILURE: &str =
    "Failure\nPlease check your settings or try again later. Message: Provision Failure";
/// Shown when the server no longer knows the device token.
const NO_LONGER_PROVISIONED: &str = "Device no longer provisioned: provision again";
/// Shown when a command needs a provisioned device and there is none.
const NOT_PROVISIONED: &str =
    "Device not provisioned: run `pinwheel-mobile provision --server URL --user NAME --code CODE` first";
/// Printed after [`PROVISIONED`] in OATH mode, before the key URI.
const AUTHENTICATOR_KEY: &str = "Authenticator key: ";
/// `strings refresh` / `strings show` on a device in OATH mode.
const NO_STRINGS_IN_OATH_MODE: &str = "This device is in OATH mode: it has no security strings";
/// The server answered `strings refresh` with 409 NOT_STRINGS_MODE.
const SERVER_SAYS_OATH_MODE: &str =
    "The server has this user in OATH mode now: provision again to get the authenticator key";
/// `otc` in strings mode without `--pin`.
const PIN_NOT_SET: &str = "PIN not set: give --pin PIN (or --pin - to read it from standard input)";
/// `otc --index` on a device in OATH mode.
const INDEX_IN_OATH_MODE: &str =
    "This device is in OATH mode: --index applies to security strings only";

/// Command-line Mobile Phone Client for Pinwheel.
#[derive(Parser, Debug)]
#[command(name = "pinwheel-mobile", version, about, long_about = None)]
pub struct Cli {
    /// State file [default: $PINWHEEL_MOBILE_STATE, else
    /// $XDG_STATE_HOME/pinwheel-mobile/state.json, else
    /// $HOME/.local/state/pinwheel-mobile/state.json]
    #[arg(long, global = true, value_name = "FILE")]
    pub state: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Provision this device with a Mobile Provision Code.
    Provision(ProvisionArgs),
    /// Show the code to type: the one-time code followed by the 2-digit index
    /// (strings mode), or the OATH code, after the PIN if one is given (OATH mode).
    Otc(OtcArgs),
    /// Manage the batch of security strings.
    #[command(subcommand)]
    Strings(StringsCommand),
    /// Show server, user, device id and mode, then batch and strings left (strings
    /// mode) or the OATH parameters (OATH mode).
    Status(StatusArgs),
    /// Set the options (server address, user name) used by `provision`.
    Options(OptionsArgs),
}

/// Arguments of `provision`.
#[derive(Args, Debug)]
pub struct ProvisionArgs {
    /// Server base URL, e.g. https://2fa.example.com [default: the saved option]
    #[arg(long, value_name = "URL", value_parser = parse_server_arg)]
    pub server: Option<String>,
    /// User name [default: the saved option]
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// The Mobile Provision Code received by email or SMS.
    #[arg(long, value_name = "CODE")]
    pub code: String,
    /// Name of this device as the server will show it [default: the host name]
    #[arg(long, value_name = "NAME")]
    pub device_name: Option<String>,
}

/// Arguments of `otc`.
#[derive(Args, Debug)]
pub struct OtcArgs {
    /// Your PIN (4 to 10 digits); `-` reads it from the first line of standard input.
    /// Required in strings mode; in OATH mode it is printed before the code (for a
    /// server that requires a PIN).
    #[arg(long, value_name = "PIN")]
    pub pin: Option<String>,
    /// Use this string index (1..=99, not yet used here) instead of the next unused
    /// one (strings mode only).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=99))]
    pub index: Option<u8>,
}

/// Arguments of `status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Also print the authenticator key (`otpauth://` URI) of a device in OATH mode.
    /// It is a secret: anyone who sees it can make your codes.
    #[arg(long)]
    pub show_key: bool,
}

/// Subcommands of `strings`.
#[derive(Subcommand, Debug)]
pub enum StringsCommand {
    /// Fetch a new batch of 99 security strings from the server.
    Refresh,
    /// Print every string with its index (for debugging).
    Show,
}

/// Arguments of `options`.
#[derive(Args, Debug)]
pub struct OptionsArgs {
    /// Server base URL to save.
    #[arg(long, value_name = "URL", value_parser = parse_server_arg)]
    pub server: Option<String>,
    /// User name to save.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

fn parse_server_arg(url: &str) -> Result<String, String> {
    client::parse_server(url)
}

/// An error whose text is shown exactly as is (no `error:` prefix) with its own exit
/// status; used for the messages the user guide names.
#[derive(Debug)]
pub struct Failure {
    /// Exit status.
    pub exit: u8,
    /// Text printed on stderr.
    pub text: String,
}

impl Failure {
    /// A failure with exit status `exit` and message `text`.
    pub fn new(exit: u8, text: impl Into<String>) -> Failure {
        Failure {
            exit,
            text: text.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Failure {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let stdin = io::stdin();
    match run(cli, &mut out, &mut stdin.lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = out.flush();
            match err.downcast_ref::<Failure>() {
                Some(failure) => {
                    eprintln!("{failure}");
                    ExitCode::from(failure.exit)
                }
                None => {
                    eprintln!("error: {err:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Whether `err` comes from writing to a closed pipe (`pinwheel-mobile strings show |
/// head`): the reader has gone, so there is nobody left to tell.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Runs one command line; normal output goes to `out`, a PIN given as `-` is read
/// from `input`.
pub fn run(cli: Cli, out: &mut dyn Write, input: &mut dyn BufRead) -> Result<()> {
    let path = match cli.state {
        Some(path) => path,
        None => state::default_path(|name| std::env::var_os(name))?,
    };
    match cli.command {
        Command::Provision(args) => provision(&path, args, out),
        Command::Otc(args) => otc(&path, args, out, input),
        Command::Strings(StringsCommand::Refresh) => refresh(&path, out),
        Command::Strings(StringsCommand::Show) => show(&path, out),
        Command::Status(args) => status(&path, args, out),
        Command::Options(args) => options(&path, args, out),
    }
}

fn provision(path: &Path, args: ProvisionArgs, out: &mut dyn Write) -> Result<()> {
    let mut state = State::load(path)?;
    let user = args
        .user
        .or_else(|| state.user.clone())
        .filter(|user| !user.trim().is_empty())
        .ok_or_else(|| Failure::new(2, USER_NOT_SET))?;
    state::check_user(&user).map_err(|err| Failure::new(2, format!("Invalid user name: {err}")))?;
    let server = args
        .server
        .or_else(|| state.server.clone())
        .ok_or_else(|| {
            Failure::new(
                2,
                "Server not set: give --server URL (e.g. https://2fa.example.com)",
            )
        })?;
    let code = args.code.trim();
    if code.is_empty() || code.chars().any(char::is_control) || code.len() > 256 {
        return Err(Failure::new(2, "Invalid Mobile Provision Code").into());
    }
    let device_name = match args.device_name {
        Some(name) => name,
        None => default_device_name(),
    };
    let device_name = device_name.trim().to_string();
    if device_name.is_empty()
        || device_name.chars().count() > 100
        || device_name.chars().any(char::is_control)
    {
        return Err(Failure::new(2, "Invalid device name: 1 to 100 printable characters").into());
    }

    writeln!(out, "{PROVISIONING}")?;
    out.flush()?;
    let client = Client::new(&server);
    let reply = match client.provision(&user, code, &device_name) {
        Ok(reply) => reply,
        Err(ApiError::Status {
            status: 403,
            code: Some(code),
            ..
        }) if code == "PROVISION_FAILURE" => return Err(Failure::new(1, PROVISION_FAILURE).into()),
        Err(err) => return Err(anyhow::Error::new(err).context("provisioning failed")),
    };
    let device = match (reply.mode.as_str(), reply.otpauth_uri) {
        ("strings", _) => Device {
            device_id: reply.device_id,
            device_token: reply.device_token,
            batch: reply.batch,
            strings: reply.strings,
            used: Vec::new(),
            otpauth_uri: None,
        },
        // The client has checked the URI already.
        ("oath", Some(uri)) => Device::oath(reply.device_id, reply.device_token, uri),
        (mode, _) => {
            return Err(Failure::new(
                1,
                format!(
                    "The server provisioned this device in {:?} mode; pinwheel-mobile \
                     handles \"strings\" and \"oath\" only",
                    client::printable(mode)
                ),
            )
            .into())
        }
    };
    state.server = Some(server);
    state.user = Some(user);
    state.device = Some(device);
    state
        .save(path)
        .context("the device was provisioned but its credential could not be saved")?;
    writeln!(out, "{PROVISIONED}")?;
    if let Some(uri) = state.device.as_ref().and_then(|d| d.otpauth_uri.as_ref()) {
        writeln!(out, "{AUTHENTICATOR_KEY}{uri}")?;
    }
    Ok(())
}

fn default_device_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "pinwheel-mobile".to_string())
}

/// Reads and checks the PIN of `--pin` (`-`: the first line of `input`).
fn read_pin(arg: String, input: &mut dyn BufRead) -> Result<Pin> {
    let pin_text = if arg == "-" {
        let mut line = String::new();
        input
            .take(1024)
            .read_line(&mut line)
            .context("cannot read the PIN from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        arg
    };
    Pin::parse(&pin_text, 4, 10)
        .map_err(|err| Failure::new(2, format!("Invalid PIN: {err}")).into())
}

fn otc(path: &Path, args: OtcArgs, out: &mut dyn Write, input: &mut dyn BufRead) -> Result<()> {
    let pin = args.pin.map(|arg| read_pin(arg, input)).transpose()?;
    let mut state = State::load(path)?;
    let device = state
        .device
        .as_mut()
        .ok_or_else(|| Failure::new(1, NOT_PROVISIONED))?;
    let typed = match device.mode()? {
        Mode::Strings => {
            let pin = pin.ok_or_else(|| Failure::new(2, PIN_NOT_SET))?;
            let index = codes::choose_index(&device.used_set(), args.index)
                .map_err(|err| Failure::new(1, err.to_string()))?;
            let code = codes::code_for(&device.string(index)?, &pin, index);
            // Spend the index on disk before showing the code, so a code is never
            // shown twice.
            device.mark_used(index);
            state.save(path)?;
            code
        }
        Mode::Oath(key) => {
            if args.index.is_some() {
                return Err(Failure::new(2, INDEX_IN_OATH_MODE).into());
            }
            let code = match key.params.kind {
                OathKind::Totp { .. } => codes::oath_code(&key, unix_now()?),
                OathKind::Hotp => {
                    let next = key
                        .counter
                        .checked_add(1)
                        .context("the HOTP counter cannot go any higher: provision again")?;
                    let code = codes::oath_code(&key, 0);
                    // Advance the counter on disk before showing the code, so a
                    // counter value is never shown twice.
                    device.set_hotp_counter(next)?;
                    state.save(path)?;
                    code
                }
            };
            codes::oath_typed(pin.as_ref(), &code)
        }
    };
    writeln!(out, "{typed}")?;
    Ok(())
}

/// The system clock in seconds since the Unix epoch.
fn unix_now() -> Result<u64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970: set it to make TOTP codes")?;
    Ok(now.as_secs())
}

fn refresh(path: &Path, out: &mut dyn Write) -> Result<()> {
    let mut state = State::load(path)?;
    let server = state.server.clone();
    let device = state
        .device
        .as_mut()
        .ok_or_else(|| Failure::new(1, NOT_PROVISIONED))?;
    if device.otpauth_uri.is_some() {
        return Err(Failure::new(1, NO_STRINGS_IN_OATH_MODE).into());
    }
    let server = server.context("no server in the state file: provision again with --server")?;
    let batch = match Client::new(&server).fetch_strings(&device.device_token) {
        Ok(batch) => batch,
        Err(ApiError::Status { status: 401, .. }) => {
            return Err(Failure::new(1, NO_LONGER_PROVISIONED).into())
        }
        Err(ApiError::Status {
            status: 409,
            code: Some(code),
            ..
        }) if code == "NOT_STRINGS_MODE" => {
            return Err(Failure::new(1, SERVER_SAYS_OATH_MODE).into())
        }
        Err(err) => return Err(anyhow::Error::new(err).context("fetching security strings failed")),
    };
    device.batch = batch.batch;
    device.strings = batch.strings;
    device.used.clear();
    let number = device.batch;
    state.save(path)?;
    writeln!(out, "Security strings updated (batch {number})")?;
    Ok(())
}

fn show(path: &Path, out: &mut dyn Write) -> Result<()> {
    let state = State::load(path)?;
    let device = state
        .device
        .as_ref()
        .ok_or_else(|| Failure::new(1, NOT_PROVISIONED))?;
    if device.otpauth_uri.is_some() {
        return Err(Failure::new(1, NO_STRINGS_IN_OATH_MODE).into());
    }
    let used = device.used_set();
    writeln!(out, "batch {}", device.batch)?;
    for (index, string) in (1..=BATCH_SIZE).zip(&device.strings) {
        let mark = if used.is_used(index) { " used" } else { "" };
        writeln!(out, "{index:02} {string}{mark}")?;
    }
    Ok(())
}

fn status(path: &Path, args: StatusArgs, out: &mut dyn Write) -> Result<()> {
    let state = State::load(path)?;
    let or_unset = |value: &Option<String>| value.clone().unwrap_or_else(|| "(not set)".into());
    writeln!(out, "state file: {}", path.display())?;
    writeln!(out, "server: {}", or_unset(&state.server))?;
    writeln!(out, "user: {}", or_unset(&state.user))?;
    let Some(device) = &state.device else {
        writeln!(out, "device id: (not provisioned)")?;
        return Ok(());
    };
    writeln!(out, "device id: {}", device.device_id)?;
    match device.mode()? {
        Mode::Strings => {
            writeln!(out, "mode: strings")?;
            writeln!(out, "batch: {}", device.batch)?;
            writeln!(
                out,
                "strings left: {} of {BATCH_SIZE}",
                device.strings_left()
            )?;
            if args.show_key {
                writeln!(
                    out,
                    "authenticator key: (none: this device uses security strings)"
                )?;
            }
        }
        Mode::Oath(key) => {
            writeln!(out, "mode: oath")?;
            match key.params.kind {
                OathKind::Totp { .. } => writeln!(out, "kind: totp")?,
                OathKind::Hotp => writeln!(out, "kind: hotp")?,
            }
            writeln!(out, "algorithm: {}", key.params.algorithm)?;
            writeln!(out, "digits: {}", key.params.digits)?;
            match key.params.kind {
                OathKind::Totp { period } => writeln!(out, "period: {period} s")?,
                OathKind::Hotp => writeln!(out, "next counter: {}", key.counter)?,
            }
            if args.show_key {
                if let Some(uri) = &device.otpauth_uri {
                    writeln!(out, "authenticator key: {uri}")?;
                }
            }
        }
    }
    Ok(())
}

fn options(path: &Path, args: OptionsArgs, out: &mut dyn Write) -> Result<()> {
    let mut state = State::load(path)?;
    let changed = args.server.is_some() || args.user.is_some();
    if let Some(server) = args.server {
        state.server = Some(server);
    }
    if let Some(user) = args.user {
        state::check_user(&user)
            .map_err(|err| Failure::new(2, format!("Invalid user name: {err}")))?;
        state.user = Some(user);
    }
    if changed {
        state.save(path)?;
    }
    let or_unset = |value: &Option<String>| value.clone().unwrap_or_else(|| "(not set)".into());
    writeln!(out, "server: {}", or_unset(&state.server))?;
    writeln!(out, "user: {}", or_unset(&state.user))?;
    Ok(())
}

#[cfg(test)]
mod tests;
