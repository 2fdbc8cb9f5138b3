//! A private OpenLDAP `slapd` on 127.0.0.1 at ports chosen at run time,
//! with its own config and database in a temporary folder, killed (and
//! waited for) on drop. The suffix, root DN and service account are the
//! constants below; the caller loads its entries once it has started
//! ([`Slapd::modify`] takes LDIF).
//!
//! Needs Debian's `slapd` and `ldap-utils` (run `tools/test.sh`, which
//! installs them without starting the system service).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

pub const SUFFIX: &str = "dc=example,dc=org";
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
pub const ROOT_PW: &str = "root-secret";
/// The service account: may read everything but passwords.
pub const SERVICE_DN: &str = "cn=pinwheel,ou=services,dc=example,dc=org";
pub const SERVICE_PW: &str = "service-secret";
pub const PEOPLE: &str = "ou=people,dc=example,dc=org";

/// What a test needs beyond the plain directory (core, cosine and
/// inetOrgPerson schemas, an mdb database, passwords for binding only,
/// the rest readable by the service account and by self).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra schema files, (file name, text), included after the standard ones.
    pub schemas: Vec<(&'static str, &'static str)>,
    /// Overlays on the database, each loaded as a module of the same name
    /// (e.g. `memberof`).
    pub overlays: Vec<&'static str>,
    /// Attributes only the service account may read (not even self).
    pub service_only_attrs: Vec<&'static str>,
    /// When set: also listen with `ldaps://` on [`Slapd::tls_url`].
    pub tls: Option<Tls>,
}

/// PEM texts for the `ldaps://` listener, saved in the slapd folder as
/// `ca.pem`, `server.pem` and `server.key` (see [`Slapd::path`]).
#[derive(Debug, Clone)]
pub struct Tls {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

/// A private slapd: killed (and waited for) on drop.
pub struct Slapd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    tls_port: Option<u16>,
}

/// The slapd program; panics (asking for tools/test.sh) when missing.
pub fn slapd_binary() -> PathBuf {
    for candidate in [
        "/usr/sbin/slapd",
        "/usr/local/sbin/slapd",
        "/usr/local/libexec/slapd",
    ] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "slapd (OpenLDAP server) is not installed: run tools/test.sh, which installs \
         Debian's slapd and ldap-utils without starting the system service"
    );
}

fn module_dir() -> &'static str {
    for d in [
        "/usr/lib/ldap",
        "/usr/lib/x86_64-linux-gnu/ldap",
        "/usr/lib/aarch64-linux-gnu/ldap",
    ] {
        if Path::new(d).join("back_mdb.so").exists() || Path::new(d).join("back_mdb.la").exists() {
            return d;
        }
    }
    "/usr/lib/ldap"
}

fn missing_ldap_utils(tool: &str, e: std::io::Error) -> ! {
    panic!(
        "cannot run {tool} (ldap-utils): {e}; run tools/test.sh, which installs \
         Debian's slapd and ldap-utils without starting the system service"
    )
}

/// Runs an ldap-utils command as the root DN with `ldif` on standard input.
pub fn ldap_tool(tool: &str, url: &str, extra: &[&str], ldif: &str) -> Output {
    let mut child = Command::new(tool)
        .args(["-x", "-H", url, "-D", ROOT_DN, "-w", ROOT_PW])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| missing_ldap_utils(tool, e));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(ldif.as_bytes())
        .expect("write LDIF");
    child.wait_with_output().expect("wait for the LDAP tool")
}

fn config(d: &Path, options: &Options) -> String {
    let dir = d.display();
    let mut conf = String::from(
        "include /etc/ldap/schema/core.schema\n\
         include /etc/ldap/schema/cosine.schema\n\
         include /etc/ldap/schema/inetorgperson.schema\n",
    );
    for (name, _) in &options.schemas {
        conf.push_str(&format!("include {dir}/{name}\n"));
    }
    conf.push_str(&format!(
        "pidfile {dir}/slapd.pid\nargsfile {dir}/slapd.args\nmodulepath {}\nmoduleload back_mdb\n",
        module_dir()
    ));
    for overlay in &options.overlays {
        conf.push_str(&format!("moduleload {overlay}\n"));
    }
    if options.tls.is_some() {
        conf.push_str(&format!(
            "TLSCACertificateFile {dir}/ca.pem\nTLSCertificateFile {dir}/server.pem\n\
             TLSCertificateKeyFile {dir}/server.key\n"
        ));
    }
    conf.push_str(&format!(
        "\ndatabase mdb\nmaxsize 16777216\nsuffix \"{SUFFIX}\"\nrootdn \"{ROOT_DN}\"\n\
         rootpw {ROOT_PW}\ndirectory {dir}/db\nindex objectClass eq\n"
    ));
    for overlay in &options.overlays {
        conf.push_str(&format!("overlay {overlay}\n"));
    }
    conf.push_str(
        "access to attrs=userPassword\n  by anonymous auth\n  by self read\n  by * none\n",
    );
    if !options.service_only_attrs.is_empty() {
        conf.push_str(&format!(
            "access to attrs={}\n  by dn.exact=\"{SERVICE_DN}\" read\n  by * none\n",
            options.service_only_attrs.join(",")
        ));
    }
    conf.push_str(&format!(
        "access to *\n  by dn.exact=\"{SERVICE_DN}\" read\n  by self read\n  by * none\n"
    ));
    conf
}

impl Slapd {
    /// Writes the config, schema files, TLS files and database folder,
    /// starts slapd (retrying on other ports) and waits until the root DN
    /// can bind. The directory is empty: load entries with [`Slapd::modify`].
    pub fn start(options: &Options) -> Slapd {
        let binary = slapd_binary();
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        std::fs::create_dir(d.join("db")).expect("db dir");
        for (name, text) in &options.schemas {
            std::fs::write(d.join(name), text).expect("schema");
        }
        if let Some(tls) = &options.tls {
            std::fs::write(d.join("ca.pem"), &tls.ca).expect("ca.pem");
            std::fs::write(d.join("server.pem"), &tls.cert).expect("server.pem");
            std::fs::write(d.join("server.key"), &tls.key).expect("server.key");
        }
        std::fs::write(d.join("slapd.conf"), config(d, options)).expect("slapd.conf");
        let mut slapd = Slapd {
            child: None,
            dir,
            port: 0,
            tls_port: None,
        };
        let mut last = String::new();
        for _ in 0..5 {
            slapd.port = free_port();
            slapd.tls_port = options.tls.as_ref().map(|_| free_port());
            match slapd.spawn(&binary) {
                Ok(()) => return slapd,
                Err(log) => last = log,
            }
        }
        panic!("slapd did not start; its log:\n{last}");
    }

    /// Starts the process on the chosen ports and waits until the root DN
    /// can bind. Err(log) when it exits or never answers.
    fn spawn(&mut self, binary: &Path) -> Result<(), String> {
        let d = self.dir.path();
        let log_path = d.join("slapd.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut urls = format!("ldap://127.0.0.1:{}/", self.port);
        if let Some(tls_port) = self.tls_port {
            urls.push_str(&format!(" ldaps://127.0.0.1:{tls_port}/"));
        }
        let child = Command::new(binary)
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-h")
            .arg(urls)
            // Any -d keeps slapd in the foreground, our child.
            .args(["-d", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("exited with {status}\n{}", read_log()));
                }
            }
            let probe = Command::new("ldapwhoami")
                .args(["-x", "-H", &self.url(), "-D", ROOT_DN, "-w", ROOT_PW])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            match probe {
                Ok(s) if s.success() => return Ok(()),
                Ok(_) => {}
                Err(e) => {
                    self.stop();
                    missing_ldap_utils("ldapwhoami", e);
                }
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!("no answer within 15 s\n{}", read_log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills slapd and waits for it (also done on drop).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts slapd again on the same ports, same database.
    pub fn restart(&mut self) {
        self.stop();
        let binary = slapd_binary();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn(&binary) {
                Ok(()) => return,
                Err(log) if Instant::now() > deadline => panic!("slapd did not restart:\n{log}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// The plain listener, `ldap://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// The TLS listener, `ldaps://127.0.0.1:PORT` (panics without [`Options::tls`]).
    pub fn tls_url(&self) -> String {
        let port = self.tls_port.expect("slapd started without TLS");
        format!("ldaps://127.0.0.1:{port}")
    }

    /// The temporary folder (config, database, log), removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A file in [`Slapd::dir`].
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Applies `ldif` (with `changetype:` lines) with ldapmodify as the root DN.
    pub fn modify(&self, ldif: &str) {
        let out = ldap_tool("ldapmodify", &self.url(), &[], ldif);
        assert!(
            out.status.success(),
            "ldapmodify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Deletes `dn` with ldapdelete as the root DN.
    pub fn delete(&self, dn: &str) {
        let out = ldap_tool("ldapdelete", &self.url(), &[dn], "");
        assert!(
            out.status.success(),
            "ldapdelete {dn}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
