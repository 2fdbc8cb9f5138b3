//! The configuration model: the TOML file `pinwheeld` and `pinwheelctl` read.
//!
//! Owns parsing (serde with defaults and `deny_unknown_fields`, so a typo is an
//! error, not a silently ignored key) and [`Config::validate`] for rules that
//! span several keys. Every error names the file, the line and the key. This
//! module never opens sockets or databases and never logs a secret: shared
//! secrets are held in [`Secret`], whose `Debug` is redacted.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

/// Where `pinwheeld` and `pinwheelctl` look for the config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/pinwheel/pinwheel.toml";

/// A configuration error. Its `Display` names the file, the line (when known)
/// and the key, and never includes a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The config file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or a value has the wrong type or form.
    #[error("{file}: line {line}: {message}")]
    Parse {
        /// The config file.
        file: PathBuf,
        /// 1-based line of the offending text.
        line: usize,
        /// What is wrong, from the TOML parser (names the key).
        message: String,
    },
    /// The file parsed but a rule across keys does not hold.
    #[error("{file}: line {line}: key `{key}`: {message}")]
    Invalid {
        /// The config file.
        file: PathBuf,
        /// 1-based line of the key (0 when the key is absent from the file).
        line: usize,
        /// Dotted key path, e.g. `radius.client[0].secret`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// A shared secret from the config or a secret file. `Debug` never shows it,
/// and neither does a parse error (a secret written without quotes is
/// refused without being repeated).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret in quotes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Secret, E> {
                Err(E::custom("the secret must be a quoted string"))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Secret, E> {
                Err(E::custom("the secret must be a quoted string"))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Secret, E> {
                Err(E::custom("the secret must be a quoted string"))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Secret, E> {
                Err(E::custom("the secret must be a quoted string"))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret's bytes, for keyed computations only.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The whole configuration file. `Config::default()` is the built-in
/// defaults: everything on loopback, state under `/var/lib/pinwheel`, one
/// spool transport, and no RADIUS client (a shared secret cannot have a safe
/// default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Paths and the public address of this server.
    #[serde(default)]
    pub server: ServerConfig,
    /// The HTTP listener (REST provisioning API, health check).
    #[serde(default)]
    pub http: HttpConfig,
    /// The RADIUS listener and its clients (NASes).
    #[serde(default)]
    pub radius: RadiusConfig,
    /// How security strings look.
    #[serde(default)]
    pub strings: StringsConfig,
    /// PIN rules.
    #[serde(default)]
    pub pin: PinConfig,
    /// Mobile Provision Code rules.
    #[serde(default)]
    pub provision: ProvisionConfig,
    /// Where plugin files are looked up.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// Message transports (`[[transport]]`), in order of preference. With
    /// none, one built-in spool transport writes to `STATE_DIR/spool`.
    #[serde(default, rename = "transport")]
    pub transports: Vec<TransportConfig>,
    /// User directory plugins (`[[directory]]`), asked in this order after
    /// the built-in local directory.
    #[serde(default, rename = "directory")]
    pub directories: Vec<DirectoryConfig>,
    /// Failure counting and lockout.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// The audit trail.
    #[serde(default)]
    pub audit: AuditConfig,
    /// OATH (HOTP/TOTP) tokens for users in `oath` mode.
    #[serde(default)]
    pub oath: OathConfig,
    /// Two-stage (dual channel) logins.
    #[serde(default)]
    pub dual_channel: DualChannelConfig,
    /// Trusted applications allowed to call the agent API.
    #[serde(default, rename = "agent")]
    pub agents: Vec<AgentConfig>,
    /// The self-service web pages (ResetPIN, change PIN, Provision URL).
    #[serde(default)]
    pub pages: PagesConfig,
}

/// `[pages]`: the self-service web pages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagesConfig {
    /// Organisation name shown in every page's header beside the product name.
    pub organisation: String,
    /// Logo shown in the page header: a path on this server (`/...`, served by
    /// a front proxy), a `data:image/` URI, or an `https://` URL (its origin is
    /// then allowed in the pages' CSP `img-src`).
    pub logo_url: Option<String>,
    /// How long a ResetPIN code stays valid, e.g. `"2m"`.
    #[serde(with = "humantime_serde")]
    pub reset_code_ttl: Duration,
    /// Page requests (GET and POST) one source address may make per minute; more get 429.
    pub requests_per_minute_per_address: u32,
    /// Form submissions naming one user name per minute (from any address); more get 429.
    /// Short window, so nobody can keep a real user off the pages for long.
    pub requests_per_minute_per_user: u32,
    /// ResetPIN code messages sent to one user per hour (fixed window, and
    /// never two within 30 s); more requests send nothing (the page answers
    /// the same). `0` sends none.
    pub reset_codes_per_hour: u32,
}

impl Default for PagesConfig {
    fn default() -> Self {
        PagesConfig {
            organisation: String::new(),
            logo_url: None,
            reset_code_ttl: Duration::from_secs(120),
            requests_per_minute_per_address: 60,
            requests_per_minute_per_user: 10,
            reset_codes_per_hour: 5,
        }
    }
}

/// `[dual_channel]`: security strings sent on demand for two-stage logins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DualChannelConfig {
    /// How long a challenge (its State and the string sent) stays valid, e.g. `"2m"`.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Least time between a first leg's arrival and its answer (Access-Challenge
    /// or Access-Reject), e.g. `"500ms"`: every first leg takes at least this
    /// long whoever the user is, so the time does not reveal who exists (it
    /// should exceed a directory bind and a local password hash check).
    /// At most 5s; `"0"` turns the padding off.
    #[serde(with = "humantime_serde")]
    pub first_leg_min_delay: Duration,
}

impl Default for DualChannelConfig {
    fn default() -> Self {
        DualChannelConfig {
            ttl: Duration::from_secs(120),
            first_leg_min_delay: Duration::from_millis(500),
        }
    }
}

/// `[policy]`: brute-force protection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Failed attempts in a row (RADIUS, agent API, pages together) that lock a user.
    pub max_failures: u32,
    /// How long a lock lasts, e.g. `"15m"`; `"0"` locks until an admin unlocks.
    #[serde(with = "humantime_serde")]
    pub lockout: Duration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            max_failures: 5,
            lockout: Duration::from_secs(15 * 60),
        }
    }
}

/// `[audit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Audit rows older than this are deleted, e.g. `"90days"`.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Also send each audit record to syslog, facility auth.
    pub syslog: bool,
    /// The syslog socket (journald listens on `/dev/log` too).
    pub syslog_socket: PathBuf,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention: Duration::from_secs(90 * 24 * 3600),
            syslog: true,
            syslog_socket: PathBuf::from("/dev/log"),
        }
    }
}

/// `[oath]`: defaults for OATH tokens made at provisioning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OathConfig {
    /// `"totp"` (time-based, RFC 6238) or `"hotp"` (counter-based, RFC 4226).
    pub kind: String,
    /// `"SHA1"`, `"SHA256"` or `"SHA512"`.
    pub algorithm: String,
    /// Digits per code: 6 or 8.
    pub digits: u8,
    /// TOTP time step in seconds.
    pub period: u32,
    /// HOTP: how many counter values ahead a code may be.
    pub hotp_look_ahead: u64,
    /// Users type their PIN followed by the code (per-user setting overrides).
    pub require_pin: bool,
    /// The issuer shown in authenticator apps (`Issuer:user`).
    pub issuer: String,
}

impl Default for OathConfig {
    fn default() -> Self {
        OathConfig {
            kind: "totp".to_string(),
            algorithm: "SHA1".to_string(),
            digits: 6,
            period: 30,
            hotp_look_ahead: 10,
            require_pin: false,
            issuer: "Pinwheel".to_string(),
        }
    }
}

/// `[[agent]]`: a trusted application (web or VPN portal) that may call
/// `POST /api/v1/auth`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// A name for logs and the audit trail.
    pub name: String,
    /// Source addresses allowed (CIDR).
    #[serde(deserialize_with = "deserialize_network")]
    pub address: IpNet,
    /// The shared secret the agent sends.
    pub secret: Secret,
}

/// `[server]`: paths and the public address.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Holds the SQLite database and the master key; created 0700 at start.
    pub state_dir: PathBuf,
    /// Holds the admin socket; created 0755 at start.
    pub runtime_dir: PathBuf,
    /// The admin API's Unix socket. Defaults to `RUNTIME_DIR/admin.sock`.
    pub admin_socket: Option<PathBuf>,
    /// The master key file (32 random bytes, created 0600 at first start).
    /// Defaults to `STATE_DIR/master.key`; a systemd credential named
    /// `master.key` takes precedence when `$CREDENTIALS_DIRECTORY` is set.
    pub master_key_file: Option<PathBuf>,
    /// The base URL users' devices reach this server at; goes into Provision
    /// URLs and provisioning answers. No trailing slash.
    pub public_url: String,
    /// The Site ID that mobile apps of the seed product look this server up
    /// by (`GET /ssdserver/getServerDetails?id=SITE`). Unset: every lookup
    /// answers "not found".
    pub site_id: Option<String>,
    /// The user pinwheeld runs as when started as root without systemd
    /// (default `pinwheel`, made by `systemd/pinwheel.sysusers.conf` or the
    /// package). After binding its sockets and opening the database and
    /// master key as root, the daemon hands the state and runtime folders
    /// to this user and switches to it (and its primary group) for good; a
    /// user that does not exist stops the start with a clear error. `"root"`
    /// keeps root (logged as a warning; for throw-away containers and test
    /// rigs only). Ignored when not started as root (e.g. systemd `User=`).
    pub user: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            state_dir: PathBuf::from("/var/lib/pinwheel"),
            runtime_dir: PathBuf::from("/run/pinwheel"),
            admin_socket: None,
            master_key_file: None,
            public_url: "http://127.0.0.1:8080".to_string(),
            site_id: None,
            user: DEFAULT_USER.to_string(),
        }
    }
}

/// The default `[server] user`: the system user the package creates.
pub const DEFAULT_USER: &str = "pinwheel";

impl ServerConfig {
    /// The admin socket path after defaults are applied.
    pub fn admin_socket_path(&self) -> PathBuf {
        self.admin_socket
            .clone()
            .unwrap_or_else(|| self.runtime_dir.join("admin.sock"))
    }
    /// The SQLite database path: `STATE_DIR/pinwheel.db`.
    pub fn database_path(&self) -> PathBuf {
        self.state_dir.join("pinwheel.db")
    }
    /// The master key file path after defaults are applied.
    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.state_dir.join("master.key"))
    }
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address and port to listen on (TCP).
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most HTTP connections open at once; more are closed at accept.
    pub max_connections: usize,
    /// Most HTTP connections open at once from one source address (an IPv4
    /// address, or an IPv6 /64); more from it are closed at accept, so one
    /// client cannot hold every `max_connections` slot.
    pub max_connections_per_address: usize,
    /// A client must send a request's headers within this time (also closes
    /// idle keep-alive connections), e.g. `"10s"`.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A request (body included) must be read and answered within this time.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// PEM file with the HTTPS certificate chain, the server's certificate
    /// first. With `tls_key`, the listener serves HTTPS only (re-read on
    /// SIGHUP); with neither, plain HTTP. Both or neither.
    pub tls_certificate: Option<PathBuf>,
    /// PEM file with the private key of `tls_certificate` (PKCS#8, RSA or EC).
    pub tls_key: Option<PathBuf>,
    /// Source networks (CIDR) allowed to read `GET /metrics`; others get
    /// 403. Default: loopback only.
    pub metrics_from: Vec<ipnet::IpNet>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 16 * 1024,
            max_connections: 512,
            max_connections_per_address: 32,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            tls_certificate: None,
            tls_key: None,
            metrics_from: vec![
                ipnet::IpNet::from(std::net::IpAddr::from([127, 0, 0, 1])),
                ipnet::IpNet::from(std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
            ],
        }
    }
}

/// `[radius]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RadiusConfig {
    /// Address and port for Access-Requests (UDP).
    pub listen: SocketAddr,
    /// Address and port for Accounting-Requests (UDP), answered and logged.
    pub accounting_listen: SocketAddr,
    /// Whether to serve the accounting port at all.
    pub accounting: bool,
    /// Most Access-Requests checked at the same time; more wait in the socket buffer.
    pub max_in_flight: usize,
    /// The NASes allowed to send requests. The most specific address match wins.
    #[serde(rename = "client")]
    pub clients: Vec<RadiusClientConfig>,
}

impl Default for RadiusConfig {
    fn default() -> Self {
        RadiusConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 1812)),
            accounting_listen: SocketAddr::from(([127, 0, 0, 1], 1813)),
            accounting: true,
            max_in_flight: 256,
            clients: Vec::new(),
        }
    }
}

/// `[[radius.client]]`: one NAS (or a network of them).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadiusClientConfig {
    /// A name for logs.
    pub name: String,
    /// Source address or network (CIDR), e.g. `192.0.2.10/32`.
    #[serde(deserialize_with = "deserialize_network")]
    pub address: IpNet,
    /// The shared secret. Exactly one of `secret` and `secret_file` is required.
    pub secret: Option<Secret>,
    /// A file whose first line is the shared secret.
    pub secret_file: Option<PathBuf>,
    /// Drop requests without a valid Message-Authenticator (RFC 3579 §3.2,
    /// BlastRADIUS guidance). Default true.
    #[serde(default = "default_true")]
    pub require_message_authenticator: bool,
    /// Two-stage login: the first Access-Request carries the directory
    /// password (or nothing), Pinwheel sends a fresh security string over the
    /// user's transport and answers Access-Challenge; the second request
    /// carries the State and the one-time code.
    #[serde(default)]
    pub two_stage: bool,
    /// What an Access-Accept carries: groups, Reply-Message, Session-Timeout.
    #[serde(default)]
    pub reply: ReplyOptions,
    /// Drop requests that carry Proxy-State but no Message-Authenticator
    /// (BlastRADIUS guidance for clients that cannot send it). Default true.
    #[serde(default = "default_true")]
    pub limit_proxy_state: bool,
}

fn default_true() -> bool {
    true
}

/// A network in CIDR form (`192.0.2.0/24`, `2001:db8::/32`); a bare address
/// means that one host (`/32` or `/128`).
fn deserialize_network<'de, D: serde::Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
    let text = String::deserialize(d)?;
    parse_network(&text).map_err(serde::de::Error::custom)
}

/// Parses a network as [`deserialize_network`] does.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net);
    }
    text.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| {
            format!("{text:?} is not an address or network: expected CIDR like \"192.0.2.10/32\" or \"2001:db8::/64\"")
        })
}

/// `[strings]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StringsConfig {
    /// `digits`, `upper`, `upper-digits` or `mixed`.
    pub alphabet: String,
}

impl Default for StringsConfig {
    fn default() -> Self {
        StringsConfig {
            alphabet: "digits".to_string(),
        }
    }
}

/// `[pin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PinConfig {
    /// Length of generated PINs (digits).
    pub length: usize,
    /// Shortest PIN accepted (digits, at least 4).
    pub min_length: usize,
    /// Longest PIN accepted (digits, at most 10).
    pub max_length: usize,
}

impl Default for PinConfig {
    fn default() -> Self {
        PinConfig {
            length: 4,
            min_length: 4,
            max_length: 10,
        }
    }
}

/// `[provision]`: Mobile Provision Code rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProvisionConfig {
    /// Digits in a Mobile Provision Code.
    pub code_length: usize,
    /// How long a code stays valid, e.g. `"15m"`.
    #[serde(with = "humantime_serde")]
    pub code_ttl: Duration,
    /// Most codes sent to one user in an hour.
    pub requests_per_hour: u32,
}

impl Default for ProvisionConfig {
    fn default() -> Self {
        ProvisionConfig {
            code_length: 10,
            code_ttl: Duration::from_secs(15 * 60),
            requests_per_hour: 5,
        }
    }
}

/// `[plugins]`: where plugin files live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// The folder `plugin = "FILE"` names are looked up in (an absolute
    /// path). Plugin files must be regular files not writable by group or
    /// others, and owned by root when the daemon runs as root.
    pub folder: PathBuf,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            folder: PathBuf::from(DEFAULT_PLUGIN_FOLDER),
        }
    }
}

/// The default `[plugins] folder`.
pub const DEFAULT_PLUGIN_FOLDER: &str = "/usr/lib/pinwheel/plugins";

/// The `plugin` value naming the spool transport built into the daemon.
pub const BUILTIN_SPOOL: &str = "spool";

/// Which user attribute a transport delivers to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressKind {
    /// The user's email address.
    Email,
    /// The user's phone number.
    Phone,
    /// Either (the transport decides which it uses).
    #[default]
    Any,
}

/// Whether every user a transport taking `earlier` can reach, one taking
/// `later` could reach too (so an earlier catch-all hides the later one).
fn covers(earlier: AddressKind, later: AddressKind) -> bool {
    earlier == AddressKind::Any || earlier == later
}

impl AddressKind {
    /// `"email"`, `"phone"` or `"any"`, as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressKind::Email => "email",
            AddressKind::Phone => "phone",
            AddressKind::Any => "any",
        }
    }
}

/// Where a plugin comes from, after `[plugins] folder` is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// Built into the daemon (`plugin = "spool"`).
    Builtin(&'static str),
    /// A library file to load.
    File(PathBuf),
}

impl fmt::Display for PluginSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginSource::Builtin(name) => write!(f, "built-in {name}"),
            PluginSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

fn default_plugin_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_max_concurrent() -> usize {
    4
}

/// `[[transport]]`: one way to deliver messages to users.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportConfig {
    /// A unique name, used in logs, group mappings and user preferences.
    pub name: String,
    /// The plugin: a file name in `[plugins] folder`, an absolute path, or
    /// `"spool"` for the built-in spool transport.
    pub plugin: String,
    /// Which user attribute this transport needs: `"email"`, `"phone"` or
    /// `"any"` (either). A user without it never gets this transport.
    #[serde(default)]
    pub address: AddressKind,
    /// Users in any of these groups get this transport before transports
    /// without a matching group.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Longest a call may take (and longest it waits for a free slot), e.g.
    /// `"10s"`. A call past it fails; its thread is left to finish.
    #[serde(default = "default_plugin_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Most calls running at once; more wait (up to `timeout`).
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// Settings for the plugin, handed to it as JSON. The built-in spool:
    /// `folder = "/path"` (default `STATE_DIR/spool`).
    #[serde(default)]
    pub config: toml::Table,
}

/// `[[directory]]`: a user directory plugin (LDAP, Active Directory).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// A unique name (not `local`, the built-in directory), for logs and users.
    pub name: String,
    /// The plugin: a file name in `[plugins] folder` or an absolute path.
    pub plugin: String,
    /// Longest a call may take (and longest it waits for a free slot), e.g.
    /// `"10s"`.
    #[serde(default = "default_plugin_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Most calls running at once; more wait (up to `timeout`).
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// How often the directory's users are synchronised (attributes updated,
    /// users gone from the directory disabled), e.g. `"1h"`; `"0"` turns the
    /// scheduled sync off (`pinwheelctl directory sync NAME` still works).
    #[serde(
        default = "crate::directory::default_sync_interval",
        with = "humantime_serde"
    )]
    pub sync_interval: Duration,
    /// Settings for the plugin, handed to it as JSON.
    #[serde(default)]
    pub config: toml::Table,
}

/// The transports in effect: the configured ones, or the embedded default
/// (one built-in spool transport named `spool`).
fn default_transport() -> TransportConfig {
    TransportConfig {
        name: BUILTIN_SPOOL.to_string(),
        plugin: BUILTIN_SPOOL.to_string(),
        address: AddressKind::Any,
        groups: Vec::new(),
        timeout: default_plugin_timeout(),
        max_concurrent: default_max_concurrent(),
        config: toml::Table::new(),
    }
}

/// Checks a plugin entry's common keys; `key` builds the dotted key path.
fn validate_plugin_entry(
    key: &dyn Fn(&str) -> String,
    plugin: &str,
    timeout: Duration,
    max_concurrent: usize,
) -> Result<(), (String, String)> {
    if plugin.is_empty() {
        return Err((key("plugin"), "must not be empty".into()));
    }
    if !plugin.starts_with('/') && (plugin.contains('/') || plugin == "." || plugin == "..") {
        return Err((
            key("plugin"),
            format!("{plugin:?} must be a file name in [plugins] folder or an absolute path"),
        ));
    }
    if plugin.chars().any(char::is_control) {
        return Err((key("plugin"), "must not contain control characters".into()));
    }
    if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(600) {
        return Err((key("timeout"), "must be between 100ms and 10m".into()));
    }
    if !(1..=256).contains(&max_concurrent) {
        return Err((key("max_concurrent"), "must be between 1 and 256".into()));
    }
    Ok(())
}

/// Checks a transport or directory name.
fn validate_entry_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain spaces or control characters".into());
    }
    Ok(())
}

impl Config {
    /// Reads, parses and validates `path`.
    ///
    /// Errors: [`ConfigError::Read`] if the file cannot be read,
    /// [`ConfigError::Parse`] for TOML syntax or a value of the wrong type or
    /// form (unknown keys included), [`ConfigError::Invalid`] for rules across
    /// keys (see [`Config::validate`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates TOML text; `file` is used in error messages only.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_path_buf(),
            line: e.span().map(|s| line_of_offset(text, s.start)).unwrap_or(0),
            message: e.message().to_string(),
        })?;
        config
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                file: file.to_path_buf(),
                line: line_of_key(text, &key),
                key,
                message,
            })?;
        Ok(config)
    }

    /// Checks rules that span keys. On failure returns the dotted key path
    /// and a message; [`Config::parse`] turns that into [`ConfigError::Invalid`].
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: &str| Err((k.to_string(), m.to_string()));
        if crate::otc::Alphabet::parse(&self.strings.alphabet).is_err() {
            return err(
                "strings.alphabet",
                "must be \"digits\", \"upper\", \"upper-digits\" or \"mixed\"",
            );
        }
        let pin = &self.pin;
        if !(4..=10).contains(&pin.min_length) {
            return err("pin.min_length", "must be between 4 and 10");
        }
        if !(4..=10).contains(&pin.max_length) || pin.max_length < pin.min_length {
            return err("pin.max_length", "must be between pin.min_length and 10");
        }
        if !(pin.min_length..=pin.max_length).contains(&pin.length) {
            return err(
                "pin.length",
                "must be between pin.min_length and pin.max_length",
            );
        }
        if !(6..=20).contains(&self.provision.code_length) {
            return err("provision.code_length", "must be between 6 and 20 digits");
        }
        let ttl = self.provision.code_ttl.as_secs();
        if !(1..=7 * 24 * 3600).contains(&ttl) {
            return err("provision.code_ttl", "must be between 1s and 7days");
        }
        if self.provision.requests_per_hour == 0 {
            return err("provision.requests_per_hour", "must be at least 1");
        }
        if let Some((key, message)) = crate::http::pages::check_config(&self.pages) {
            return err(key, message);
        }
        if !(self.server.public_url.starts_with("http://")
            || self.server.public_url.starts_with("https://"))
            || self.server.public_url.ends_with('/')
        {
            return err(
                "server.public_url",
                "must start with http:// or https:// and have no trailing slash",
            );
        }
        if self.server.user.is_empty() || self.server.user.contains(['/', ':', '\n']) {
            return err("server.user", "must be a user name, e.g. \"pinwheel\"");
        }
        if self.radius.accounting && self.radius.accounting_listen == self.radius.listen {
            return err("radius.accounting_listen", "must differ from radius.listen");
        }
        if self.radius.max_in_flight == 0 {
            return err("radius.max_in_flight", "must be at least 1");
        }
        if self.http.max_body_bytes < 1024 {
            return err("http.max_body_bytes", "must be at least 1024");
        }
        if self.http.max_connections == 0 {
            return err("http.max_connections", "must be at least 1");
        }
        if self.http.max_connections_per_address == 0 {
            return err("http.max_connections_per_address", "must be at least 1");
        }
        if self.http.header_timeout.is_zero() {
            return err("http.header_timeout", "must be more than 0s");
        }
        if self.http.request_timeout.is_zero() {
            return err("http.request_timeout", "must be more than 0s");
        }
        match (&self.http.tls_certificate, &self.http.tls_key) {
            (Some(cert), Some(key)) => {
                if let Err(e) = crate::http::tls::load_pair(cert, key) {
                    let key_name = match e {
                        crate::http::tls::TlsError::Read { ref file, .. }
                        | crate::http::tls::TlsError::NoKey { ref file, .. }
                        | crate::http::tls::TlsError::BadKey { ref file, .. }
                            if file == key =>
                        {
                            "http.tls_key"
                        }
                        _ => "http.tls_certificate",
                    };
                    return Err((key_name.to_string(), e.to_string()));
                }
            }
            (Some(_), None) => return err("http.tls_key", "is required with http.tls_certificate"),
            (None, Some(_)) => return err("http.tls_certificate", "is required with http.tls_key"),
            (None, None) => {}
        }
        for (i, client) in self.radius.clients.iter().enumerate() {
            let key = |k: &str| format!("radius.client[{i}].{k}");
            match (&client.secret, &client.secret_file) {
                (Some(_), Some(_)) => {
                    return Err((key("secret"), "set secret or secret_file, not both".into()))
                }
                (None, None) => {
                    return Err((
                        key("secret"),
                        "one of secret or secret_file is required".into(),
                    ))
                }
                (Some(s), None) if s.expose().is_empty() => {
                    return Err((key("secret"), "must not be empty".into()))
                }
                _ => {}
            }
            let reply = &client.reply;
            if reply.groups == GroupsAttribute::Vsa
                && (reply.vsa_vendor.is_none() || reply.vsa_type.is_none())
            {
                return Err((
                    key("reply"),
                    "groups = \"vsa\" needs vsa_vendor and vsa_type".into(),
                ));
            }
            if reply
                .reply_message
                .as_ref()
                .is_some_and(|m| m.is_empty() || m.len() > 253)
            {
                return Err((key("reply"), "reply_message must be 1 to 253 bytes".into()));
            }
            if reply
                .session_timeout
                .is_some_and(|t| t.as_secs() == 0 || t.as_secs() > u64::from(u32::MAX))
            {
                return Err((
                    key("reply"),
                    "session_timeout must be between 1s and 136 years".into(),
                ));
            }
            for (j, other) in self.radius.clients.iter().enumerate().take(i) {
                if other.name == client.name {
                    return Err((
                        key("name"),
                        format!(
                            "client name {:?} is already used by radius.client[{j}]",
                            client.name
                        ),
                    ));
                }
                if other.address == client.address {
                    return Err((
                        key("address"),
                        format!("same address as radius.client[{j}] ({})", other.name),
                    ));
                }
            }
        }
        if !(1..=3600).contains(&self.dual_channel.ttl.as_secs()) {
            return err("dual_channel.ttl", "must be between 1s and 1h");
        }
        if self.dual_channel.first_leg_min_delay > Duration::from_secs(5) {
            return err("dual_channel.first_leg_min_delay", "must be at most 5s");
        }
        if self.policy.max_failures == 0 {
            return err("policy.max_failures", "must be at least 1");
        }
        if self.audit.retention.as_secs() < 3600 {
            return err("audit.retention", "must be at least 1h");
        }
        let oath = &self.oath;
        if oath.kind != "totp" && oath.kind != "hotp" {
            return err("oath.kind", "must be \"totp\" or \"hotp\"");
        }
        if !["SHA1", "SHA256", "SHA512"].contains(&oath.algorithm.to_ascii_uppercase().as_str()) {
            return err(
                "oath.algorithm",
                "must be \"SHA1\", \"SHA256\" or \"SHA512\"",
            );
        }
        if oath.digits != 6 && oath.digits != 8 {
            return err("oath.digits", "must be 6 or 8");
        }
        if !(10..=300).contains(&oath.period) {
            return err("oath.period", "must be between 10 and 300 seconds");
        }
        if oath.hotp_look_ahead > 100 {
            return err("oath.hotp_look_ahead", "must be at most 100");
        }
        if oath.issuer.is_empty() || oath.issuer.contains(':') {
            return err("oath.issuer", "must be non-empty and without ':'");
        }
        for (i, a) in self.agents.iter().enumerate() {
            if let Some(j) = self.agents[..i].iter().position(|o| o.name == a.name) {
                return Err((
                    format!("agent[{i}].name"),
                    format!("agent name {:?} is already used by agent[{j}]", a.name),
                ));
            }
            if a.address.prefix_len() == 0 {
                return Err((
                    format!("agent[{i}].address"),
                    "an agent network may not be the whole Internet (/0): name the portal's addresses".into(),
                ));
            }
            if a.secret.expose().len() < 16 {
                return Err((
                    format!("agent[{i}].secret"),
                    "must be at least 16 characters".into(),
                ));
            }
        }
        if !self.plugins.folder.is_absolute() {
            return err("plugins.folder", "must be an absolute path");
        }
        for (i, t) in self.transports.iter().enumerate() {
            let key = |k: &str| format!("transport[{i}].{k}");
            validate_entry_name(&t.name).map_err(|m| (key("name"), m))?;
            if let Some(j) = self.transports[..i].iter().position(|o| o.name == t.name) {
                return Err((
                    key("name"),
                    format!(
                        "transport name {:?} is already used by transport[{j}]",
                        t.name
                    ),
                ));
            }
            validate_plugin_entry(&key, &t.plugin, t.timeout, t.max_concurrent)?;
            for g in &t.groups {
                if g.is_empty() || g.len() > 64 || g.chars().any(char::is_control) {
                    return Err((
                        key("groups"),
                        format!("bad group name {g:?}: 1 to 64 characters, no control characters"),
                    ));
                }
            }
            if t.groups.is_empty() {
                if let Some((j, earlier)) = self.transports[..i]
                    .iter()
                    .enumerate()
                    .find(|(_, o)| o.groups.is_empty() && covers(o.address, t.address))
                {
                    return Err((
                        key("address"),
                        format!(
                            "transport {:?} can never be chosen: transport[{j}] ({:?}) comes first, has no groups and takes address {:?}, which includes {:?}; put {:?} before it, or give one of them groups",
                            t.name,
                            earlier.name,
                            earlier.address.as_str(),
                            t.address.as_str(),
                            t.name
                        ),
                    ));
                }
            }
            if t.plugin == BUILTIN_SPOOL {
                match t.config.get("folder") {
                    None => {}
                    Some(toml::Value::String(f)) if !f.is_empty() => {}
                    Some(_) => {
                        return Err((
                            key("config"),
                            "the spool transport needs folder = \"/path\" (or no folder for STATE_DIR/spool)".into(),
                        ))
                    }
                }
            }
        }
        for (i, d) in self.directories.iter().enumerate() {
            let key = |k: &str| format!("directory[{i}].{k}");
            validate_entry_name(&d.name).map_err(|m| (key("name"), m))?;
            if d.name == "local" {
                return Err((
                    key("name"),
                    "\"local\" is the built-in directory; choose another name".into(),
                ));
            }
            if let Some(j) = self.directories[..i].iter().position(|o| o.name == d.name) {
                return Err((
                    key("name"),
                    format!(
                        "directory name {:?} is already used by directory[{j}]",
                        d.name
                    ),
                ));
            }
            validate_plugin_entry(&key, &d.plugin, d.timeout, d.max_concurrent)?;
            if d.plugin == BUILTIN_SPOOL {
                return Err((
                    key("plugin"),
                    "\"spool\" is a transport, not a directory".into(),
                ));
            }
        }
        Ok(())
    }

    /// The transports in effect: the `[[transport]]` entries, or with none
    /// the embedded default, one built-in spool transport named `spool`.
    pub fn effective_transports(&self) -> Vec<TransportConfig> {
        if self.transports.is_empty() {
            vec![default_transport()]
        } else {
            self.transports.clone()
        }
    }

    /// Where the plugin named by a `plugin = "..."` value comes from:
    /// `"spool"` is built in, an absolute path is used as is, any other name
    /// is a file in `[plugins] folder`.
    pub fn plugin_source(&self, plugin: &str) -> PluginSource {
        if plugin == BUILTIN_SPOOL {
            PluginSource::Builtin(BUILTIN_SPOOL)
        } else if plugin.starts_with('/') {
            PluginSource::File(PathBuf::from(plugin))
        } else {
            PluginSource::File(self.plugins.folder.join(plugin))
        }
    }

    /// Reads every `secret_file` and returns the clients with secrets resolved.
    ///
    /// Errors name the client and the file; the secret itself never appears.
    pub fn resolved_radius_clients(&self) -> Result<Vec<ResolvedClient>, String> {
        let mut out = Vec::with_capacity(self.radius.clients.len());
        for c in &self.radius.clients {
            let secret = match (&c.secret, &c.secret_file) {
                (Some(s), _) => s.clone(),
                (None, Some(path)) => {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        format!(
                            "radius client {}: cannot read secret_file {}: {e}",
                            c.name,
                            path.display()
                        )
                    })?;
                    let line = text.lines().next().unwrap_or("").trim_end().to_string();
                    if line.is_empty() {
                        return Err(format!(
                            "radius client {}: secret_file {} is empty",
                            c.name,
                            path.display()
                        ));
                    }
                    Secret(line)
                }
                (None, None) => {
                    return Err(format!("radius client {}: no shared secret", c.name));
                }
            };
            out.push(ResolvedClient {
                name: c.name.clone(),
                address: c.address,
                secret,
                require_message_authenticator: c.require_message_authenticator,
                limit_proxy_state: c.limit_proxy_state,
                two_stage: c.two_stage,
                reply: c.reply.clone(),
            });
        }
        Ok(out)
    }

    /// The spool folder of the first built-in spool transport that sets
    /// one, or `STATE_DIR/spool` (the embedded default's folder).
    pub fn spool_folder(&self) -> PathBuf {
        self.transports
            .iter()
            .filter(|t| t.plugin == BUILTIN_SPOOL)
            .find_map(|t| t.config.get("folder"))
            .and_then(|v| v.as_str())
            .map(PathBuf::from)
            .unwrap_or_else(|| self.server.state_dir.join("spool"))
    }
}

/// A RADIUS client with its shared secret read.
#[derive(Debug, Clone)]
pub struct ResolvedClient {
    /// Name for logs.
    pub name: String,
    /// Allowed source network.
    pub address: IpNet,
    /// The shared secret.
    pub secret: Secret,
    /// Whether requests must carry a valid Message-Authenticator.
    pub require_message_authenticator: bool,
    /// Whether requests with Proxy-State must carry Message-Authenticator.
    pub limit_proxy_state: bool,
    /// Whether logins take two stages (Access-Challenge).
    pub two_stage: bool,
    /// What an Access-Accept carries.
    pub reply: ReplyOptions,
}

/// How the user's groups go back to the NAS in an Access-Accept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupsAttribute {
    /// Not at all.
    #[default]
    None,
    /// One Class attribute `OU=g1;g2` (RFC 2865 §5.25).
    Class,
    /// One Filter-Id attribute per group (RFC 2865 §5.11).
    FilterId,
    /// One Vendor-Specific attribute per group (RFC 2865 §5.26), with
    /// `vsa_vendor` and `vsa_type`.
    Vsa,
}

/// `reply = { ... }` of a `[[radius.client]]`: what its Access-Accepts carry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplyOptions {
    /// `"none"`, `"class"`, `"filter-id"` or `"vsa"`.
    pub groups: GroupsAttribute,
    /// Send only groups whose name contains this keyword (case-insensitive).
    pub group_filter: Option<String>,
    /// Vendor id (IANA enterprise number) for `groups = "vsa"`.
    pub vsa_vendor: Option<u32>,
    /// Vendor attribute type for `groups = "vsa"`.
    pub vsa_type: Option<u8>,
    /// A Reply-Message for every Access-Accept.
    pub reply_message: Option<String>,
    /// Session-Timeout for every Access-Accept, e.g. `"8h"`.
    #[serde(default, with = "humantime_serde::option")]
    pub session_timeout: Option<Duration>,
}

/// 1-based line number of byte `offset` in `text`.
fn line_of_offset(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Best-effort line of a dotted key path such as `radius.client[1].secret`:
/// the line where that key is written, else the line of its table header,
/// else 0 when the key is absent (a default was used).
fn line_of_key(text: &str, key: &str) -> usize {
    let mut parts: Vec<&str> = key.split('.').collect();
    let leaf = parts.pop().unwrap_or("");
    let table = parts.join(".");
    // Which occurrence of an array-of-tables header: `client[2]` -> 2.
    let (header, nth) = match table.rfind('[') {
        Some(open) if table.ends_with(']') => {
            let n = table[open + 1..table.len() - 1].parse().unwrap_or(0);
            (table[..open].to_string(), n)
        }
        _ => (table.clone(), 0),
    };
    let mut seen = 0usize;
    let mut in_table = header.is_empty();
    let mut header_line = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            let name = line.trim_matches(|c| c == '[' || c == ']').trim();
            if name == header {
                if seen == nth {
                    in_table = true;
                    header_line = i + 1;
                } else {
                    in_table = false;
                }
                seen += 1;
            } else {
                in_table = false;
            }
            continue;
        }
        if in_table {
            if let Some((k, _)) = line.split_once('=') {
                if k.trim() == leaf {
                    return i + 1;
                }
            }
        }
    }
    header_line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_gives_embedded_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.radius.listen.to_string(), "127.0.0.1:1812");
        assert_eq!(c.provision.code_length, 10);
        assert_eq!(c.provision.code_ttl, Duration::from_secs(900));
        assert_eq!(c.spool_folder(), PathBuf::from("/var/lib/pinwheel/spool"));
        assert_eq!(
            c.server.admin_socket_path(),
            PathBuf::from("/run/pinwheel/admin.sock")
        );
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = parse("[http]\nlisten = \"127.0.0.1:1\"\nlisten_typo = 3\n").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("test.toml: line 3"), "{text}");
        assert!(text.contains("listen_typo"), "{text}");
    }

    #[test]
    fn bad_cidr_names_line() {
        let e =
            parse("[[radius.client]]\nname = \"a\"\naddress = \"300.1.1.1/32\"\nsecret = \"s\"\n")
                .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("line 3"), "{text}");
    }

    #[test]
    fn missing_secret_names_key_and_line() {
        let e = parse(
            "[[radius.client]]\nname = \"a\"\naddress = \"127.0.0.1/32\"\nsecret = \"x\"\n\
             [[radius.client]]\nname = \"b\"\naddress = \"10.0.0.0/8\"\n",
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("radius.client[1].secret"), "{text}");
        assert!(text.contains("line 5"), "{text}");
    }

    #[test]
    fn both_secret_and_file_refused_without_showing_secret() {
        let e = parse(
            "[[radius.client]]\nname = \"a\"\naddress = \"127.0.0.1/32\"\n\
             secret = \"hunter2-secret\"\nsecret_file = \"/x\"\n",
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("line 4"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn duration_and_ranges_checked() {
        let e = parse("[provision]\ncode_ttl = \"soon\"\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = parse("[pin]\nlength = 12\n").unwrap_err();
        assert!(e.to_string().contains("pin.length"), "{e}");
        let e = parse("[strings]\nalphabet = \"emoji\"\n").unwrap_err();
        assert!(e.to_string().contains("strings.alphabet"), "{e}");
        let e = parse("[server]\npublic_url = \"ftp://x\"\n").unwrap_err();
        assert!(e.to_string().contains("server.public_url"), "{e}");
    }

    #[test]
    fn networks_accept_bare_addresses_and_explain_bad_ones() {
        assert_eq!(
            parse_network("127.0.0.1").unwrap().to_string(),
            "127.0.0.1/32"
        );
        assert_eq!(parse_network("::1").unwrap().to_string(), "::1/128");
        assert_eq!(
            parse_network("10.0.0.0/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        let e =
            parse("[[radius.client]]\nname = \"a\"\naddress = \"vpn.example\"\nsecret = \"s\"\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("line 3") && e.contains("CIDR"), "{e}");
    }

    #[test]
    fn agents_need_distinct_names_and_a_real_network() {
        let agent = |name: &str, net: &str| {
            format!("[[agent]]\nname = \"{name}\"\naddress = \"{net}\"\nsecret = \"0123456789abcdef0\"\n")
        };
        let e = parse(&(agent("p", "10.0.0.1") + &agent("p", "10.0.0.2"))).unwrap_err();
        assert!(e.to_string().contains("agent[1].name"), "{e}");
        let e = parse(&agent("p", "0.0.0.0/0")).unwrap_err();
        assert!(e.to_string().contains("agent[0].address"), "{e}");
        assert!(parse(&agent("p", "192.0.2.10")).is_ok());
    }

    #[test]
    fn unquoted_secret_is_refused_without_being_repeated() {
        let e = parse(
            "[[radius.client]]\nname = \"a\"\naddress = \"127.0.0.1\"\nsecret = 987654321987\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 4") && e.contains("quoted"), "{e}");
        assert!(!e.contains("987654321987"), "{e}");
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("topsecret");
        assert!(!format!("{s:?}").contains("topsecret"));
    }

    #[test]
    fn shipped_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/pinwheel.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.radius.clients.len(), 1);
        assert!(c.resolved_radius_clients().is_ok());
    }

    #[test]
    fn plugin_names_must_be_file_names_or_absolute_paths() {
        let e = parse("[[transport]]\nname = \"m\"\nplugin = \"../evil.so\"\n").unwrap_err();
        assert!(e.to_string().contains("transport[0].plugin"), "{e}");
        assert!(e.to_string().contains("line 3"), "{e}");
        let c = parse(
            "[plugins]\nfolder = \"/opt/pw\"\n[[transport]]\nname = \"m\"\nplugin = \"libx.so\"\naddress = \"email\"\n\
             [[transport]]\nname = \"n\"\nplugin = \"/abs/liby.so\"\naddress = \"phone\"\n[[transport]]\nname = \"s\"\nplugin = \"spool\"\n",
        )
        .unwrap();
        assert_eq!(
            c.plugin_source(&c.transports[0].plugin),
            PluginSource::File(PathBuf::from("/opt/pw/libx.so"))
        );
        assert_eq!(
            c.plugin_source(&c.transports[1].plugin),
            PluginSource::File(PathBuf::from("/abs/liby.so"))
        );
        assert_eq!(
            c.plugin_source(&c.transports[2].plugin),
            PluginSource::Builtin("spool")
        );
        let e = parse("[plugins]\nfolder = \"relative\"\n").unwrap_err();
        assert!(e.to_string().contains("plugins.folder"), "{e}");
    }

    #[test]
    fn transport_entries_have_defaults_and_are_checked() {
        let c = parse("").unwrap();
        assert_eq!(c.plugins.folder, PathBuf::from(DEFAULT_PLUGIN_FOLDER));
        let t = c.effective_transports();
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].name.as_str(), t[0].plugin.as_str()),
            ("spool", "spool")
        );
        let c = parse(
            "[[transport]]\nname = \"sms\"\nplugin = \"libsms.so\"\naddress = \"phone\"\n\
             groups = [\"staff\"]\ntimeout = \"2s\"\nmax_concurrent = 2\nconfig = { url = \"https://x\" }\n",
        )
        .unwrap();
        let t = &c.transports[0];
        assert_eq!(t.address, AddressKind::Phone);
        assert_eq!(t.groups, vec!["staff".to_string()]);
        assert_eq!(t.timeout, Duration::from_secs(2));
        assert_eq!(t.max_concurrent, 2);
        assert_eq!(c.effective_transports().len(), 1);
        let defaults = parse("[[transport]]\nname = \"m\"\nplugin = \"libm.so\"\n").unwrap();
        assert_eq!(defaults.transports[0].address, AddressKind::Any);
        assert_eq!(defaults.transports[0].timeout, Duration::from_secs(10));
        assert_eq!(defaults.transports[0].max_concurrent, 4);

        let e = parse("[[transport]]\nname = \"m\"\nplugin = \"x.so\"\naddress = \"fax\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("line 4"), "{e}");
        let e = parse("[[transport]]\nname = \"m\"\nplugin = \"x.so\"\nmax_concurrent = 0\n")
            .unwrap_err();
        assert!(e.to_string().contains("transport[0].max_concurrent"), "{e}");
        assert!(e.to_string().contains("line 4"), "{e}");
        let e = parse("[[transport]]\nname = \"m\"\nplugin = \"x.so\"\ntimeout = \"1h\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("transport[0].timeout"), "{e}");
        let e = parse(
            "[[transport]]\nname = \"m\"\nplugin = \"x.so\"\n[[transport]]\nname = \"m\"\nplugin = \"y.so\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("transport[1].name"), "{e}");
        assert!(e.to_string().contains("line 5"), "{e}");
        let e = parse("[[transport]]\nname = \"m\"\nplugin = \"x.so\"\nretries = 3\n").unwrap_err();
        assert!(e.to_string().contains("retries"), "{e}");
        let e = parse("[[transport]]\nname = \"s\"\nplugin = \"spool\"\nconfig = { folder = 3 }\n")
            .unwrap_err();
        assert!(e.to_string().contains("transport[0].config"), "{e}");
    }

    #[test]
    fn a_transport_hidden_by_an_earlier_catch_all_is_refused() {
        let entry = |name: &str, address: &str, groups: &str| {
            format!(
                "[[transport]]\nname = \"{name}\"\nplugin = \"lib{name}.so\"\naddress = \"{address}\"\ngroups = [{groups}]\n"
            )
        };
        // The spool (any address, no groups) first hides the mail transport.
        let text = entry("spool", "any", "") + &entry("mail", "email", "");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("transport[1].address"), "{e}");
        assert!(
            e.contains("\"mail\" can never be chosen: transport[0] (\"spool\") comes first"),
            "{e}"
        );
        // Same address twice, no groups: the second is hidden too.
        assert!(parse(&(entry("a", "phone", "") + &entry("b", "phone", ""))).is_err());
        // Reachable: specific first, catch-all last; or groups on either.
        parse(&(entry("mail", "email", "") + &entry("spool", "any", ""))).unwrap();
        parse(&(entry("spool", "any", "") + &entry("sms", "phone", "\"field\""))).unwrap();
        parse(&(entry("spool", "any", "\"staff\"") + &entry("mail", "email", ""))).unwrap();
        parse(&(entry("mail", "email", "") + &entry("sms", "any", ""))).unwrap();
    }

    #[test]
    fn directory_entries_are_checked() {
        let c = parse(
            "[[directory]]\nname = \"corp\"\nplugin = \"libldap.so\"\nconfig = { url = \"ldap://x\" }\n",
        )
        .unwrap();
        assert_eq!(c.directories[0].name, "corp");
        assert_eq!(c.directories[0].max_concurrent, 4);
        let e = parse("[[directory]]\nname = \"local\"\nplugin = \"libldap.so\"\n").unwrap_err();
        assert!(e.to_string().contains("directory[0].name"), "{e}");
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = parse("[[directory]]\nname = \"d\"\nplugin = \"spool\"\n").unwrap_err();
        assert!(e.to_string().contains("directory[0].plugin"), "{e}");
        let e = parse("[[directory]]\nname = \"d\"\nplugin = \"x.so\"\nbase = 1\n").unwrap_err();
        assert!(e.to_string().contains("base"), "{e}");
    }
}
