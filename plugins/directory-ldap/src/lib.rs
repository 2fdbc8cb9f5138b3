//! Pinwheel plugin `directory-ldap`: users from OpenLDAP or Active Directory.
//!
//! The plugin searches users with a service account, maps their attributes
//! to a [`DirectoryUser`] (name, email, phone, groups, enabled), lists them
//! for the sync, and checks a directory password (two-stage RADIUS) by
//! binding **as the user** on a separate, fresh connection. It speaks LDAP
//! through `ldap3`'s synchronous API with rustls for `ldaps://` and StartTLS.
//!
//! # Behaviour
//!
//! - **Failover**: `urls` are tried in order; a server that cannot be
//!   reached, times out or answers busy/unavailable is skipped for the next.
//!   A server that could not be reached is tried after the others for the
//!   next 30 s, so a dead first server does not cost every call a timeout.
//!   When none answers, the call fails with an `unavailable` error naming
//!   every URL tried and why.
//! - **Connection reuse**: up to 4 service-account connections are kept
//!   idle (at most 60 s each) and reused; a reused connection that fails is
//!   dropped and the call repeated on a fresh one.
//! - **Timeouts**: connecting (with TLS) to one server, and each operation
//!   (bind, search, each page or entry of a listing), gets `timeout` seconds.
//! - **Escaping**: the user name goes into `user_filter` escaped as RFC 4515
//!   requires (`*` `(` `)` `\` NUL become `\2a` `\28` `\29` `\5c` `\00`), so
//!   `eve*)(uid=*` only ever matches a user called exactly that. The user's
//!   DN is escaped the same way in `group_search.filter`.
//! - **Refused before any query**: user names that are empty, longer than
//!   256 bytes or hold control characters (no such user / wrong password),
//!   and empty passwords (an LDAP bind with an empty password is an
//!   anonymous bind, which succeeds).
//! - **Ambiguity**: a user filter matching more than one entry is an error,
//!   never a guess.
//! - **Groups**: values of `attributes.groups` (`memberOf`) and, with
//!   `group_search`, the `name_attribute` of every group found; DNs are
//!   reduced to the value of their first RDN (`cn=vpn,ou=groups,...` gives
//!   `vpn`). Active Directory's `memberOf` leaves out the primary group
//!   (Domain Users) and nested groups; for nested groups use `group_search`
//!   with the matching-rule-in-chain filter shown below.
//! - **Disabled accounts**: when an entry has `userAccountControl` (Active
//!   Directory), bit 0x2 (ACCOUNTDISABLE) makes the user disabled.
//! - **User names** returned are the directory's spelling (the value of
//!   `attributes.username`; for a lookup, the value equal to the typed name
//!   ignoring ASCII case, if any).
//! - Passwords never appear in errors or logs.
//!
//! # Config keys
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `urls` | required | `ldap://host[:port]` / `ldaps://host[:port]`, failover in order |
//! | `starttls` | `false` | upgrade `ldap://` connections with StartTLS |
//! | `ca_file` | system CAs | PEM file of the CA(s) for `ldaps://` / StartTLS |
//! | `bind_dn` | anonymous | service account DN (AD also takes `svc@corp.example`) |
//! | `bind_password_file` | anonymous | file holding its password; one trailing newline removed |
//! | `base_dn` | required | subtree searched for users |
//! | `user_filter` | `(&(objectClass=inetOrgPerson)(uid={username}))` | finds one user |
//! | `list_filter` | `user_filter` with `{username}` → `*` | finds every user, for `list_users` |
//! | `attributes.username` | `uid` | login name (AD: `sAMAccountName`) |
//! | `attributes.email` | `mail` | email address |
//! | `attributes.phone` | `mobile` | phone number for SMS |
//! | `attributes.groups` | `memberOf` | group DNs on the user; `""` for none |
//! | `group_search.base_dn` | — | subtree searched for groups |
//! | `group_search.filter` | `(&(objectClass=groupOfNames)(member={dn}))` | `{dn}`, `{username}` substituted, escaped |
//! | `group_search.name_attribute` | `cn` | the group's short name |
//! | `timeout` | `5` | seconds, 1 to 300: connect per server, and per operation |
//! | `page_size` | `500` | paged-results page size for `list_users`; `0` = no paging |
//!
//! # Example: OpenLDAP
//!
//! ```toml
//! [[directory]]
//! name = "ldap"
//! plugin = "libpinwheel_directory_ldap.so"
//!
//! [directory.config]
//! urls = ["ldaps://ldap1.example.org", "ldaps://ldap2.example.org"]
//! ca_file = "/etc/pinwheel/ldap-ca.pem"
//! bind_dn = "cn=pinwheel,ou=services,dc=example,dc=org"
//! bind_password_file = "/etc/pinwheel/ldap-password"
//! base_dn = "ou=people,dc=example,dc=org"
//! user_filter = "(&(objectClass=inetOrgPerson)(uid={username}))"
//! attributes = { username = "uid", email = "mail", phone = "mobile", groups = "" }
//!
//! [directory.config.group_search]
//! base_dn = "ou=groups,dc=example,dc=org"
//! filter = "(&(objectClass=groupOfNames)(member={dn}))"
//! name_attribute = "cn"
//! ```
//!
//! # Example: Active Directory
//!
//! ```toml
//! [[directory]]
//! name = "ad"
//! plugin = "libpinwheel_directory_ldap.so"
//!
//! [directory.config]
//! urls = ["ldaps://dc1.corp.example:636", "ldaps://dc2.corp.example:636"]
//! ca_file = "/etc/pinwheel/corp-root-ca.pem"
//! bind_dn = "CN=svc-pinwheel,OU=Service Accounts,DC=corp,DC=example"
//! bind_password_file = "/etc/pinwheel/ad-password"
//! base_dn = "DC=corp,DC=example"
//! user_filter = "(&(objectClass=user)(objectCategory=person)(sAMAccountName={username}))"
//! attributes = { username = "sAMAccountName", email = "mail", phone = "mobile", groups = "memberOf" }
//! # For nested groups, set groups = "" above and add:
//! # [directory.config.group_search]
//! # base_dn = "OU=Groups,DC=corp,DC=example"
//! # filter = "(member:1.2.840.113556.1.4.1941:={dn})"
//! ```
//!
//! `etc/directory-ldap.example.toml` has both, commented.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod conn;
pub mod filter;

use std::collections::HashMap;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{LdapConn, LdapError, ResultEntry, Scope, SearchEntry, SearchOptions, SearchResult};
use pinwheel_sdk::{Directory, DirectoryUser, Plugin, PluginError};

use crate::config::Config;
use crate::conn::{rc, Connections};

/// Active Directory's `userAccountControl` ACCOUNTDISABLE bit.
const ACCOUNTDISABLE: u64 = 0x2;
/// Attribute read for disabled detection (Active Directory).
const USER_ACCOUNT_CONTROL: &str = "userAccountControl";

/// The LDAP / Active Directory directory plugin.
pub struct LdapDirectory {
    conns: Connections,
}

/// A user entry as found, before groups are added.
struct Found {
    dn: String,
    user: DirectoryUser,
}

impl Plugin for LdapDirectory {
    const NAME: &'static str = "ldap";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(config: serde_json::Value) -> Result<Self, PluginError> {
        let config = Config::from_json(config)?;
        Ok(LdapDirectory {
            conns: Connections::new(config),
        })
    }

    /// Binds (if configured) and reads `base_dn` itself.
    fn health(&self) -> Result<(), PluginError> {
        let cfg = self.cfg();
        let base = cfg.base_dn.clone();
        let timeout = cfg.timeout;
        self.conns.with_service("read base_dn", |c| {
            c.with_timeout(timeout)
                .search(&base, Scope::Base, "(objectClass=*)", vec!["1.1"])
                .and_then(SearchResult::success)
                .map(|_| ())
        })
    }
}

impl Directory for LdapDirectory {
    fn lookup(&self, username: &str) -> Result<Option<DirectoryUser>, PluginError> {
        if !filter::acceptable_username(username) {
            return Ok(None);
        }
        let Some(found) = self.find(username)? else {
            return Ok(None);
        };
        let mut with_groups = self.add_group_search(vec![found])?;
        Ok(with_groups.pop())
    }

    fn check_password(&self, username: &str, password: &str) -> Result<bool, PluginError> {
        // The SDK refuses an empty password too; refuse it here anyway.
        if password.is_empty() || !filter::acceptable_username(username) {
            return Ok(false);
        }
        match self.find(username)? {
            None => Ok(false),
            Some(found) => self.conns.bind_as(&found.dn, password),
        }
    }

    fn list_users(&self) -> Result<Vec<DirectoryUser>, PluginError> {
        let cfg = self.cfg();
        let attrs = self.user_attributes();
        let page_size = cfg.page_size;
        let timeout = cfg.timeout;
        let base = cfg.base_dn.clone();
        let list_filter = cfg.list_filter.clone();
        let entries = self.conns.with_service("list users", |c| {
            c.with_timeout(timeout);
            if page_size > 0 {
                let adapters: Vec<Box<dyn Adapter<String, Vec<String>>>> = vec![
                    Box::new(EntriesOnly::new()),
                    Box::new(PagedResults::new(page_size)),
                ];
                let mut stream = c.streaming_search_with(
                    adapters,
                    &base,
                    Scope::Subtree,
                    &list_filter,
                    attrs.clone(),
                )?;
                let mut out = Vec::new();
                while let Some(entry) = stream.next()? {
                    out.push(entry);
                }
                stream.result().success()?;
                Ok(out)
            } else {
                let SearchResult(entries, result) = c
                    .with_search_options(SearchOptions::new())
                    .search(&base, Scope::Subtree, &list_filter, attrs.clone())?;
                result.success()?;
                Ok(entries)
            }
        })?;
        let found: Vec<Found> = entries
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .filter_map(|e| self.to_found(SearchEntry::construct(e), None))
            .collect();
        self.add_group_search(found)
    }
}

impl LdapDirectory {
    fn cfg(&self) -> &Config {
        self.conns.config()
    }

    /// Attributes read from user entries.
    fn user_attributes(&self) -> Vec<String> {
        let a = &self.cfg().attributes;
        let mut attrs = vec![a.username.clone(), a.email.clone(), a.phone.clone()];
        if !a.groups.is_empty() {
            attrs.push(a.groups.clone());
        }
        attrs.push(USER_ACCOUNT_CONTROL.to_string());
        attrs
    }

    /// The single entry `user_filter` finds for `username` (already checked
    /// acceptable).
    ///
    /// Errors: unavailable / rejected from the search; internal when more
    /// than one entry matches.
    fn find(&self, username: &str) -> Result<Option<Found>, PluginError> {
        let cfg = self.cfg();
        let user_filter = filter::fill(&cfg.user_filter, "{username}", username);
        let attrs = self.user_attributes();
        let timeout = cfg.timeout;
        let base = cfg.base_dn.clone();
        let entries = self.conns.with_service("search for a user", |c| {
            let options = SearchOptions::new()
                .sizelimit(2)
                .timelimit(i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX));
            let SearchResult(entries, result) = c
                .with_timeout(timeout)
                .with_search_options(options)
                .search(&base, Scope::Subtree, &user_filter, attrs.clone())?;
            if result.rc == rc::SUCCESS || result.rc == rc::SIZE_LIMIT_EXCEEDED {
                Ok(entries)
            } else {
                Err(LdapError::from(result))
            }
        })?;
        let mut entries: Vec<ResultEntry> = entries
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .collect();
        match entries.len() {
            0 => Ok(None),
            1 => {
                let Some(entry) = entries.pop() else {
                    return Ok(None);
                };
                let entry = SearchEntry::construct(entry);
                if entry.dn.is_empty() {
                    return Err(PluginError::internal(
                        "directory-ldap: the user filter matched an entry with an empty DN",
                    ));
                }
                Ok(self.to_found(entry, Some(username)))
            }
            n => {
                Err(PluginError::internal(format!(
                "directory-ldap: user {username:?} is ambiguous: {} entries under base_dn match \
                 user_filter; make the filter match one entry per user",
                if n > 2 { "several".to_string() } else { n.to_string() }
            )))
            }
        }
    }

    /// Maps an entry to a user. `typed` is the name a lookup was made with;
    /// without it (listing), an entry lacking the username attribute is
    /// skipped.
    fn to_found(&self, entry: SearchEntry, typed: Option<&str>) -> Option<Found> {
        let a = &self.cfg().attributes;
        let values = |name: &str| -> Vec<String> { values_of(&entry.attrs, name) };
        let names = values(&a.username);
        let username = match typed {
            Some(t) => names
                .iter()
                .find(|n| n.eq_ignore_ascii_case(t))
                .or(names.first())
                .cloned()
                .unwrap_or_else(|| t.to_string()),
            None => names.into_iter().find(|n| !n.is_empty())?,
        };
        let mut user = DirectoryUser::new(username);
        user.email = values(&a.email).into_iter().find(|v| !v.is_empty());
        user.phone = values(&a.phone).into_iter().find(|v| !v.is_empty());
        if !a.groups.is_empty() {
            for dn in values(&a.groups) {
                push_group(&mut user.groups, filter::group_name_from_dn(&dn));
            }
        }
        if let Some(uac) = values(USER_ACCOUNT_CONTROL).first() {
            // AD stores it as a signed 32-bit decimal.
            let bits = uac.trim().parse::<i64>().map(|v| v as u64).unwrap_or(0);
            user.enabled = bits & ACCOUNTDISABLE == 0;
        }
        Some(Found { dn: entry.dn, user })
    }

    /// Adds the groups `group_search` finds to each user (one search per
    /// user, on one service connection), then returns the users.
    fn add_group_search(&self, mut found: Vec<Found>) -> Result<Vec<DirectoryUser>, PluginError> {
        let cfg = self.cfg();
        if let Some(gs) = &cfg.group_search {
            let timeout = cfg.timeout;
            let name_attr = vec![gs.name_attribute.clone()];
            let queries: Vec<String> = found
                .iter()
                .map(|f| {
                    let q = filter::fill(&gs.filter, "{dn}", &f.dn);
                    filter::fill(&q, "{username}", &f.user.username)
                })
                .collect();
            let groups = self.conns.with_service("search for groups", |c| {
                group_search_all(c, &gs.base_dn, &queries, &name_attr, timeout)
            })?;
            for (f, names) in found.iter_mut().zip(groups) {
                for name in names {
                    push_group(&mut f.user.groups, name);
                }
            }
        }
        Ok(found.into_iter().map(|f| f.user).collect())
    }
}

/// Runs every group query on `c`; for each, the groups' names (the name
/// attribute, else the first RDN value of the group's DN).
fn group_search_all(
    c: &mut LdapConn,
    base: &str,
    queries: &[String],
    name_attr: &[String],
    timeout: std::time::Duration,
) -> ldap3::result::Result<Vec<Vec<String>>> {
    let mut all = Vec::with_capacity(queries.len());
    for query in queries {
        let SearchResult(entries, result) = c
            .with_timeout(timeout)
            .with_search_options(SearchOptions::new())
            .search(base, Scope::Subtree, query, name_attr.to_vec())?;
        result.success()?;
        let names = entries
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .map(SearchEntry::construct)
            .map(|g| {
                name_attr
                    .first()
                    .and_then(|a| values_of(&g.attrs, a).into_iter().next())
                    .unwrap_or_else(|| filter::group_name_from_dn(&g.dn))
            })
            .collect();
        all.push(names);
    }
    Ok(all)
}

/// Values of attribute `name` (matched ignoring ASCII case: servers answer
/// in their own spelling).
fn values_of(attrs: &HashMap<String, Vec<String>>, name: &str) -> Vec<String> {
    attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn push_group(groups: &mut Vec<String>, name: String) {
    if !name.is_empty() && !groups.iter().any(|g| g.eq_ignore_ascii_case(&name)) {
        groups.push(name);
    }
}

pinwheel_sdk::export_plugin!(Directory, LdapDirectory);

#[cfg(test)]
mod tests {
    use super::*;
    use pinwheel_sdk::ErrorKind;
    use serde_json::json;
    use std::time::Instant;

    fn plugin(urls: &[&str]) -> (LdapDirectory, tempfile::NamedTempFile) {
        let pw = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(pw.path(), "x\n").expect("write");
        let p = LdapDirectory::new(json!({
            "urls": urls,
            "bind_dn": "cn=admin,dc=example,dc=org",
            "bind_password_file": pw.path(),
            "base_dn": "dc=example,dc=org",
            "timeout": 2,
        }))
        .expect("valid config");
        (p, pw)
    }

    #[test]
    fn bad_input_is_refused_without_a_query() {
        // Port 9 on 127.0.0.1 is closed: any query would fail as unavailable.
        let (p, _pw) = plugin(&["ldap://127.0.0.1:9"]);
        assert_eq!(p.lookup(""), Ok(None));
        assert_eq!(p.lookup(&"a".repeat(257)), Ok(None));
        assert_eq!(p.lookup("ali\nce"), Ok(None));
        assert_eq!(p.check_password("alice", ""), Ok(false));
        assert_eq!(p.check_password("al\u{0}ice", "pw"), Ok(false));
        let e = p.lookup("alice").expect_err("unavailable");
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.message.contains("ldap://127.0.0.1:9"), "{e}");
    }

    #[test]
    fn a_silent_server_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("ldap://{}", listener.local_addr().expect("addr"));
        let (p, _pw) = plugin(&[&url]);
        let start = Instant::now();
        let e = p.health().expect_err("times out");
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(
            e.message.contains(&url) && e.message.contains("timed out"),
            "{e}"
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(4));
        drop(listener);
    }
}
