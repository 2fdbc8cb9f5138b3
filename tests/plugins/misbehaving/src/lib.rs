//! Test plugin: a transport that misbehaves on request, to show the daemon
//! survives it.
//!
//! `config = { mode = "ok" | "error" | "panic" | "hang", hang_seconds = N }`
//! decides what `send` and `health` do: succeed (`ok`), return an
//! "unavailable" error (`error`), panic (`panic`) or sleep `hang_seconds`
//! (default 3600) before succeeding (`hang`). `health_mode` (same values)
//! overrides the mode for `health` alone; `init_hang_seconds` makes building
//! the plugin itself sleep that long first. `send` never looks at the body.
#![forbid(unsafe_code)]

use pinwheel_sdk::{Message, Plugin, PluginError, Transport};
use serde::Deserialize;

/// What a call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Succeed.
    Ok,
    /// Return an `unavailable` error.
    Error,
    /// Panic.
    Panic,
    /// Sleep `hang_seconds`, then succeed.
    Hang,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    mode: Mode,
    #[serde(default)]
    health_mode: Option<Mode>,
    #[serde(default = "an_hour")]
    hang_seconds: u64,
    #[serde(default)]
    init_hang_seconds: u64,
}

fn an_hour() -> u64 {
    3600
}

/// The misbehaving transport.
pub struct Misbehaving {
    send_mode: Mode,
    health_mode: Mode,
    hang: std::time::Duration,
}

impl Misbehaving {
    fn act(&self, mode: Mode, what: &str) -> Result<(), PluginError> {
        match mode {
            Mode::Ok => Ok(()),
            Mode::Error => Err(PluginError::unavailable(format!(
                "misbehaving: {what} failed on purpose (mode error)"
            ))),
            Mode::Panic => panic!("misbehaving: {what} panicked on purpose (mode panic)"),
            Mode::Hang => {
                std::thread::sleep(self.hang);
                Ok(())
            }
        }
    }
}

impl Plugin for Misbehaving {
    const NAME: &'static str = "misbehaving";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(config: serde_json::Value) -> Result<Self, PluginError> {
        let s: Settings = serde_json::from_value(config)
            .map_err(|e| PluginError::config(format!("misbehaving: {e}")))?;
        std::thread::sleep(std::time::Duration::from_secs(s.init_hang_seconds));
        Ok(Misbehaving {
            send_mode: s.mode,
            health_mode: s.health_mode.unwrap_or(s.mode),
            hang: std::time::Duration::from_secs(s.hang_seconds),
        })
    }

    fn health(&self) -> Result<(), PluginError> {
        self.act(self.health_mode, "health")
    }
}

impl Transport for Misbehaving {
    fn send(&self, message: &Message) -> Result<(), PluginError> {
        let _ = message;
        self.act(self.send_mode, "send")
    }
}

pinwheel_sdk::export_plugin!(Transport, Misbehaving);
