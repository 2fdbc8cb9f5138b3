//! `pinwheel-sdk`: the plugin SDK for Pinwheel transports and directories.
//!
//! This crate is a placeholder in the first vertical slice: the C ABI
//! (`pinwheel_plugin_v1`), the `Transport` and `Directory` traits and the
//! export macro arrive with the plugin issue. Until then the only transport is
//! the built-in spool folder inside the daemon.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Version of the plugin ABI this SDK will export. The host refuses plugins
/// whose table carries another number.
pub const ABI_VERSION: u32 = 1;
