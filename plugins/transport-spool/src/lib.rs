//! Spool-folder transport plugin (placeholder).
//!
//! The spool transport currently lives inside the daemon
//! (`pinwheel::transport::spool`); it moves here once `pinwheel-sdk` defines
//! the plugin ABI. This crate only pins the ABI version it will be built for.
#![forbid(unsafe_code)]

/// The plugin ABI version this plugin targets.
pub const TARGET_ABI: u32 = pinwheel_sdk::ABI_VERSION;
