//! `pinwheel`: the library behind the `pinwheeld` daemon and the `pinwheelctl`
//! admin CLI.
//!
//! It owns the whole server side of Pinwheel: the configuration model
//! ([`config`]), the pure one-time-code engine ([`otc`]), the SQLite store
//! ([`store`]), secrets at rest ([`secrets`]), the single rule deciding whether a
//! code is right ([`auth`]), Mobile Provision Codes ([`provision`]), message
//! delivery ([`transport`], through plugins loaded by [`plugin_host`]), and
//! the three front doors: RADIUS ([`radius`]),
//! HTTP ([`http`]) and the admin socket ([`admin`]). [`system`] holds what
//! touches the operating system (signals, sd_notify, logging).
//!
//! Nothing here may log or return a PIN, one-time code, provision code, seed,
//! device token or shared secret. Only [`plugin_host`] may use `unsafe`
//! (the plugin C ABI).
#![deny(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod auth;
pub mod config;
pub mod daemon;
pub mod directory;
pub mod http;
pub mod metrics;
pub mod otc;
#[allow(unsafe_code)]
pub mod plugin_host;
pub mod provision;
pub mod radius;
pub mod secrets;
pub mod store;
pub mod system;
pub mod transport;

/// Current time as Unix seconds (UTC). The one clock every module reads, so
/// tests can reason about lifetimes in whole seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
