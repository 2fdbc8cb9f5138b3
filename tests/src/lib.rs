//! Integration test harness: starts the built `pinwheeld` with a private config in a
//! temp dir (free ports chosen at run time, everything on 127.0.0.1), and drives it
//! with the built `pinwheelctl` and `pinwheel-mobile` and the real `radclient`
//! (freeradius-utils).
//!
//! Binaries come from `$PINWHEEL_BIN_DIR`, else `CARGO_MANIFEST_DIR/../target/debug`;
//! run `cargo build --workspace` first.

use std::fmt;
use std::fs::{self, File};
use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// How long we wait for the daemon to answer `GET /healthz` with 200.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long we wait for the daemon to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// The shared secret of the default RADIUS client (127.0.0.1/32).
pub const SECRET: &str = "testing123";

// ---------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------

/// Folder holding the built binaries.
pub fn bin_dir() -> PathBuf {
    match std::env::var_os("PINWHEEL_BIN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"),
    }
}

/// Path of a built workspace binary; panics with a clear message when it is missing.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    if !path.is_file() {
        panic!(
            "binary {} not found: run `cargo build --workspace` first \
             (or set PINWHEEL_BIN_DIR to the folder holding pinwheeld, pinwheelctl and pinwheel-mobile)",
            path.display()
        );
    }
    path
}

/// Path of a built plugin library of workspace crate `crate_name` (e.g.
/// `pinwheel-test-plugin-misbehaving` -> `libpinwheel_test_plugin_misbehaving.so`);
/// panics with a clear message when it is missing.
pub fn plugin_lib(crate_name: &str) -> PathBuf {
    let path = bin_dir().join(format!("lib{}.so", crate_name.replace('-', "_")));
    if !path.is_file() {
        panic!(
            "plugin {} not found: run `cargo build --workspace` first",
            path.display()
        );
    }
    path
}

/// Copies the built plugin of `crate_name` into `folder` (created 0755) with
/// file mode `mode`; returns the copy's path. The daemon refuses plugin files
/// writable by group or others, so tests pass 0o644 unless they test that.
pub fn install_plugin(folder: &Path, crate_name: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let src = plugin_lib(crate_name);
    fs::create_dir_all(folder).expect("create plugin folder");
    fs::set_permissions(folder, fs::Permissions::from_mode(0o755)).expect("chmod plugin folder");
    let dest = folder.join(src.file_name().expect("plugin file name"));
    fs::copy(&src, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    fs::set_permissions(&dest, fs::Permissions::from_mode(mode)).expect("chmod plugin");
    dest
}

/// Path of the real `radclient`; panics (never skips) when it is missing.
pub fn radclient() -> PathBuf {
    let default = PathBuf::from("/usr/bin/radclient");
    if default.is_file() {
        return default;
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("radclient");
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "radclient not found (/usr/bin/radclient nor on PATH): these tests need the real \
         radclient from Debian's freeradius-utils, which the test command installs \
         (DEBIAN_FRONTEND=noninteractive apt-get install -y freeradius-utils)"
    );
}

// ---------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------

/// A TCP port free on 127.0.0.1 right now (bound to port 0, then released).
pub fn free_tcp_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 (tcp)");
    l.local_addr().unwrap().port()
}

/// A UDP port free on 127.0.0.1 right now (bound to port 0, then released).
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 (udp)");
    s.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------
// Command output
// ---------------------------------------------------------------------------

/// What a finished command left behind.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics (showing both streams) unless the command exited 0; returns stdout.
    pub fn ok(&self) -> &str {
        assert!(self.success(), "command failed: {self}");
        &self.stdout
    }
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl From<std::process::Output> for CmdOutput {
    fn from(out: std::process::Output) -> Self {
        CmdOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs a command to completion (standard input closed).
pub fn run(cmd: &mut Command) -> CmdOutput {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
        .into()
}

/// Runs `pinwheelctl` with arbitrary arguments (no config implied).
pub fn ctl_raw(args: &[&str]) -> CmdOutput {
    run(Command::new(bin("pinwheelctl")).args(args))
}

/// Runs `pinwheel-mobile --state STATE ARGS...`.
pub fn mobile(state: &Path, args: &[&str]) -> CmdOutput {
    run(Command::new(bin("pinwheel-mobile"))
        .arg("--state")
        .arg(state)
        .args(args))
}

/// Runs `pinwheel-mobile otc --pin PIN [--index N]` and returns the code to type
/// (OTC followed by the 2-digit index).
pub fn mobile_otc(state: &Path, pin: &str, index: Option<u32>) -> String {
    let idx = index.map(|i| i.to_string());
    let mut args = vec!["otc", "--pin", pin];
    if let Some(i) = &idx {
        args.push("--index");
        args.push(i);
    }
    let out = mobile(state, &args);
    let code = out.ok().trim().to_string();
    assert!(
        code.len() == pin.len() + 2 && code.chars().all(|c| c.is_ascii_alphanumeric()),
        "unexpected otc output for a {}-digit PIN: {out}",
        pin.len()
    );
    if let Some(i) = index {
        assert_eq!(&code[code.len() - 2..], format!("{i:02}"), "index suffix");
    }
    code
}

/// The mobile state file (JSON).
pub fn mobile_state(state: &Path) -> Value {
    let text = fs::read_to_string(state)
        .unwrap_or_else(|e| panic!("read mobile state {}: {e}", state.display()));
    serde_json::from_str(&text).expect("mobile state is JSON")
}

/// The device token kept in a mobile state file.
pub fn mobile_token(state: &Path) -> String {
    mobile_state(state)["device"]["device_token"]
        .as_str()
        .expect("device.device_token in mobile state")
        .to_string()
}

/// The security strings kept in a mobile state file.
pub fn mobile_strings(state: &Path) -> Vec<String> {
    mobile_state(state)["device"]["strings"]
        .as_array()
        .expect("device.strings in mobile state")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

/// Replaces the first OTC character (not the index) by another digit.
pub fn alter_otc(code: &str) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    chars[0] = match chars[0].to_digit(10) {
        Some(d) => char::from_digit((d + 1) % 10, 10).unwrap(),
        None => '0',
    };
    chars.into_iter().collect()
}

// ---------------------------------------------------------------------------
// RADIUS
// ---------------------------------------------------------------------------

/// What radclient saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RadiusOutcome {
    Accept,
    Reject,
    NoReply,
}

/// Runs `radclient -x -r TRIES -t TIMEOUT 127.0.0.1:PORT KIND SECRET` with
/// `attrs` on standard input; returns its exit success and its whole output
/// (stdout then stderr).
pub fn radclient_output(
    port: u16,
    kind: &str,
    secret: &str,
    attrs: &str,
    timeout_s: u32,
    tries: u32,
) -> (bool, String) {
    let mut child = Command::new(radclient())
        .args([
            "-x",
            "-r",
            &tries.to_string(),
            "-t",
            &timeout_s.to_string(),
            &format!("127.0.0.1:{port}"),
            kind,
            secret,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn radclient");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(attrs.as_bytes())
        .expect("write radclient stdin");
    let out = child.wait_with_output().expect("radclient output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.success(), format!("{stdout}\n{stderr}"))
}

fn radclient_run(
    port: u16,
    kind: &str,
    secret: &str,
    attrs: &str,
    timeout_s: u32,
    tries: u32,
) -> RadiusOutcome {
    let (success, all) = radclient_output(port, kind, secret, attrs, timeout_s, tries);
    if all.contains("Received Access-Accept") {
        RadiusOutcome::Accept
    } else if all.contains("Received Access-Reject") {
        RadiusOutcome::Reject
    } else if all.contains("No reply from server") {
        assert!(!success, "radclient exit 0 without reply: {all}");
        RadiusOutcome::NoReply
    } else {
        panic!("unexpected radclient output:\n{all}\nrequest:\n{attrs}");
    }
}

fn auth_attrs(user: &str, password: &str, with_ma: bool) -> String {
    let mut attrs = format!("User-Name = \"{user}\"\nUser-Password = \"{password}\"\n");
    if with_ma {
        attrs.push_str("Message-Authenticator = 0x00\n");
    }
    attrs
}

// ---------------------------------------------------------------------------
// Spool messages
// ---------------------------------------------------------------------------

/// One message the spool transport wrote.
#[derive(Debug, Clone)]
pub struct SpoolMessage {
    pub file_name: String,
    pub to: String,
    pub user: String,
    pub subject: String,
    pub kind: String,
    pub body: String,
}

impl SpoolMessage {
    fn parse(file_name: &str, text: &str) -> Option<SpoolMessage> {
        let (head, body) = text.split_once("\n\n")?;
        let mut m = SpoolMessage {
            file_name: file_name.to_string(),
            to: String::new(),
            user: String::new(),
            subject: String::new(),
            kind: String::new(),
            body: body.to_string(),
        };
        for line in head.lines() {
            let (k, v) = line.split_once(':')?;
            let v = v.trim().to_string();
            match k.trim() {
                "To" => m.to = v,
                "User" => m.user = v,
                "Subject" => m.subject = v,
                "Kind" => m.kind = v,
                _ => {}
            }
        }
        Some(m)
    }

    /// The Mobile Provision Code in a provision-code message.
    pub fn provision_code(&self) -> Option<String> {
        let rest = self.body.split("Your Mobile Provision Code is: ").nth(1)?;
        let code: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
        (!code.is_empty()).then_some(code)
    }

    /// The value after `prefix` on the body line that starts with it.
    pub fn body_value(&self, prefix: &str) -> Option<String> {
        self.body
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_string())
    }
}

/// Every complete message in a spool folder, oldest first (names start with a timestamp).
pub fn spool_messages(folder: &Path) -> Vec<SpoolMessage> {
    let mut names: Vec<String> = match fs::read_dir(folder) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
        .iter()
        .filter_map(|n| {
            let text = fs::read_to_string(folder.join(n)).ok()?;
            SpoolMessage::parse(n, &text)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// An HTTP answer, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl HttpReply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!("HTTP {} body is not JSON ({e}): {}", self.status, self.body)
        })
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

fn to_reply(res: std::result::Result<ureq::Response, ureq::Error>) -> Result<HttpReply> {
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(anyhow!(e)),
    };
    let status = resp.status();
    let content_type = resp.content_type().to_string();
    let body = resp.into_string().context("read HTTP body")?;
    Ok(HttpReply {
        status,
        content_type,
        body,
    })
}

/// `POST url` with a JSON body and an optional bearer token.
pub fn http_post(url: &str, body: &Value, bearer: Option<&str>) -> HttpReply {
    let mut req = agent().post(url);
    if let Some(t) = bearer {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    to_reply(req.send_json(body.clone())).unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// `GET url`.
pub fn http_get(url: &str) -> Result<HttpReply> {
    to_reply(agent().get(url).call())
}

// ---------------------------------------------------------------------------
// Daemon
// ---------------------------------------------------------------------------

/// One `[[radius.client]]` block.
#[derive(Debug, Clone)]
pub struct RadiusClient {
    pub name: String,
    pub address: String,
    pub secret: String,
    pub require_message_authenticator: bool,
}

impl Default for RadiusClient {
    fn default() -> Self {
        RadiusClient {
            name: "localhost".into(),
            address: "127.0.0.1/32".into(),
            secret: SECRET.into(),
            require_message_authenticator: true,
        }
    }
}

/// What a test may change in the generated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub clients: Vec<RadiusClient>,
    /// `[provision] code_ttl`, e.g. "2s".
    pub code_ttl: Option<String>,
    /// `[provision] requests_per_hour`.
    pub requests_per_hour: Option<u32>,
    /// `two_stage = true` on every RADIUS client.
    pub two_stage: bool,
    /// Raw TOML lines added to every `[[radius.client]]` block.
    pub client_extra: String,
    /// Raw TOML lines added inside the `[http]` table.
    pub http_extra: String,
    /// Raw TOML lines added inside the `[server]` table.
    pub server_extra: String,
    /// Raw TOML appended at the end of the file.
    pub extra: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            clients: vec![RadiusClient::default()],
            code_ttl: None,
            requests_per_hour: None,
            two_stage: false,
            client_extra: String::new(),
            http_extra: String::new(),
            server_extra: String::new(),
            extra: String::new(),
        }
    }
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Paths and ports of one daemon's private setup.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
    pub config_path: PathBuf,
    pub state_dir: PathBuf,
    pub runtime_dir: PathBuf,
    pub spool_dir: PathBuf,
    pub log_path: PathBuf,
    pub http_port: u16,
    pub radius_port: u16,
    pub accounting_port: u16,
}

impl Layout {
    /// Lays out folders under `root` and picks free ports.
    pub fn new(root: &Path) -> Layout {
        let l = Layout {
            root: root.to_path_buf(),
            config_path: root.join("pinwheel.toml"),
            state_dir: root.join("state"),
            runtime_dir: root.join("run"),
            spool_dir: root.join("spool"),
            log_path: root.join("pinwheeld.log"),
            http_port: free_tcp_port(),
            radius_port: free_udp_port(),
            accounting_port: free_udp_port(),
        };
        for d in [&l.state_dir, &l.runtime_dir, &l.spool_dir] {
            fs::create_dir_all(d).expect("create dir");
        }
        l
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn admin_socket(&self) -> PathBuf {
        self.runtime_dir.join("admin.sock")
    }

    /// The TOML text of this layout with `cfg`.
    pub fn render(&self, cfg: &Config) -> String {
        let mut t = String::new();
        t.push_str("[server]\n");
        t.push_str(&format!(
            "state_dir = {}\n",
            toml_str(&self.state_dir.to_string_lossy())
        ));
        t.push_str(&format!(
            "runtime_dir = {}\n",
            toml_str(&self.runtime_dir.to_string_lossy())
        ));
        t.push_str(&format!(
            "public_url = {}\n{}\n",
            toml_str(&self.base_url()),
            cfg.server_extra
        ));
        // Started as root, pinwheeld switches to `[server] user` (default
        // `pinwheel`, which need not exist here, and could not reach this
        // private temp dir): test daemons keep root explicitly, unless the
        // test sets the user itself (tests/tests/privileges.rs).
        let sets_user = cfg
            .server_extra
            .lines()
            .any(|l| l.trim_start().starts_with("user"));
        if nix::unistd::Uid::effective().is_root() && !sets_user {
            t.push_str("user = \"root\"\n");
        }
        t.push_str(&format!(
            "[http]\nlisten = \"127.0.0.1:{}\"\n{}\n",
            self.http_port, cfg.http_extra
        ));
        t.push_str(&format!(
            "[radius]\nlisten = \"127.0.0.1:{}\"\naccounting_listen = \"127.0.0.1:{}\"\n\n",
            self.radius_port, self.accounting_port
        ));
        for c in &cfg.clients {
            t.push_str("[[radius.client]]\n");
            t.push_str(&format!("name = {}\n", toml_str(&c.name)));
            t.push_str(&format!("address = {}\n", toml_str(&c.address)));
            t.push_str(&format!("secret = {}\n", toml_str(&c.secret)));
            t.push_str(&format!(
                "require_message_authenticator = {}\ntwo_stage = {}\n{}\n\n",
                c.require_message_authenticator, cfg.two_stage, cfg.client_extra
            ));
        }
        t.push_str("[provision]\n");
        if let Some(ttl) = &cfg.code_ttl {
            t.push_str(&format!("code_ttl = {}\n", toml_str(ttl)));
        }
        if let Some(n) = cfg.requests_per_hour {
            t.push_str(&format!("requests_per_hour = {n}\n"));
        }
        t.push('\n');
        t.push_str("[[transport]]\nname = \"spool\"\nplugin = \"spool\"\n");
        t.push_str(&format!(
            "config = {{ folder = {} }}\n\n",
            toml_str(&self.spool_dir.to_string_lossy())
        ));
        t.push_str(&cfg.extra);
        t
    }
}

/// Spawns `pinwheeld --config FILE` with stdout and stderr going to `log`
/// (appended, so a restart keeps the earlier output).
pub fn spawn_pinwheeld(config: &Path, log: &Path) -> Child {
    let f = File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("open daemon log");
    let f2 = f.try_clone().expect("clone log handle");
    Command::new(bin("pinwheeld"))
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::from(f2))
        .stderr(Stdio::from(f))
        .spawn()
        .expect("spawn pinwheeld")
}

/// Sends SIGTERM to a child, then waits up to `STOP_TIMEOUT` for it to exit.
pub fn terminate(child: &mut Child) -> Result<(ExitStatus, Duration)> {
    let start = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).context("send SIGTERM")?;
    wait_timeout(child, STOP_TIMEOUT).map(|s| (s, start.elapsed()))
}

/// Waits up to `limit` for a child to exit.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Result<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(st);
        }
        if Instant::now() > deadline {
            bail!("process {} still running after {:?}", child.id(), limit);
        }
        thread::sleep(Duration::from_millis(25));
    }
}

/// A running `pinwheeld` with its own temp dir, config, ports and log.
pub struct Daemon {
    _dir: tempfile::TempDir,
    pub layout: Layout,
    pub config: Config,
    child: Option<Child>,
}

impl Daemon {
    /// Starts a daemon with the default config changed by `tweak`, and waits for
    /// `GET /healthz` to answer 200 and the admin socket to appear.
    pub fn start(tweak: impl FnOnce(&mut Config)) -> Daemon {
        let mut cfg = Config::default();
        tweak(&mut cfg);
        let dir = tempfile::Builder::new()
            .prefix("pinwheel-test-")
            .tempdir()
            .expect("temp dir");
        // A port picked free can be taken by another test before the daemon binds it:
        // try again with new ports then.
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let layout = Layout::new(dir.path());
            fs::write(&layout.config_path, layout.render(&cfg)).expect("write config");
            let _ = fs::remove_file(&layout.log_path);
            let mut child = spawn_pinwheeld(&layout.config_path, &layout.log_path);
            match wait_ready(&layout, &mut child) {
                Ok(()) => {
                    return Daemon {
                        _dir: dir,
                        layout,
                        config: cfg,
                        child: Some(child),
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = fs::read_to_string(&layout.log_path).unwrap_or_default();
                    last_err = format!("{e:#}\n--- pinwheeld log ---\n{log}");
                    if !log.contains("in use") {
                        break;
                    }
                }
            }
        }
        panic!("pinwheeld did not start: {last_err}");
    }

    /// A daemon with the default config.
    pub fn start_default() -> Daemon {
        Daemon::start(|_| {})
    }

    pub fn base_url(&self) -> String {
        self.layout.base_url()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url(), path)
    }

    pub fn config_path(&self) -> &Path {
        &self.layout.config_path
    }

    pub fn state_dir(&self) -> &Path {
        &self.layout.state_dir
    }

    pub fn spool_dir(&self) -> &Path {
        &self.layout.spool_dir
    }

    pub fn root(&self) -> &Path {
        &self.layout.root
    }

    /// A path in this daemon's temp dir (for mobile state files etc.).
    pub fn path(&self, name: &str) -> PathBuf {
        self.layout.root.join(name)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    /// The daemon's captured stdout+stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.layout.log_path).unwrap_or_default()
    }

    /// Waits (up to 30 s) until the log holds `n` lines that each contain every one of
    /// `words`; returns how many it holds then. (A REST code request answers before it
    /// sends: its log line is the only sign that it has been dealt with.)
    pub fn wait_log_lines(&self, words: &[&str], n: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let count = self
                .log()
                .lines()
                .filter(|l| words.iter().all(|w| l.contains(w)))
                .count();
            if count >= n || Instant::now() > deadline {
                return count;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `pinwheelctl --config FILE ARGS...`
    pub fn ctl(&self, args: &[&str]) -> CmdOutput {
        run(Command::new(bin("pinwheelctl"))
            .arg("--config")
            .arg(&self.layout.config_path)
            .args(args))
    }

    /// `pinwheelctl`, which must succeed; returns stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        out.ok().to_string()
    }

    /// Adds a local user with an email address and a PIN.
    pub fn add_user(&self, name: &str, pin: &str) {
        let email = format!("{name}@example.test");
        self.ctl_ok(&["user", "add", name, "--email", &email, "--pin", pin]);
    }

    /// Spool messages for `user` of `kind` (e.g. "provision-code", "pin"), oldest first.
    pub fn spool_for(&self, user: &str, kind: &str) -> Vec<SpoolMessage> {
        spool_messages(&self.layout.spool_dir)
            .into_iter()
            .filter(|m| m.user == user && m.kind == kind)
            .collect()
    }

    /// The code in the newest provision-code message for `user`, if any.
    pub fn latest_provision_code(&self, user: &str) -> Option<String> {
        self.spool_for(user, "provision-code")
            .last()
            .and_then(|m| m.provision_code())
    }

    /// Waits (up to 30 s) until `user` has more than `seen` provision-code messages and
    /// returns the newest one.
    pub fn wait_provision_message(&self, user: &str, seen: usize) -> SpoolMessage {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let msgs = self.spool_for(user, "provision-code");
            if msgs.len() > seen {
                let m = msgs.last().unwrap().clone();
                if m.provision_code().is_some() {
                    return m;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "no new provision-code message for {user} in {} (had {seen}, now {})",
                    self.layout.spool_dir.display(),
                    msgs.len()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `pinwheelctl provision send USER`, then the new code from the spool.
    pub fn provision_send(&self, user: &str) -> String {
        let seen = self.spool_for(user, "provision-code").len();
        let out = self.ctl(&["provision", "send", user]);
        assert!(out.success(), "provision send {user}: {out}");
        self.wait_provision_message(user, seen)
            .provision_code()
            .unwrap()
    }

    /// Provisions the mobile state file `state` for `user` with `code`.
    pub fn mobile_provision(&self, state: &Path, user: &str, code: &str) -> CmdOutput {
        let server = self.base_url();
        mobile(
            state,
            &[
                "provision",
                "--server",
                &server,
                "--user",
                user,
                "--code",
                code,
                "--device-name",
                "test-phone",
            ],
        )
    }

    /// Sends a fresh code to `user` and provisions `state` with it; asserts success.
    /// Returns the code used.
    pub fn provision_device(&self, state: &Path, user: &str) -> String {
        let code = self.provision_send(user);
        let out = self.mobile_provision(state, user, &code);
        assert!(out.success(), "mobile provision failed: {out}");
        assert!(out.stdout.contains("Provisioning. Please wait..."), "{out}");
        assert!(out.stdout.contains("Device Provisioned"), "{out}");
        code
    }

    /// PAP Access-Request from 127.0.0.1 (3 tries of 3 s: a retransmission gets the
    /// cached answer, never a second check).
    pub fn radius_auth(
        &self,
        user: &str,
        password: &str,
        with_ma: bool,
        secret: &str,
    ) -> RadiusOutcome {
        self.radius_auth_timeout(user, password, with_ma, secret, 3, 3)
    }

    /// PAP Access-Request with radclient's `-t timeout_s -r tries`.
    pub fn radius_auth_timeout(
        &self,
        user: &str,
        password: &str,
        with_ma: bool,
        secret: &str,
        timeout_s: u32,
        tries: u32,
    ) -> RadiusOutcome {
        radclient_run(
            self.layout.radius_port,
            "auth",
            secret,
            &auth_attrs(user, password, with_ma),
            timeout_s,
            tries,
        )
    }

    /// Access-Request with Message-Authenticator and the default secret.
    pub fn auth(&self, user: &str, password: &str) -> RadiusOutcome {
        self.radius_auth(user, password, true, SECRET)
    }

    /// Status-Server (with Message-Authenticator).
    pub fn radius_status(&self, secret: &str, timeout_s: u32, tries: u32) -> RadiusOutcome {
        radclient_run(
            self.layout.radius_port,
            "status",
            secret,
            "Message-Authenticator = 0x00\n",
            timeout_s,
            tries,
        )
    }

    /// `POST /api/v1/...` with a JSON body.
    pub fn post(&self, path: &str, body: &Value, bearer: Option<&str>) -> HttpReply {
        http_post(&self.url(path), body, bearer)
    }

    /// Sends SIGTERM and waits for the exit; returns the status and how long it took.
    pub fn stop(&mut self) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("daemon running");
        terminate(&mut child).unwrap_or_else(|e| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pinwheeld did not stop: {e:#}\n{}", self.log())
        })
    }

    /// `true` while the daemon process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().map(|s| s.is_none()).unwrap_or(false),
            None => false,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_ready(layout: &Layout, child: &mut Child) -> Result<()> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let url = format!("{}/healthz", layout.base_url());
    let short = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(2))
        .build();
    loop {
        if let Some(st) = child.try_wait()? {
            bail!("pinwheeld exited during startup with {st}");
        }
        let healthy = matches!(short.get(&url).call(), Ok(r) if r.status() == 200);
        if healthy && layout.admin_socket().exists() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "pinwheeld not ready after {STARTUP_TIMEOUT:?} (GET {url} 200 and {} expected)",
                layout.admin_socket().display()
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Every regular file under `dir` (recursively) with its bytes.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let e = e.unwrap();
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let bytes = fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
                out.push((p, bytes));
            }
        }
    }
    out
}

/// `true` when `needle` occurs in `hay`.
pub fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
