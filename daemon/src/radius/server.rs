//! The RADIUS authentication loop: the only code that touches the UDP socket.
//!
//! For each datagram: find the client by source address (most specific CIDR
//! wins; unknown sources are dropped), decode and check the packet with that
//! client's shared secret (a bad Message-Authenticator, or a missing one when
//! the client requires it, is dropped), answer a retransmission from the
//! reply cache without checking again (RFC 5080 §2.2.2), and otherwise queue
//! the Access-Request's decision ([`crate::auth::decide_in`], the rule of
//! [`crate::auth::check_code`]) to the store's decision thread, bounded by
//! `radius.max_in_flight`. That thread commits a batch of decisions at once
//! and then encodes and sends each reply: a reply is sent only after the
//! spent index is committed. Two-stage first legs run as tasks in a pool of
//! their own ([`MAX_FIRST_LEGS`]), answered no sooner than
//! `dual_channel.first_leg_min_delay` after they arrived. Drops are logged
//! at most a few times a second, so a flood cannot fill the journal. Never logs a password, code or secret.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::codec::{self, attr, Code, Request};
use super::mschap;
use crate::auth::{self, Decision};
use crate::config::{GroupsAttribute, ReplyOptions, ResolvedClient};
use crate::daemon::App;
use crate::store::StoreError;

/// How long a reply is kept for retransmissions (RFC 5080 §2.2.2).
const REPLY_CACHE_TTL: Duration = Duration::from_secs(30);
/// Most datagrams still read from the socket after a shutdown is asked for.
const DRAIN_MAX_DATAGRAMS: usize = 4096;
/// Most entries in the reply cache; older ones are evicted beyond this.
const REPLY_CACHE_MAX: usize = 65_536;
/// Most two-stage first legs being handled at once (across all clients).
/// They wait for directories, Argon2 and transports, so they have this pool
/// of their own instead of `radius.max_in_flight`'s slots: a hung directory
/// under a flood of first legs cannot slow down PAP requests, second legs
/// or Status-Server. More are dropped (logged, rate-limited); the NAS retries.
pub const MAX_FIRST_LEGS: usize = 32;

/// The RADIUS clients in effect, behind a lock so that a reload (SIGHUP) can
/// swap them whole. The receive loop takes one snapshot (an `Arc` clone) per
/// datagram and never holds the lock across an `.await`; a request keeps the
/// client set it arrived under until it is answered. Each client has its
/// [`ClientStats`] (same index), carried over a reload by client name.
#[derive(Debug, Default)]
pub struct Clients {
    current: std::sync::RwLock<ClientSet>,
}

/// The clients and their statistics, index by index.
type ClientSet = (Arc<Vec<ResolvedClient>>, Arc<Vec<Arc<ClientStats>>>);

/// What the receive loop counts per RADIUS client (atomics only).
#[derive(Debug)]
pub struct ClientStats {
    /// The client's configured name.
    pub name: String,
    /// Unix seconds of the last authenticated request, 0 = never.
    last_seen: std::sync::atomic::AtomicI64,
    /// Authenticated requests since the daemon started.
    requests: std::sync::atomic::AtomicU64,
}

impl ClientStats {
    fn new(name: &str) -> ClientStats {
        ClientStats {
            name: name.to_string(),
            last_seen: std::sync::atomic::AtomicI64::new(0),
            requests: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Records a request (signed with the client's secret) arriving now.
    fn seen(&self) {
        use std::sync::atomic::Ordering;
        self.last_seen.store(crate::unix_now(), Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Unix seconds of the last request, `None` if none came since start.
    pub fn last_seen(&self) -> Option<i64> {
        match self.last_seen.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            t => Some(t),
        }
    }

    /// Requests counted since start.
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Clients {
    /// The set `clients`.
    pub fn new(clients: Vec<ResolvedClient>) -> Clients {
        let stats = clients
            .iter()
            .map(|c| Arc::new(ClientStats::new(&c.name)))
            .collect();
        Clients {
            current: std::sync::RwLock::new((Arc::new(clients), Arc::new(stats))),
        }
    }

    /// The current clients.
    pub fn snapshot(&self) -> Arc<Vec<ResolvedClient>> {
        self.snapshot_with_stats().0
    }

    /// The current clients and their statistics (same indexes).
    pub fn snapshot_with_stats(&self) -> ClientSet {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the whole set (on reload). A client whose name was already
    /// configured keeps its statistics.
    pub fn replace(&self, clients: Vec<ResolvedClient>) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        let stats = clients
            .iter()
            .map(|c| {
                current
                    .1
                    .iter()
                    .find(|s| s.name == c.name)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(ClientStats::new(&c.name)))
            })
            .collect();
        *current = (Arc::new(clients), Arc::new(stats));
    }
}

/// Picks the client whose network contains `ip` with the longest prefix.
pub fn find_client(clients: &[ResolvedClient], ip: IpAddr) -> Option<&ResolvedClient> {
    find_client_index(clients, ip).map(|i| &clients[i])
}

/// Index of the client [`find_client`] picks (one pass over the list).
fn find_client_index(clients: &[ResolvedClient], ip: IpAddr) -> Option<usize> {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    clients
        .iter()
        .enumerate()
        .filter(|(_, c)| c.address.contains(&ip))
        .max_by_key(|(_, c)| c.address.prefix_len())
        .map(|(i, _)| i)
}

/// Key of a request for duplicate detection: source, identifier, authenticator.
type CacheKey = (SocketAddr, u8, [u8; 16]);

enum CacheEntry {
    /// Being checked now: a retransmission is dropped (the answer will come).
    InFlight,
    /// Answered at the instant given.
    Answered(Instant, Arc<Vec<u8>>),
}

/// Answers kept for retransmissions. Bounded: answers older than the TTL
/// go first, and beyond [`REPLY_CACHE_MAX`] the oldest answers are evicted
/// early (a retransmission of an evicted request is then checked again,
/// which rejects it: its code is spent). New requests are never refused
/// because the cache is full.
#[derive(Default)]
struct ReplyCache {
    entries: HashMap<CacheKey, CacheEntry>,
    /// Answered keys, oldest first, for eviction.
    order: std::collections::VecDeque<(Instant, CacheKey)>,
}

impl ReplyCache {
    /// Stores an answer and evicts expired or excess ones.
    fn answered(&mut self, key: CacheKey, reply: Arc<Vec<u8>>) {
        let now = Instant::now();
        self.entries.insert(key, CacheEntry::Answered(now, reply));
        self.order.push_back((now, key));
        self.evict(now);
    }

    fn evict(&mut self, now: Instant) {
        while let Some(&(at, key)) = self.order.front() {
            let expired = now.duration_since(at) >= REPLY_CACHE_TTL;
            if !expired && self.order.len() <= REPLY_CACHE_MAX {
                break;
            }
            self.order.pop_front();
            // Remove only the answer this record is about (the key may have
            // been answered again since).
            if matches!(self.entries.get(&key), Some(CacheEntry::Answered(t, _)) if *t == at) {
                self.entries.remove(&key);
            }
        }
    }

    fn prune(&mut self) {
        self.evict(Instant::now());
    }
}

/// Rate limit for drop log lines: at most `PER_SECOND` lines a second.
struct LogLimiter {
    window: Mutex<(Instant, u32, u64)>,
}

impl LogLimiter {
    const PER_SECOND: u32 = 10;

    fn new() -> Self {
        LogLimiter {
            window: Mutex::new((Instant::now(), 0, 0)),
        }
    }

    /// Whether to log now; reports how many lines were suppressed before.
    fn allow(&self) -> Option<u64> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now.duration_since(w.0) >= Duration::from_secs(1) {
            let suppressed = w.2;
            *w = (now, 1, 0);
            return Some(suppressed);
        }
        if w.1 < Self::PER_SECOND {
            w.1 += 1;
            Some(0)
        } else {
            w.2 += 1;
            None
        }
    }
}

/// Which RADIUS port a loop serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// Access-Request and Status-Server (RFC 2865, 5997).
    Authentication,
    /// Accounting-Request and Status-Server (RFC 2866, 5997).
    Accounting,
}

struct Server {
    port: Port,
    app: Arc<App>,
    socket: UdpSocket,
    cache: Mutex<ReplyCache>,
    limiter: LogLimiter,
    in_flight: Arc<Semaphore>,
    /// Slots of two-stage first legs ([`MAX_FIRST_LEGS`]).
    first_legs: Arc<Semaphore>,
    /// For the rare sends that cannot complete at once, and first legs.
    runtime: tokio::runtime::Handle,
}

impl Server {
    fn drop_packet(&self, from: SocketAddr, why: &str) {
        if let Some(suppressed) = self.limiter.allow() {
            if suppressed > 0 {
                tracing::warn!("{suppressed} further dropped RADIUS packets not logged");
            }
            tracing::warn!(source = %from, "RADIUS packet dropped: {why}");
        }
    }

    /// [`Server::drop_packet`] for a datagram dropped before it became a
    /// [`Pending`] request, counted in the metrics.
    fn drop_early(&self, from: SocketAddr, why: &str) {
        crate::metrics::METRICS.request(
            crate::metrics::Source::Radius,
            crate::metrics::Outcome::Drop,
        );
        self.drop_packet(from, why);
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, ReplyCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `bytes` to `to` from whatever thread answers (the receive loop
    /// or the store's decision thread): at once when the socket takes it,
    /// else from a task that waits until it can. `permit` (the request's
    /// slot) is given back once the reply is sent.
    fn send(self: &Arc<Self>, bytes: Arc<Vec<u8>>, to: SocketAddr, permit: OwnedSemaphorePermit) {
        match self.socket.try_send_to(&bytes, to) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let server = self.clone();
                self.runtime.spawn(async move {
                    if let Err(e) = server.socket.send_to(&bytes, to).await {
                        tracing::warn!(source = %to, "RADIUS reply could not be sent: {e}");
                    }
                    drop(permit);
                });
            }
            Err(e) => tracing::warn!(source = %to, "RADIUS reply could not be sent: {e}"),
        }
    }
}

/// Serves Access-Requests on `socket` until `shutdown` turns true, then
/// waits for in-flight requests to be answered.
///
/// Each datagram is checked on this loop (no task per datagram); a decision
/// is queued to the store's decision thread ([`crate::store::Store::submit`]),
/// which commits it with the others of its batch and then encodes and sends
/// the reply itself. Only two-stage first legs (an Argon2 password check and
/// a transport send) run as tasks.
pub async fn serve(
    app: Arc<App>,
    socket: UdpSocket,
    port: Port,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let max = app.config.radius.max_in_flight;
    let server = Arc::new(Server {
        port,
        app,
        socket,
        cache: Mutex::new(ReplyCache::default()),
        limiter: LogLimiter::new(),
        in_flight: Arc::new(Semaphore::new(max)),
        first_legs: Arc::new(Semaphore::new(MAX_FIRST_LEGS)),
        runtime: tokio::runtime::Handle::current(),
    });
    // One byte more than the largest legal packet, to detect oversize ones.
    let mut buf = vec![0u8; codec::MAX_PACKET_LEN + 1];
    let mut last_prune = Instant::now();
    // The watchdog's sign that this loop is polled (see crate::metrics).
    let mut heartbeat = tokio::time::interval(crate::metrics::HEARTBEAT_PERIOD);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let received = tokio::select! {
            r = server.socket.recv_from(&mut buf) => r,
            _ = heartbeat.tick(), if port == Port::Authentication => {
                crate::metrics::METRICS.radius_heartbeat();
                continue;
            }
            _ = crate::system::shutdown_requested(&mut shutdown) => break,
        };
        let (len, from) = match received {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors from earlier sends surface here on Linux; keep serving.
                tracing::debug!("RADIUS recv error: {e}");
                continue;
            }
        };
        if last_prune.elapsed() > Duration::from_secs(5) {
            server.cache().prune();
            last_prune = Instant::now();
        }
        // Wait for a slot: the socket buffer holds the rest, nothing unbounded grows.
        let permit = match server.in_flight.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::select! {
                p = server.in_flight.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = crate::system::shutdown_requested(&mut shutdown) => break,
            },
        };
        handle_datagram(&server, &buf[..len], from, permit);
    }
    // Datagrams already waiting in the socket when the shutdown came were
    // sent before it: answer them too (at most one buffer's worth, so a
    // flood cannot hold the shutdown up).
    for _ in 0..DRAIN_MAX_DATAGRAMS {
        let Ok((len, from)) = server.socket.try_recv_from(&mut buf) else {
            break;
        };
        let Ok(permit) = server.in_flight.clone().acquire_owned().await else {
            break;
        };
        handle_datagram(&server, &buf[..len], from, permit);
    }
    // Drain: every permit back means every in-flight request was answered.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let _ = server.in_flight.acquire_many(max as u32).await;
        let _ = server.first_legs.acquire_many(MAX_FIRST_LEGS as u32).await;
    })
    .await;
}

/// A reply's code and attributes (before encoding).
type Answer = (Code, Vec<(u8, Vec<u8>)>);

/// A request that will be answered: everything needed to encode, cache and
/// send its reply, and the slot it holds until then.
struct Pending {
    server: Arc<Server>,
    /// The client set the request arrived under.
    clients: Arc<Vec<ResolvedClient>>,
    /// Index of the client in `clients`.
    client: usize,
    request: Request,
    from: SocketAddr,
    key: CacheKey,
    permit: OwnedSemaphorePermit,
    /// When the datagram was taken from the socket (for the latency metric).
    received: Instant,
}

impl Pending {
    fn client(&self) -> &ResolvedClient {
        &self.clients[self.client]
    }

    /// Encodes the answer, records it for retransmissions and sends it;
    /// `None` (or an answer that cannot be encoded) drops the request.
    fn finish(self, answer: Option<Answer>) {
        let client = self.client();
        let answer_code = answer.as_ref().map(|(code, _)| *code);
        let bytes = answer.and_then(|(code, attributes)| {
            match codec::encode_reply(code, &self.request, &attributes, client.secret.expose()) {
                Ok(bytes) => Some(Arc::new(bytes)),
                Err(e) => {
                    // Rate-limited like every drop: the request may be unauthenticated.
                    self.server.drop_packet(
                        self.from,
                        &format!("client {}: reply could not be encoded: {e}", client.name),
                    );
                    None
                }
            }
        });
        if self.request.code == Code::AccessRequest {
            use crate::metrics::{Outcome, Source, METRICS};
            let outcome = match (&bytes, answer_code) {
                (None, _) => Outcome::Drop,
                (Some(_), Some(Code::AccessAccept)) => Outcome::Accept,
                (Some(_), Some(Code::AccessChallenge)) => Outcome::Challenge,
                (Some(_), _) => Outcome::Reject,
            };
            METRICS.request(Source::Radius, outcome);
            if bytes.is_some() {
                METRICS.radius_duration.observe(self.received.elapsed());
            }
        }
        {
            let mut cache = self.server.cache();
            match &bytes {
                Some(bytes) => cache.answered(self.key, bytes.clone()),
                None => {
                    cache.entries.remove(&self.key);
                }
            }
        }
        if let Some(bytes) = bytes {
            self.server.send(bytes, self.from, self.permit);
        }
    }

    /// Drops the request without an answer.
    fn drop_with(self, why: &str) {
        self.server.drop_packet(self.from, why);
        self.finish(None);
    }
}

fn handle_datagram(
    server: &Arc<Server>,
    datagram: &[u8],
    from: SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    let received = Instant::now();
    // The one snapshot of the client set this datagram takes (an Arc clone).
    let (clients, stats) = server.app.radius_clients.snapshot_with_stats();
    let Some(client_index) = find_client_index(&clients, from.ip()) else {
        server.drop_early(
            from,
            "unknown client (no [[radius.client]] address matches)",
        );
        return;
    };
    let client = &clients[client_index];
    if datagram.len() > codec::MAX_PACKET_LEN {
        server.drop_early(from, "packet longer than 4096 bytes");
        return;
    }
    let secret = client.secret.expose();
    let request = match codec::decode_request(datagram, secret) {
        Ok(r) => r,
        Err(e) => {
            server.drop_early(
                from,
                &format!(
                    "client {}: malformed or not signed with its shared secret: {e}",
                    client.name
                ),
            );
            return;
        }
    };
    if request.code == Code::StatusServer && !request.has_message_authenticator {
        // RFC 5997 §3: Status-Server without Message-Authenticator is silently discarded.
        server.drop_early(
            from,
            &format!(
                "client {}: Status-Server without Message-Authenticator",
                client.name
            ),
        );
        return;
    }
    // BlastRADIUS concerns Access-Requests; an Accounting-Request's Request
    // Authenticator already covers the whole packet (RFC 2866 §3), so
    // accounting forwarded by a proxy (with Proxy-State) is answered.
    if client.limit_proxy_state
        && request.code == Code::AccessRequest
        && !request.has_message_authenticator
        && request.proxy_states().next().is_some()
    {
        server.drop_early(
            from,
            &format!(
                "client {}: Proxy-State without Message-Authenticator (limit_proxy_state = true)",
                client.name
            ),
        );
        return;
    }
    // An Accounting-Request's Request Authenticator already covers the whole
    // packet with the shared secret (RFC 2866 §3), so only Access-Requests need
    // Message-Authenticator (the BlastRADIUS rule).
    if client.require_message_authenticator
        && request.code == Code::AccessRequest
        && !request.has_message_authenticator
    {
        server.drop_early(
            from,
            &format!(
                "client {}: no Message-Authenticator, which this client requires (require_message_authenticator = true)",
                client.name
            ),
        );
        return;
    }
    // Counted for `pinwheelctl clients` only once it passed every check above.
    if let Some(stats) = stats.get(client_index) {
        stats.seen();
    }
    let key: CacheKey = (from, request.identifier, request.authenticator);
    enum Seen {
        New,
        Retransmission(Arc<Vec<u8>>),
        InFlight,
    }
    let seen = {
        let mut cache = server.cache();
        match cache.entries.get(&key) {
            Some(CacheEntry::Answered(at, reply)) if at.elapsed() < REPLY_CACHE_TTL => {
                Seen::Retransmission(reply.clone())
            }
            Some(CacheEntry::InFlight) => Seen::InFlight,
            _ => {
                // In-flight entries are bounded by radius.max_in_flight.
                cache.entries.insert(key, CacheEntry::InFlight);
                Seen::New
            }
        }
    };
    match seen {
        Seen::New => {}
        Seen::InFlight => return,
        Seen::Retransmission(reply) => {
            tracing::debug!(source = %from, id = request.identifier, "retransmission answered from cache");
            server.send(reply, from, permit);
            return;
        }
    }
    answer(Pending {
        server: server.clone(),
        clients,
        client: client_index,
        request,
        from,
        key,
        permit,
        received,
    });
}

/// Decides and answers one checked request (now, or once its decision is
/// committed).
fn answer(pending: Pending) {
    match (pending.server.port, pending.request.code) {
        (Port::Authentication, Code::StatusServer) => {
            pending.finish(Some((Code::AccessAccept, Vec::new())))
        }
        (Port::Accounting, Code::StatusServer) => {
            pending.finish(Some((Code::AccountingResponse, Vec::new())))
        }
        (Port::Accounting, Code::AccountingRequest) => {
            log_accounting(pending.client(), &pending.request, pending.from);
            pending.finish(Some((Code::AccountingResponse, Vec::new())))
        }
        (Port::Authentication, Code::AccessRequest) => access_request(pending),
        (port, other) => {
            let why = format!(
                "client {}: {other:?} is not accepted on the {port:?} port",
                pending.client().name
            );
            pending.drop_with(&why)
        }
    }
}

/// RADIUS attribute types used in Access-Accepts (RFC 2865 §5).
mod reply_attr {
    pub const FILTER_ID: u8 = 11;
    pub const REPLY_MESSAGE: u8 = 18;
    pub const CLASS: u8 = 25;
    pub const VENDOR_SPECIFIC: u8 = 26;
    pub const SESSION_TIMEOUT: u8 = 27;
}

/// The attributes of an Access-Accept for a client's `reply` options: the
/// user's groups (those containing `group_filter`, if set) as one Class
/// `OU=g1;g2`, one Filter-Id each, or one Vendor-Specific each; then
/// Reply-Message and Session-Timeout (seconds) when configured. Values that
/// would not fit an attribute (253 bytes) are left out.
pub fn accept_attributes(reply: &ReplyOptions, groups: &[String]) -> Vec<(u8, Vec<u8>)> {
    let filter = reply.group_filter.as_deref().map(str::to_lowercase);
    let groups: Vec<&str> = groups
        .iter()
        .map(String::as_str)
        .filter(|g| {
            filter
                .as_deref()
                .is_none_or(|f| g.to_lowercase().contains(f))
        })
        .collect();
    let mut out = Vec::new();
    match reply.groups {
        GroupsAttribute::None => {}
        GroupsAttribute::Class if !groups.is_empty() => {
            let mut value = String::from("OU=");
            for (i, g) in groups.iter().enumerate() {
                let extra = g.len() + usize::from(i > 0);
                if value.len() + extra > 253 {
                    tracing::warn!("groups beyond 253 bytes left out of Class");
                    break;
                }
                if i > 0 {
                    value.push(';');
                }
                value.push_str(g);
            }
            out.push((reply_attr::CLASS, value.into_bytes()));
        }
        GroupsAttribute::Class => {}
        GroupsAttribute::FilterId => {
            out.extend(
                groups
                    .iter()
                    .map(|g| (reply_attr::FILTER_ID, g.as_bytes().to_vec())),
            );
        }
        GroupsAttribute::Vsa => {
            if let (Some(vendor), Some(kind)) = (reply.vsa_vendor, reply.vsa_type) {
                for g in groups.iter().filter(|g| g.len() <= 247) {
                    let mut value = vendor.to_be_bytes().to_vec();
                    value.push(kind);
                    value.push((g.len() + 2) as u8);
                    value.extend_from_slice(g.as_bytes());
                    out.push((reply_attr::VENDOR_SPECIFIC, value));
                }
            }
        }
    }
    if let Some(message) = &reply.reply_message {
        out.push((reply_attr::REPLY_MESSAGE, message.as_bytes().to_vec()));
    }
    if let Some(timeout) = reply.session_timeout {
        let secs = u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX);
        out.push((reply_attr::SESSION_TIMEOUT, secs.to_be_bytes().to_vec()));
    }
    out
}

/// What an Access-Request offers as proof of the code.
enum Proof {
    /// User-Password (PAP), unhidden.
    Pap(Vec<u8>),
    /// CHAP-Password with its challenge.
    Chap {
        id: u8,
        response: [u8; 16],
        challenge: Vec<u8>,
    },
    /// MS-CHAP-Challenge and MS-CHAP2-Response (RFC 2548).
    MsChapV2 {
        challenge: [u8; 16],
        response: mschap::MsChap2Response,
    },
    /// None of them.
    Nothing,
}

/// Vendor-Specific attribute (RFC 2865 §5.26).
const VENDOR_SPECIFIC: u8 = 26;

/// Finds the proof an Access-Request carries. `Err` says why the request is
/// malformed (it is then dropped).
fn read_proof(request: &Request, password: Option<Vec<u8>>) -> Result<Proof, String> {
    if let Some(p) = password {
        return Ok(Proof::Pap(p));
    }
    // CHAP-Password (RFC 2865 §5.3): identifier then 16-octet response; the
    // challenge is CHAP-Challenge or else the Request Authenticator.
    if let Some(v) = request.attribute(CHAP_PASSWORD) {
        let (Some((&id, rest)), 17) = (v.split_first(), v.len()) else {
            return Err("CHAP-Password is not 17 octets".into());
        };
        let mut response = [0u8; 16];
        response.copy_from_slice(rest);
        let challenge = request
            .attribute(CHAP_CHALLENGE)
            .map(<[u8]>::to_vec)
            .unwrap_or_else(|| request.authenticator.to_vec());
        return Ok(Proof::Chap {
            id,
            response,
            challenge,
        });
    }
    let mut challenge = None;
    let mut response = None;
    for (kind, value) in &request.attributes {
        if *kind != VENDOR_SPECIFIC {
            continue;
        }
        let Ok(subs) = mschap::parse_vendor_specific(value) else {
            continue; // another vendor's format: not ours to judge
        };
        for (vendor, vendor_type, data) in subs {
            match (vendor, vendor_type) {
                (mschap::VENDOR_MICROSOFT, mschap::MS_CHAP_CHALLENGE) => {
                    challenge = Some(
                        <[u8; 16]>::try_from(data.as_slice())
                            .map_err(|_| "MS-CHAP-Challenge is not 16 octets".to_string())?,
                    );
                }
                (mschap::VENDOR_MICROSOFT, mschap::MS_CHAP2_RESPONSE) => {
                    response = Some(
                        mschap::parse_response(&data)
                            .map_err(|e| format!("bad MS-CHAP2-Response: {e}"))?,
                    );
                }
                _ => {}
            }
        }
    }
    Ok(match (challenge, response) {
        (Some(challenge), Some(response)) => Proof::MsChapV2 {
            challenge,
            response,
        },
        (None, Some(_)) => return Err("MS-CHAP2-Response without MS-CHAP-Challenge".into()),
        _ => Proof::Nothing,
    })
}

/// CHAP-Password attribute (RFC 2865 §5.3).
const CHAP_PASSWORD: u8 = 3;
/// CHAP-Challenge attribute (RFC 2865 §5.40).
const CHAP_CHALLENGE: u8 = 60;

/// The Reply-Message of every Access-Challenge.
pub const CHALLENGE_MESSAGE: &str = "One-Time Code";

/// Decides an Access-Request: PAP with an OTC, or the two legs of a
/// two-stage login on `two_stage` clients, and answers it once the decision
/// is committed (or drops it).
fn access_request(pending: Pending) {
    let client = pending.client();
    let secret = client.secret.expose();
    let password = match pending.request.user_password(secret) {
        Ok(p) => p,
        Err(e) => {
            let why = format!("client {}: bad User-Password: {e}", client.name);
            return pending.drop_with(&why);
        }
    };
    let Some(user) = pending.request.user_name().map(str::to_string) else {
        tracing::info!(nas = %client.name, source = %pending.from, reason = "no_user_name", "Access-Reject");
        return audit_reject(pending, None, "no_user_name", None);
    };
    let source = crate::audit::Source::Radius {
        nas: client.name.clone(),
        addr: pending.from,
    };
    let nas = client.name.clone();
    let two_stage = client.two_stage;
    let state = pending.request.attribute(attr::STATE).map(<[u8]>::to_vec);
    let proof = match read_proof(&pending.request, password) {
        Ok(p) => p,
        Err(why) => {
            let why = format!("client {}: {why}", client.name);
            return pending.drop_with(&why);
        }
    };
    match (two_stage, state, proof) {
        (true, None, proof @ (Proof::Pap(_) | Proof::Nothing)) => {
            // First leg: directory password (or none) -> Access-Challenge.
            // Directories, Argon2 and the transport are slow: a task, not the
            // store thread, holding a first-leg slot instead of the shared one.
            let Ok(slot) = pending.server.first_legs.clone().try_acquire_owned() else {
                return pending.drop_with(&format!(
                    "client {nas}: {MAX_FIRST_LEGS} two-stage first legs already waiting; the NAS will retry"
                ));
            };
            let mut pending = pending;
            drop(std::mem::replace(&mut pending.permit, slot));
            let password = match proof {
                Proof::Pap(p) => p,
                _ => Vec::new(),
            };
            let runtime = pending.server.runtime.clone();
            runtime.spawn(first_leg(pending, user, password, nas, source));
        }
        (true, None, _) => {
            // A first leg carries the directory password by PAP, never CHAP.
            audit_reject(
                pending,
                Some(user),
                "chap_not_supported",
                Some(auth::RejectReason::ChapUnsupported),
            )
        }
        (_, _, Proof::Nothing) => audit_reject(
            pending,
            Some(user),
            "no_user_password",
            Some(auth::RejectReason::Malformed),
        ),
        (two_stage, state, proof) => {
            let ident = match &proof {
                Proof::MsChapV2 { response, .. } => Some(response.ident),
                _ => None,
            };
            let app = pending.server.app.clone();
            let name = user.clone();
            let owner = pending.server.app.clone();
            let decide = move |conn: &rusqlite::Connection| {
                let success = std::cell::RefCell::new(None);
                let input;
                let credential = match &proof {
                    Proof::Pap(p) => {
                        input = String::from_utf8_lossy(p).into_owned();
                        auth::Credential::Pap(&input)
                    }
                    Proof::Chap {
                        id,
                        response,
                        challenge,
                    } => auth::Credential::Chap {
                        id: *id,
                        response: *response,
                        challenge,
                    },
                    Proof::MsChapV2 {
                        challenge,
                        response,
                    } => auth::Credential::MsChapV2 {
                        username: name.as_bytes(),
                        authenticator_challenge: *challenge,
                        response,
                        success: &success,
                    },
                    Proof::Nothing => auth::Credential::Pap(""),
                };
                let now = crate::unix_now();
                let audited = match (two_stage, &state) {
                    (true, Some(state)) => auth::challenge::answer_in(
                        &app,
                        conn,
                        &name,
                        state,
                        &credential,
                        &nas,
                        &source,
                        now,
                    )?,
                    _ => auth::decide_in(&app, conn, &name, &credential, &source, now)?,
                };
                Ok((audited, success.into_inner()))
            };
            let done = move |out: Result<(auth::Audited, Option<String>), StoreError>| match out {
                Ok((audited, success)) => {
                    let reply = decided(
                        &pending,
                        &user,
                        audited.decision,
                        &audited.groups,
                        ident.zip(success),
                    );
                    let app = pending.server.app.clone();
                    // Reply first (its decision is committed), then the audit line.
                    pending.finish(Some(reply));
                    audited.emit(&app);
                }
                Err(e) => {
                    // We cannot stand behind an answer about an uncommitted
                    // decision: no answer; the NAS retries or fails over.
                    tracing::error!(user = ?user, "authentication not decided, store error: {e}");
                    pending.finish(None);
                }
            };
            owner.store.submit(decide, done);
        }
    }
}

/// The first leg of a two-stage login, as a task: the directory password
/// check and the transport send run on the blocking pool. Its answer
/// (Challenge or Reject) is sent no sooner than
/// `dual_channel.first_leg_min_delay` after the request arrived (an async
/// sleep of this task), so the time does not reveal who exists.
async fn first_leg(
    pending: Pending,
    user: String,
    password: Vec<u8>,
    nas: String,
    source: crate::audit::Source,
) {
    let app = pending.server.app.clone();
    let name = user.clone();
    let leg = tokio::task::spawn_blocking(move || {
        auth::challenge::start(&app, &name, &password, &nas, &source)
    })
    .await;
    let not_before = pending.received + pending.server.app.config.dual_channel.first_leg_min_delay;
    let padded = async {
        tokio::time::sleep_until(tokio::time::Instant::from_std(not_before)).await;
    };
    let leg = match leg {
        Ok(Ok(leg)) => leg,
        Ok(Err(e)) => {
            tracing::error!(user = ?user, "authentication not decided, store error: {e}");
            return pending.finish(None);
        }
        Err(e) => {
            tracing::error!(user = ?user, "authentication task failed: {e}");
            return pending.finish(None);
        }
    };
    match leg {
        auth::challenge::FirstLeg::Challenge { state } => {
            padded.await;
            tracing::info!(user = ?user, nas = %pending.client().name, source = %pending.from, "Access-Challenge");
            pending.finish(Some((
                Code::AccessChallenge,
                vec![
                    (attr::STATE, state),
                    (attr::REPLY_MESSAGE, CHALLENGE_MESSAGE.as_bytes().to_vec()),
                ],
            )))
        }
        auth::challenge::FirstLeg::Reject(r) => {
            padded.await;
            let reply = decided(&pending, &user, Decision::Reject(r), &[], None);
            pending.finish(Some(reply))
        }
        auth::challenge::FirstLeg::Busy => {
            pending.drop_with("too many directory password checks waiting; the NAS will retry")
        }
    }
}

/// The reply to a committed decision: Access-Accept with the groups (and
/// MS-CHAP2-Success), or Access-Reject.
fn decided(
    pending: &Pending,
    user: &str,
    decision: Decision,
    groups: &[String],
    ms_chap_success: Option<(u8, String)>,
) -> Answer {
    let client = pending.client();
    match decision {
        Decision::Accept => {
            // The audit line already records the decision: one log line per request.
            tracing::debug!(user = ?user, nas = %client.name, source = %pending.from, "Access-Accept");
            // The groups were read in the decision's own transaction.
            let mut attributes = accept_attributes(&client.reply, groups);
            if let Some((ident, response)) = ms_chap_success {
                let data = mschap::success_data(ident, &response);
                match mschap::vendor_specific(
                    mschap::VENDOR_MICROSOFT,
                    mschap::MS_CHAP2_SUCCESS,
                    &data,
                ) {
                    Ok(vsa) => attributes.insert(0, (VENDOR_SPECIFIC, vsa)),
                    Err(e) => tracing::error!("MS-CHAP2-Success could not be encoded: {e}"),
                }
            }
            (Code::AccessAccept, attributes)
        }
        Decision::Reject(r) => {
            tracing::debug!(user = ?user, nas = %client.name, source = %pending.from, reason = r.code(), "Access-Reject");
            (Code::AccessReject, Vec::new())
        }
    }
}

/// Writes the audit row of an Access-Reject decided here, before any code
/// could be looked at, and answers Access-Reject once it is committed.
/// (`logged`: the reason for the debug line, when there is a user.)
fn audit_reject(
    pending: Pending,
    user: Option<String>,
    reason: &'static str,
    logged: Option<auth::RejectReason>,
) {
    let client = pending.client();
    let source = crate::audit::Source::Radius {
        nas: client.name.clone(),
        addr: pending.from,
    };
    let row = crate::audit::row(
        crate::unix_now(),
        "auth",
        user.as_deref(),
        &source,
        crate::audit::Outcome::Fail,
        Some(reason),
    );
    let owner = pending.server.app.clone();
    let job_row = row.clone();
    owner.store.submit(
        move |conn| crate::store::audit::insert(conn, &job_row),
        move |out| {
            if let Err(e) = &out {
                tracing::warn!("audit write failed: {e}");
            }
            let app = pending.server.app.clone();
            let reply = match (logged, &user) {
                (Some(r), Some(user)) => decided(&pending, user, Decision::Reject(r), &[], None),
                _ => (Code::AccessReject, Vec::new()),
            };
            pending.finish(Some(reply));
            app.audit.emit(&[row]);
        },
    );
}

/// Logs an Accounting-Request: user, session, status type (RFC 2866 §5).
fn log_accounting(client: &ResolvedClient, request: &Request, from: SocketAddr) {
    const ACCT_STATUS_TYPE: u8 = 40;
    const ACCT_SESSION_ID: u8 = 44;
    let status = request
        .attribute(ACCT_STATUS_TYPE)
        .and_then(|v| <[u8; 4]>::try_from(v).ok())
        .map(u32::from_be_bytes);
    let status = match status {
        Some(1) => "Start",
        Some(2) => "Stop",
        Some(3) => "Interim-Update",
        Some(7) => "Accounting-On",
        Some(8) => "Accounting-Off",
        Some(_) => "other",
        None => "-",
    };
    let session = request
        .attribute(ACCT_SESSION_ID)
        .map(|v| String::from_utf8_lossy(v).into_owned());
    tracing::info!(
        nas = %client.name,
        source = %from,
        user = ?request.user_name().unwrap_or("-"),
        session = ?session.as_deref().unwrap_or("-"),
        status,
        "Accounting-Request"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn client(name: &str, net: &str) -> ResolvedClient {
        ResolvedClient {
            name: name.into(),
            address: net.parse().unwrap(),
            secret: Secret::new("s"),
            require_message_authenticator: true,
            limit_proxy_state: true,
            two_stage: false,
            reply: Default::default(),
        }
    }

    #[test]
    fn most_specific_client_wins() {
        let clients = vec![
            client("wide", "10.0.0.0/8"),
            client("narrow", "10.1.2.0/24"),
            client("host", "10.1.2.3/32"),
            client("v6", "2001:db8::/32"),
        ];
        let pick = |ip: &str| find_client(&clients, ip.parse().unwrap()).map(|c| c.name.clone());
        assert_eq!(pick("10.1.2.3").as_deref(), Some("host"));
        assert_eq!(pick("10.1.2.4").as_deref(), Some("narrow"));
        assert_eq!(pick("10.9.9.9").as_deref(), Some("wide"));
        assert_eq!(pick("::ffff:10.1.2.3").as_deref(), Some("host"));
        assert_eq!(pick("2001:db8::1").as_deref(), Some("v6"));
        assert_eq!(pick("192.0.2.1"), None);
    }

    #[test]
    fn accept_attributes_carry_groups_as_configured() {
        let groups: Vec<String> = ["vpn-staff", "admins", "VPN-ops"]
            .iter()
            .map(|g| g.to_string())
            .collect();
        let mut reply = ReplyOptions {
            groups: GroupsAttribute::Class,
            ..ReplyOptions::default()
        };
        assert_eq!(
            accept_attributes(&reply, &groups),
            vec![(25, b"OU=vpn-staff;admins;VPN-ops".to_vec())]
        );
        reply.group_filter = Some("vpn".into());
        assert_eq!(
            accept_attributes(&reply, &groups),
            vec![(25, b"OU=vpn-staff;VPN-ops".to_vec())]
        );
        reply.groups = GroupsAttribute::FilterId;
        assert_eq!(
            accept_attributes(&reply, &groups),
            vec![(11, b"vpn-staff".to_vec()), (11, b"VPN-ops".to_vec())]
        );
        reply.groups = GroupsAttribute::Vsa;
        reply.vsa_vendor = Some(9);
        reply.vsa_type = Some(1);
        reply.reply_message = Some("Welcome".into());
        reply.session_timeout = Some(Duration::from_secs(3600));
        let attrs = accept_attributes(&reply, &groups);
        assert_eq!(
            attrs[0],
            (26, [&[0, 0, 0, 9, 1, 11][..], b"vpn-staff"].concat())
        );
        assert_eq!(attrs[2], (18, b"Welcome".to_vec()));
        assert_eq!(attrs[3], (27, 3600u32.to_be_bytes().to_vec()));
        reply.groups = GroupsAttribute::None;
        assert_eq!(accept_attributes(&reply, &groups).len(), 2);
    }

    #[test]
    fn reply_cache_is_bounded_and_never_refuses() {
        let mut cache = ReplyCache::default();
        let addr: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        for i in 0..(REPLY_CACHE_MAX + 10) {
            let key = (addr, (i % 256) as u8, (i as u128).to_be_bytes());
            cache.entries.insert(key, CacheEntry::InFlight);
            cache.answered(key, Arc::new(vec![1]));
        }
        assert_eq!(cache.order.len(), REPLY_CACHE_MAX);
        assert_eq!(cache.entries.len(), REPLY_CACHE_MAX);
        // The newest answer is still there, the oldest evicted.
        let newest = (
            addr,
            ((REPLY_CACHE_MAX + 9) % 256) as u8,
            ((REPLY_CACHE_MAX + 9) as u128).to_be_bytes(),
        );
        assert!(matches!(
            cache.entries.get(&newest),
            Some(CacheEntry::Answered(..))
        ));
        let oldest = (addr, 0u8, 0u128.to_be_bytes());
        assert!(!cache.entries.contains_key(&oldest));
    }

    #[test]
    fn log_limiter_caps_lines_per_second() {
        let l = LogLimiter::new();
        let allowed = (0..100).filter(|_| l.allow().is_some()).count();
        assert_eq!(allowed, LogLimiter::PER_SECOND as usize);
    }
}
