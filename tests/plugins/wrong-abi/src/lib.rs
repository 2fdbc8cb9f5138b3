//! Test plugin: a working transport whose plugin table claims ABI version
//! 99, so the daemon must refuse to load it (and say why).
#![forbid(unsafe_code)]

use pinwheel_sdk::{Message, Plugin, PluginError, Transport};

/// Accepts every message and drops it.
pub struct WrongAbi;

impl Plugin for WrongAbi {
    const NAME: &'static str = "wrong-abi";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(_config: serde_json::Value) -> Result<Self, PluginError> {
        Ok(WrongAbi)
    }
}

impl Transport for WrongAbi {
    fn send(&self, _message: &Message) -> Result<(), PluginError> {
        Ok(())
    }
}

pinwheel_sdk::export_plugin!(@abi 99, Transport, WrongAbi);
