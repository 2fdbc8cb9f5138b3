//! The plugin's `config = { ... }` table: its serde model ([`Settings`]) and
//! the checks that turn it into a ready [`Config`] (bind password read, TLS
//! roots loaded, filters parsed). Every error names the key at fault.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pinwheel_sdk::PluginError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::filter;

/// The `config` table of a `[[directory]]` entry with `plugin = "directory-ldap"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Servers to use, tried in this order: when one cannot be reached or
    /// times out, the next is tried. `ldap://host[:port]` or
    /// `ldaps://host[:port]`.
    pub urls: Vec<String>,
    /// Upgrade `ldap://` connections with StartTLS (ignored for `ldaps://`).
    #[serde(default)]
    pub starttls: bool,
    /// PEM file with the CA certificate(s) that signed the servers'
    /// certificates. Default: the system's trusted CAs.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// DN (or, for Active Directory, a `user@domain` name) of the service
    /// account used for searches. Omit it together with `bind_password_file`
    /// for anonymous searches.
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// File holding the service account's password, read once at start (and
    /// on reload); one trailing newline is removed.
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// Where users are searched (subtree).
    pub base_dn: String,
    /// Filter finding one user; `{username}` is replaced by the name as
    /// typed, escaped as RFC 4515 requires.
    #[serde(default = "default_user_filter")]
    pub user_filter: String,
    /// Filter for `list_users` (the sync). Default: `user_filter` with
    /// `{username}` replaced by `*`.
    #[serde(default)]
    pub list_filter: Option<String>,
    /// Which LDAP attributes hold the user's data.
    #[serde(default)]
    pub attributes: Attributes,
    /// Find groups by searching group entries instead of (in addition to)
    /// reading `attributes.groups` from the user.
    #[serde(default)]
    pub group_search: Option<GroupSearch>,
    /// Seconds allowed for connecting to one server and for each operation.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// Page size of the paged-results control used by `list_users`; `0`
    /// turns paging off.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

/// The `attributes` sub-table: attribute names for each user field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attributes {
    /// The login name (`uid`; Active Directory: `sAMAccountName`).
    #[serde(default = "default_username_attribute")]
    pub username: String,
    /// Email address (`mail`).
    #[serde(default = "default_email_attribute")]
    pub email: String,
    /// Phone number for SMS (`mobile`).
    #[serde(default = "default_phone_attribute")]
    pub phone: String,
    /// Group DNs on the user entry (`memberOf`); `""` reads none.
    #[serde(default = "default_groups_attribute")]
    pub groups: String,
}

impl Default for Attributes {
    fn default() -> Self {
        Attributes {
            username: default_username_attribute(),
            email: default_email_attribute(),
            phone: default_phone_attribute(),
            groups: default_groups_attribute(),
        }
    }
}

/// The `group_search` sub-table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSearch {
    /// Where groups are searched (subtree).
    pub base_dn: String,
    /// Filter finding the user's groups; `{dn}` is replaced by the user's DN
    /// and `{username}` by the user name, both escaped.
    #[serde(default = "default_group_filter")]
    pub filter: String,
    /// Attribute holding the group's short name.
    #[serde(default = "default_group_name_attribute")]
    pub name_attribute: String,
}

fn default_user_filter() -> String {
    "(&(objectClass=inetOrgPerson)(uid={username}))".into()
}
fn default_timeout() -> u64 {
    5
}
fn default_page_size() -> u32 {
    500
}
fn default_username_attribute() -> String {
    "uid".into()
}
fn default_email_attribute() -> String {
    "mail".into()
}
fn default_phone_attribute() -> String {
    "mobile".into()
}
fn default_groups_attribute() -> String {
    "memberOf".into()
}
fn default_group_filter() -> String {
    "(&(objectClass=groupOfNames)(member={dn}))".into()
}
fn default_group_name_attribute() -> String {
    "cn".into()
}

/// A checked configuration, ready to connect with.
pub struct Config {
    /// Server URLs in failover order.
    pub urls: Vec<String>,
    /// StartTLS on `ldap://` URLs.
    pub starttls: bool,
    /// TLS settings, when any URL uses TLS.
    pub tls: Option<Arc<ClientConfig>>,
    /// Service account DN and password; `None` for anonymous searches.
    pub bind: Option<(String, Zeroizing<String>)>,
    /// Search base for users.
    pub base_dn: String,
    /// User filter template (`{username}`).
    pub user_filter: String,
    /// Filter for listing every user.
    pub list_filter: String,
    /// Attribute names.
    pub attributes: Attributes,
    /// Group search, if configured.
    pub group_search: Option<GroupSearch>,
    /// Connect and operation timeout.
    pub timeout: Duration,
    /// Page size for `list_users` (0: no paging).
    pub page_size: i32,
}

fn bad(key: &str, why: impl std::fmt::Display) -> PluginError {
    PluginError::config(format!("directory-ldap: config key `{key}`: {why}"))
}

impl Config {
    /// Parses and checks the plugin's JSON config.
    ///
    /// Errors: [`PluginError::config`] naming the key at fault.
    pub fn from_json(config: serde_json::Value) -> Result<Config, PluginError> {
        // Never echoes a value: an inline `bind_password` of the wrong type
        // stays out of the log.
        let settings: Settings = pinwheel_sdk::scrub::parse_config(config)
            .map_err(|e| PluginError::config(format!("directory-ldap: {e}")))?;
        Config::check(settings)
    }

    /// Checks `settings` and loads the files they name.
    pub fn check(s: Settings) -> Result<Config, PluginError> {
        if s.urls.is_empty() {
            return Err(bad("urls", "give at least one ldap:// or ldaps:// URL"));
        }
        for (i, url) in s.urls.iter().enumerate() {
            check_url(url).map_err(|why| bad(&format!("urls[{i}]"), format!("{url:?}: {why}")))?;
        }
        let uses_tls = s.starttls || s.urls.iter().any(|u| u.starts_with("ldaps://"));
        if s.ca_file.is_some() && !uses_tls {
            return Err(bad(
                "ca_file",
                "set, but no URL is ldaps:// and starttls is false",
            ));
        }
        let tls = if uses_tls {
            Some(tls_config(s.ca_file.as_deref())?)
        } else {
            None
        };

        let bind = match (s.bind_dn, s.bind_password_file) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(bad(
                    "bind_password_file",
                    "missing (bind_dn is set; omit both for anonymous searches)",
                ))
            }
            (None, Some(_)) => {
                return Err(bad(
                    "bind_dn",
                    "missing (bind_password_file is set; omit both for anonymous searches)",
                ))
            }
            (Some(dn), Some(file)) => {
                if dn.trim().is_empty() || dn.chars().any(char::is_control) {
                    return Err(bad("bind_dn", "empty or contains control characters"));
                }
                Some((dn, read_password(&file)?))
            }
        };

        check_dn("base_dn", &s.base_dn)?;
        check_filter_template("user_filter", &s.user_filter, &["{username}"])?;
        let list_filter = match s.list_filter {
            Some(f) => {
                check_filter_template("list_filter", &f, &[])?;
                f
            }
            None => s.user_filter.replace("{username}", "*"),
        };
        check_attribute("attributes.username", &s.attributes.username, false)?;
        check_attribute("attributes.email", &s.attributes.email, false)?;
        check_attribute("attributes.phone", &s.attributes.phone, false)?;
        check_attribute("attributes.groups", &s.attributes.groups, true)?;
        if let Some(g) = &s.group_search {
            check_dn("group_search.base_dn", &g.base_dn)?;
            check_filter_template("group_search.filter", &g.filter, &["{dn}", "{username}"])?;
            check_attribute("group_search.name_attribute", &g.name_attribute, false)?;
        }
        if !(1..=300).contains(&s.timeout) {
            return Err(bad("timeout", "must be 1 to 300 seconds"));
        }
        let page_size = i32::try_from(s.page_size).map_err(|_| {
            bad(
                "page_size",
                "too large (at most 2147483647; 0 turns paging off)",
            )
        })?;

        Ok(Config {
            urls: s.urls,
            starttls: s.starttls,
            tls,
            bind,
            base_dn: s.base_dn,
            user_filter: s.user_filter,
            list_filter,
            attributes: s.attributes,
            group_search: s.group_search,
            timeout: Duration::from_secs(s.timeout),
            page_size,
        })
    }
}

/// `ldap://host[:port][/]` or `ldaps://...`: nothing else (no DN, no
/// extensions: the base comes from `base_dn`).
fn check_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("ldap://")
        .or_else(|| url.strip_prefix("ldaps://"))
        .ok_or("must start with ldap:// or ldaps://")?;
    let hostport = rest.strip_suffix('/').unwrap_or(rest);
    if hostport.is_empty() {
        return Err("has no host name");
    }
    if hostport
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#' | '@'))
    {
        return Err("must be scheme://host[:port] with nothing after it");
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("has an unclosed [")?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("has an invalid IPv6 address");
        }
        match after {
            "" => (addr, None),
            p => (addr, Some(p.strip_prefix(':').ok_or("has junk after ]")?)),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("has no host name");
    }
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n != 0 => {}
            _ => return Err("has an invalid port"),
        }
    }
    Ok(())
}

fn check_dn(key: &str, dn: &str) -> Result<(), PluginError> {
    if !dn.contains('=') || dn.chars().any(char::is_control) {
        return Err(bad(
            key,
            format!("{dn:?} is not a DN (like dc=example,dc=org)"),
        ));
    }
    Ok(())
}

/// Checks that `template` contains one of `placeholders` (when any are
/// given) and parses as a filter once they are filled in.
fn check_filter_template(
    key: &str,
    template: &str,
    placeholders: &[&str],
) -> Result<(), PluginError> {
    if !placeholders.is_empty() && !placeholders.iter().any(|p| template.contains(p)) {
        return Err(bad(
            key,
            format!("must contain {}", placeholders.join(" or ")),
        ));
    }
    let mut sample = template.to_string();
    for p in placeholders {
        sample = filter::fill(&sample, p, "sample");
    }
    if ldap3::parse_filter(&sample).is_err() {
        return Err(bad(
            key,
            format!("{template:?} is not a valid LDAP filter (RFC 4515)"),
        ));
    }
    Ok(())
}

fn check_attribute(key: &str, name: &str, may_be_empty: bool) -> Result<(), PluginError> {
    if name.is_empty() {
        if may_be_empty {
            return Ok(());
        }
        return Err(bad(key, "must not be empty"));
    }
    let valid = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ';' | '.'))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !valid {
        return Err(bad(key, format!("{name:?} is not an attribute name")));
    }
    Ok(())
}

/// Reads the service password: one trailing newline (`\n` or `\r\n`) is
/// removed. Never puts the content into an error.
fn read_password(file: &Path) -> Result<Zeroizing<String>, PluginError> {
    pinwheel_sdk::read_secret_file(file)
        .map(Zeroizing::new)
        .map_err(|e| {
            let hint = if e.ends_with("is empty") {
                " (an empty password would be an anonymous bind)"
            } else {
                ""
            };
            bad("bind_password_file", format!("{e}{hint}"))
        })
}

/// TLS settings: roots from `ca_file`, or the system's CAs; ring as the
/// crypto provider (whatever else the process has compiled in).
fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, PluginError> {
    let mut roots = RootCertStore::empty();
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad("ca_file", format!("cannot read {}: {e}", path.display())))?;
        for cert in certs {
            let cert =
                cert.map_err(|e| bad("ca_file", format!("{}: bad PEM: {e}", path.display())))?;
            roots.add(cert).map_err(|e| {
                bad(
                    "ca_file",
                    format!("{}: bad certificate: {e}", path.display()),
                )
            })?;
        }
        if roots.is_empty() {
            return Err(bad(
                "ca_file",
                format!("{} holds no PEM certificate", path.display()),
            ));
        }
    } else {
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
        if roots.is_empty() {
            return Err(bad(
                "ca_file",
                "not set and no system CA certificates were found; name the CA's PEM file",
            ));
        }
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| PluginError::internal(format!("directory-ldap: TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pinwheel_sdk::ErrorKind;
    use serde_json::json;

    fn password_file() -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(f.path(), "s3cret\n").expect("write");
        f
    }

    fn base(pw: &Path) -> serde_json::Value {
        json!({
            "urls": ["ldap://127.0.0.1:389"],
            "bind_dn": "cn=admin,dc=example,dc=org",
            "bind_password_file": pw,
            "base_dn": "dc=example,dc=org",
        })
    }

    fn err_of(v: serde_json::Value) -> PluginError {
        match Config::from_json(v) {
            Ok(_) => panic!("config accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn defaults_fill_in() {
        let pw = password_file();
        let c = Config::from_json(base(pw.path())).expect("valid");
        assert_eq!(c.list_filter, "(&(objectClass=inetOrgPerson)(uid=*))");
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.page_size, 500);
        assert_eq!(c.attributes.groups, "memberOf");
        let (dn, pw) = c.bind.expect("bind");
        assert_eq!(dn, "cn=admin,dc=example,dc=org");
        assert_eq!(pw.as_str(), "s3cret");
        assert!(c.tls.is_none());
    }

    #[test]
    fn errors_name_the_key() {
        let pw = password_file();
        let cases: Vec<(&str, serde_json::Value, &str)> = vec![
            ("urls", json!([]), "urls"),
            ("urls", json!(["http://x"]), "urls[0]"),
            ("urls", json!(["ldap://x:0"]), "urls[0]"),
            ("urls", json!(["ldap://x", "ldap://y/dc=x"]), "urls[1]"),
            ("timeout", json!(0), "timeout"),
            ("timeout", json!("5s"), "timeout"),
            ("base_dn", json!("example"), "base_dn"),
            ("user_filter", json!("(uid=alice)"), "user_filter"),
            ("user_filter", json!("(uid={username}"), "user_filter"),
            ("list_filter", json!("((("), "list_filter"),
            (
                "bind_password_file",
                json!("/nonexistent/pw"),
                "bind_password_file",
            ),
            ("ca_file", json!("/nonexistent/ca.pem"), "ca_file"),
            ("page_size", json!(-1), "page_size"),
            ("attributes", json!({"email": "ma il"}), "attributes.email"),
            ("attributes", json!({"mail": "x"}), "attributes"),
            (
                "group_search",
                json!({"base_dn": "ou=g,dc=x", "filter": "(cn=x)"}),
                "group_search.filter",
            ),
            ("unknown_key", json!(1), "unknown_key"),
        ];
        for (key, value, named) in cases {
            let mut v = base(pw.path());
            v[key] = value;
            let e = err_of(v);
            assert_eq!(e.kind, ErrorKind::Config, "{key}: {e}");
            assert!(e.message.contains(named), "{key}: {e}");
        }
        let mut v = base(pw.path());
        v.as_object_mut().expect("object").remove("base_dn");
        assert!(err_of(v).message.contains("base_dn"));
    }

    #[test]
    fn password_file_rules() {
        let f = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(f.path(), "pw with spaces \r\n").expect("write");
        assert_eq!(
            read_password(f.path()).expect("ok").as_str(),
            "pw with spaces "
        );
        std::fs::write(f.path(), "two\n\n").expect("write");
        assert_eq!(read_password(f.path()).expect("ok").as_str(), "two\n");
        std::fs::write(f.path(), "\n").expect("write");
        let e = read_password(f.path()).expect_err("refused");
        assert!(e.message.contains("bind_password_file"));
        let pw = password_file();
        let mut v = base(pw.path());
        v.as_object_mut().expect("object").remove("bind_dn");
        let e = err_of(v);
        assert!(e.message.contains("bind_dn"), "{e}");
    }

    #[test]
    fn urls_accept_the_usual_forms() {
        for ok in [
            "ldap://dc1",
            "ldaps://dc1.corp.example:636",
            "ldap://127.0.0.1:389/",
            "ldap://[::1]:389",
            "ldaps://[2001:db8::1]",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ldap://",
            "ldapi:///run/slapd.sock",
            "ldap://:389",
            "ldap://h:99999",
            "ldap://h:x",
            "ldap://[::1",
            "ldap://user@h",
            "ldap://h/dc=x",
            "ldap://h ",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
