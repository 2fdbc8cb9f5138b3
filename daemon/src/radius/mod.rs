//! RADIUS (RFC 2865, 2869, 3579, 5997): [`codec`] turns bytes into typed
//! packets and back with no sockets; [`server`] is the only place that touches
//! the UDP socket. Neither ever decides whether a code is right: that is
//! [`crate::auth`].

pub mod codec;
pub mod mschap;
pub mod server;
