//! systemd socket activation: sockets passed with `LISTEN_FDS`/`LISTEN_PID`
//! (see `systemd/pinwheeld.socket`) are taken once, at start, before any
//! thread exists ([`capture`]), and handed out by the local address they
//! are bound to ([`take_tcp`], [`take_udp`]): a passed socket is used for
//! the configured listener whose address it has, instead of binding one.
//! Passed sockets that match no configured listener are logged and closed.
//! Reading the descriptors is left to the `listenfd` crate.

use std::net::SocketAddr;
use std::sync::Mutex;

/// The sockets systemd passed, not yet taken by a listener.
#[derive(Default)]
struct Passed {
    tcp: Vec<std::net::TcpListener>,
    udp: Vec<std::net::UdpSocket>,
}

static PASSED: Mutex<Option<Passed>> = Mutex::new(None);

/// Takes the sockets systemd passed to this process (none without
/// `LISTEN_FDS`, or when `LISTEN_PID` names another process) and clears
/// those variables. Call once from `main` before the async runtime starts
/// threads. Returns how many sockets were passed; descriptors that are
/// neither a TCP listener nor a UDP socket are logged and left alone.
pub fn capture() -> usize {
    let mut fds = listenfd::ListenFd::from_env();
    let mut passed = Passed::default();
    for idx in 0..fds.len() {
        match fds.take_tcp_listener(idx) {
            Ok(Some(listener)) => {
                passed.tcp.push(listener);
                continue;
            }
            Ok(None) => continue,
            Err(_) => {}
        }
        match fds.take_udp_socket(idx) {
            Ok(Some(socket)) => passed.udp.push(socket),
            Ok(None) => {}
            Err(e) => tracing::warn!(
                "socket activation: passed descriptor {} is neither a TCP listener nor a UDP socket ({e}); ignored",
                idx + 3
            ),
        }
    }
    let count = fds.len();
    *PASSED.lock().unwrap_or_else(|p| p.into_inner()) = Some(passed);
    count
}

/// The passed TCP listener bound to `addr`, set non-blocking, if systemd
/// passed one.
pub fn take_tcp(addr: SocketAddr) -> Option<std::net::TcpListener> {
    let mut guard = PASSED.lock().unwrap_or_else(|p| p.into_inner());
    let passed = guard.as_mut()?;
    let at = passed
        .tcp
        .iter()
        .position(|l| l.local_addr().ok() == Some(addr))?;
    let listener = passed.tcp.swap_remove(at);
    listener.set_nonblocking(true).ok()?;
    Some(listener)
}

/// The passed UDP socket bound to `addr`, set non-blocking, if systemd
/// passed one.
pub fn take_udp(addr: SocketAddr) -> Option<std::net::UdpSocket> {
    let mut guard = PASSED.lock().unwrap_or_else(|p| p.into_inner());
    let passed = guard.as_mut()?;
    let at = passed
        .udp
        .iter()
        .position(|s| s.local_addr().ok() == Some(addr))?;
    let socket = passed.udp.swap_remove(at);
    socket.set_nonblocking(true).ok()?;
    Some(socket)
}

/// The passed TCP listener bound to `addr` if systemd passed one, else a
/// new one bound to `addr`.
///
/// Errors: binding failed (address in use, not permitted, not local).
pub async fn tcp_listener(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    match take_tcp(addr) {
        Some(listener) => {
            tracing::info!("socket activation: using the passed TCP socket {addr}");
            tokio::net::TcpListener::from_std(listener)
        }
        None => tokio::net::TcpListener::bind(addr).await,
    }
}

/// The passed UDP socket bound to `addr` if systemd passed one, else a new
/// one bound to `addr`.
///
/// Errors: binding failed (address in use, not permitted, not local).
pub async fn udp_socket(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    match take_udp(addr) {
        Some(socket) => {
            tracing::info!("socket activation: using the passed UDP socket {addr}");
            tokio::net::UdpSocket::from_std(socket)
        }
        None => tokio::net::UdpSocket::bind(addr).await,
    }
}

/// Logs and closes the passed sockets no listener took (their addresses are
/// not in the configuration).
pub fn close_unused() {
    let mut guard = PASSED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(passed) = guard.take() {
        for l in passed.tcp {
            tracing::warn!(
                "socket activation: passed TCP socket {} matches no configured listener ([http] listen); closed",
                l.local_addr().map(|a| a.to_string()).unwrap_or_default()
            );
        }
        for s in passed.udp {
            tracing::warn!(
                "socket activation: passed UDP socket {} matches no configured listener ([radius] listen, accounting_listen); closed",
                s.local_addr().map(|a| a.to_string()).unwrap_or_default()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_handed_out_by_address_once() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (t, u) = (tcp.local_addr().unwrap(), udp.local_addr().unwrap());
        *PASSED.lock().unwrap() = Some(Passed {
            tcp: vec![tcp],
            udp: vec![udp],
        });
        assert!(take_udp(t).is_none(), "a TCP address is no UDP socket");
        assert_eq!(take_tcp(t).unwrap().local_addr().unwrap(), t);
        assert!(take_tcp(t).is_none(), "taken once");
        assert_eq!(take_udp(u).unwrap().local_addr().unwrap(), u);
        close_unused();
        assert!(PASSED.lock().unwrap().is_none());
    }
}
