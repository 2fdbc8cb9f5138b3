//! Transports deliver messages to users: provision codes, generated PINs,
//! security strings. Each is a plugin (see [`crate::plugin_host`]); the
//! embedded default is the built-in spool plugin writing to
//! `STATE_DIR/spool`.
//!
//! This module owns which transport a user gets ([`choose`]): the first
//! `[[transport]]` whose `groups` include one of the user's groups and whose
//! `address` the user has, else the first whose `address` the user has
//! (`email` needs an email address, `phone` a phone number, `any` either).
//! (Users have no stored transport preference yet; when the store gets one,
//! it goes first.) A message never appears in a log or an error.

use std::sync::{Arc, RwLock};

use pinwheel_sdk::protocol::Request;
use pinwheel_sdk::{Message, PluginKind};

use crate::config::{AddressKind, Config, TransportConfig, BUILTIN_SPOOL};
use crate::plugin_host::{self, PluginCallError, PluginHandle, PluginSpec};

/// Who a message is for: what transport choice looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipient {
    /// Login name.
    pub username: String,
    /// Email address, if any.
    pub email: Option<String>,
    /// Phone number, if any.
    pub phone: Option<String>,
    /// The user's groups.
    pub groups: Vec<String>,
}

impl Recipient {
    /// The recipient for a stored user.
    pub fn of(user: &crate::store::users::UserRow) -> Recipient {
        Recipient {
            username: user.name.clone(),
            email: user.email.clone(),
            phone: user.phone.clone(),
            groups: user.groups.clone(),
        }
    }

    fn email(&self) -> Option<&str> {
        self.email.as_deref().filter(|e| !e.trim().is_empty())
    }

    fn phone(&self) -> Option<&str> {
        self.phone.as_deref().filter(|p| !p.trim().is_empty())
    }

    /// Whether the user has the attribute a transport with `address` needs.
    pub fn has(&self, address: AddressKind) -> bool {
        match address {
            AddressKind::Email => self.email().is_some(),
            AddressKind::Phone => self.phone().is_some(),
            AddressKind::Any => self.email().is_some() || self.phone().is_some(),
        }
    }
}

/// What transport choice needs of a `[[transport]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Which attribute it needs.
    pub address: AddressKind,
    /// Users in these groups get it first.
    pub groups: Vec<String>,
}

impl From<&TransportConfig> for Rule {
    fn from(t: &TransportConfig) -> Rule {
        Rule {
            address: t.address,
            groups: t.groups.clone(),
        }
    }
}

/// The index of the transport `user` gets among `rules` (config order), or
/// `None` when the user has no address any of them can use.
pub fn choose(rules: &[Rule], user: &Recipient) -> Option<usize> {
    choose_among(rules.iter(), user)
}

/// [`choose`] over any sequence of rules.
fn choose_among<'a>(
    mut rules: impl Iterator<Item = &'a Rule> + Clone,
    user: &Recipient,
) -> Option<usize> {
    let by_group = rules
        .clone()
        .position(|r| user.has(r.address) && r.groups.iter().any(|g| user.groups.contains(g)));
    by_group.or_else(|| rules.position(|r| user.has(r.address)))
}

/// Why a message was not delivered. Never contains the message body.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// No configured transport can reach the user.
    #[error("user {0} has no email address or phone number that a configured transport can use")]
    NoRecipient(String),
    /// The transport's plugin failed (error, panic, time-out, too busy).
    #[error(transparent)]
    Plugin(#[from] PluginCallError),
}

/// One loaded transport.
struct Loaded {
    rule: Rule,
    plugin: PluginHandle,
}

/// One loaded set of transports, in config order: what a reload swaps whole.
pub struct TransportSet {
    loaded: Vec<Loaded>,
}

impl std::fmt::Debug for TransportSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.loaded.iter().map(|l| l.plugin.name()))
            .finish()
    }
}

/// The `config` table of a transport entry as JSON; the built-in spool gets
/// `folder = STATE_DIR/spool` when it names none.
fn plugin_config(config: &Config, t: &TransportConfig) -> serde_json::Value {
    let mut table = t.config.clone();
    if t.plugin == BUILTIN_SPOOL && !table.contains_key("folder") {
        table.insert(
            "folder".into(),
            toml::Value::String(
                config
                    .server
                    .state_dir
                    .join("spool")
                    .to_string_lossy()
                    .into_owned(),
            ),
        );
    }
    serde_json::to_value(table).unwrap_or(serde_json::Value::Null)
}

impl TransportSet {
    /// Loads every transport of `config` (the embedded spool default when
    /// there are none), logging one line per plugin.
    ///
    /// Errors: the first plugin refused, prefixed with its config entry.
    pub fn load(config: &Config) -> Result<TransportSet, String> {
        let mut loaded = Vec::new();
        for (i, t) in config.effective_transports().iter().enumerate() {
            let spec = PluginSpec {
                name: t.name.clone(),
                kind: PluginKind::Transport,
                source: config.plugin_source(&t.plugin),
                timeout: t.timeout,
                max_concurrent: t.max_concurrent,
                config: plugin_config(config, t),
            };
            let plugin = plugin_host::load(&spec)
                .map_err(|e| format!("transport[{i}] ({}): {e}", t.name))?;
            log_loaded(&plugin);
            loaded.push(Loaded {
                rule: Rule::from(t),
                plugin,
            });
        }
        Ok(TransportSet { loaded })
    }

    /// How many transports the set has.
    pub fn len(&self) -> usize {
        self.loaded.len()
    }

    /// Whether the set has no transport (never, once loaded from a config).
    pub fn is_empty(&self) -> bool {
        self.loaded.is_empty()
    }

    /// The loaded plugins, in config order.
    pub fn plugins(&self) -> impl Iterator<Item = &PluginHandle> {
        self.loaded.iter().map(|l| &l.plugin)
    }

    /// The names of the transports, in config order.
    pub fn names(&self) -> Vec<String> {
        self.plugins().map(|p| p.name().to_string()).collect()
    }

    /// The index of the transport `user` gets, if any.
    fn index_for(&self, user: &Recipient) -> Option<usize> {
        choose_among(self.loaded.iter().map(|l| &l.rule), user)
    }

    /// The transport `user` gets, if any.
    pub fn choose(&self, user: &Recipient) -> Option<&PluginHandle> {
        self.index_for(user).map(|i| &self.loaded[i].plugin)
    }

    /// Which transport `user` gets and the message for it: the user's
    /// addresses the transport uses (`email` transports get only the email
    /// address, `phone` ones only the phone number, `any` both).
    fn prepare(
        &self,
        user: &Recipient,
        mut message: Message,
    ) -> Result<(&PluginHandle, Request), SendError> {
        let index = self
            .index_for(user)
            .ok_or_else(|| SendError::NoRecipient(user.username.clone()))?;
        let loaded = &self.loaded[index];
        let address = loaded.rule.address;
        message.email = match address {
            AddressKind::Email | AddressKind::Any => user.email().map(str::to_string),
            AddressKind::Phone => None,
        };
        message.phone = match address {
            AddressKind::Phone | AddressKind::Any => user.phone().map(str::to_string),
            AddressKind::Email => None,
        };
        Ok((&loaded.plugin, Request::Send { message }))
    }

    /// Sends `message` to `user` over the user's transport, from a thread
    /// that may block. Returns the transport's name.
    ///
    /// Errors: [`SendError::NoRecipient`], or the plugin's failure (already
    /// logged by the plugin host).
    pub fn send_blocking(&self, user: &Recipient, message: Message) -> Result<String, SendError> {
        let (plugin, request) = self.prepare(user, message)?;
        plugin.call_blocking::<()>(&request)?;
        Ok(plugin.name().to_string())
    }

    /// As [`Self::send_blocking`], from an async task.
    ///
    /// Errors: as [`Self::send_blocking`].
    pub async fn send(&self, user: &Recipient, message: Message) -> Result<String, SendError> {
        let (plugin, request) = self.prepare(user, message)?;
        plugin.call::<()>(&request).await?;
        Ok(plugin.name().to_string())
    }
}

/// The transports in effect: a [`TransportSet`] behind a lock so that a
/// reload (SIGHUP) can swap it whole while sends keep the set they started
/// with. Every method takes a snapshot and releases the lock at once; none
/// holds it across a plugin call or an `.await`.
pub struct Transports {
    current: RwLock<Arc<TransportSet>>,
}

impl std::fmt::Debug for Transports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl Transports {
    /// Loads every transport of `config` (see [`TransportSet::load`]).
    ///
    /// Errors: the first plugin refused, prefixed with its config entry.
    pub fn load(config: &Config) -> Result<Transports, String> {
        TransportSet::load(config).map(Transports::new)
    }

    /// Transports serving `set`.
    pub fn new(set: TransportSet) -> Transports {
        Transports {
            current: RwLock::new(Arc::new(set)),
        }
    }

    /// The current set. Sends already running keep the set they took.
    pub fn snapshot(&self) -> Arc<TransportSet> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the whole set (on reload). The old plugins are shut down
    /// once their last running call ends.
    pub fn replace(&self, set: TransportSet) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
    }

    /// The names of the current transports, in config order.
    pub fn names(&self) -> Vec<String> {
        self.snapshot().names()
    }

    /// The transport `user` gets now, if any.
    pub fn choose(&self, user: &Recipient) -> Option<PluginHandle> {
        self.snapshot().choose(user).cloned()
    }

    /// Sends `message` to `user` over the user's transport in the current
    /// set (see [`TransportSet::send_blocking`]).
    ///
    /// Errors: as [`TransportSet::send_blocking`].
    pub fn send_blocking(&self, user: &Recipient, message: Message) -> Result<String, SendError> {
        self.snapshot().send_blocking(user, message)
    }

    /// As [`Self::send_blocking`], from an async task (the lock is released
    /// before the call).
    ///
    /// Errors: as [`TransportSet::send_blocking`].
    pub async fn send(&self, user: &Recipient, message: Message) -> Result<String, SendError> {
        let set = self.snapshot();
        set.send(user, message).await
    }
}

/// The start-up log line of a plugin.
pub fn log_loaded(plugin: &PluginHandle) {
    let info = plugin.info();
    tracing::info!(
        "plugin {} loaded: {} {} version {}",
        info.name,
        info.kind,
        info.file,
        info.version
    );
}

/// Loads every `[[directory]]` plugin of `config`, logging one line each.
///
/// Errors: the first plugin refused, prefixed with its config entry.
pub fn load_directories(config: &Config) -> Result<Vec<PluginHandle>, String> {
    let mut out = Vec::new();
    for (i, d) in config.directories.iter().enumerate() {
        let spec = PluginSpec {
            name: d.name.clone(),
            kind: PluginKind::Directory,
            source: config.plugin_source(&d.plugin),
            timeout: d.timeout,
            max_concurrent: d.max_concurrent,
            config: serde_json::to_value(&d.config).unwrap_or(serde_json::Value::Null),
        };
        let plugin =
            plugin_host::load(&spec).map_err(|e| format!("directory[{i}] ({}): {e}", d.name))?;
        log_loaded(&plugin);
        out.push(plugin);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(email: bool, phone: bool, groups: &[&str]) -> Recipient {
        Recipient {
            username: "alice".into(),
            email: email.then(|| "alice@example.org".to_string()),
            phone: phone.then(|| "+15551234".to_string()),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn rule(address: AddressKind, groups: &[&str]) -> Rule {
        Rule {
            address,
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn first_transport_with_the_users_address_wins() {
        let rules = [rule(AddressKind::Email, &[]), rule(AddressKind::Phone, &[])];
        assert_eq!(choose(&rules, &user(true, true, &[])), Some(0));
        assert_eq!(choose(&rules, &user(false, true, &[])), Some(1));
        assert_eq!(choose(&rules, &user(true, false, &[])), Some(0));
        assert_eq!(choose(&rules, &user(false, false, &[])), None);
        let any = [rule(AddressKind::Any, &[])];
        assert_eq!(choose(&any, &user(false, true, &[])), Some(0));
        assert_eq!(choose(&any, &user(true, false, &[])), Some(0));
        assert_eq!(choose(&any, &user(false, false, &[])), None);
        assert_eq!(choose(&[], &user(true, true, &[])), None);
    }

    #[test]
    fn group_mappings_come_first_but_need_the_address() {
        let rules = [
            rule(AddressKind::Email, &[]),
            rule(AddressKind::Phone, &["field", "night"]),
            rule(AddressKind::Any, &["staff"]),
        ];
        assert_eq!(choose(&rules, &user(true, true, &["night"])), Some(1));
        assert_eq!(choose(&rules, &user(true, true, &["staff"])), Some(2));
        assert_eq!(choose(&rules, &user(true, true, &["other"])), Some(0));
        // In a mapped group but without a phone: the group's SMS transport
        // cannot reach the user, so the first usable one is taken.
        assert_eq!(choose(&rules, &user(true, false, &["field"])), Some(0));
        assert_eq!(choose(&rules, &user(false, true, &["field"])), Some(1));
        assert_eq!(choose(&rules, &user(false, true, &[])), Some(1));
    }

    #[test]
    fn a_replaced_set_serves_new_sends_and_old_snapshots_stay_usable() {
        let dir = tempfile::tempdir().unwrap();
        let config = |names: &[&str]| {
            let mut text = format!("[server]\nstate_dir = {:?}\n", dir.path());
            for name in names {
                // Each in its own group, so none hides the next.
                text.push_str(&format!(
                    "[[transport]]\nname = \"{name}\"\nplugin = \"spool\"\ngroups = [\"{name}\"]\n"
                ));
            }
            Config::parse(&text, std::path::Path::new("t.toml")).unwrap()
        };
        let transports = Transports::load(&config(&["a"])).unwrap();
        let old = transports.snapshot();
        transports.replace(TransportSet::load(&config(&["b", "c"])).unwrap());
        assert_eq!(transports.names(), vec!["b", "c"]);
        let now: Vec<String> = transports
            .snapshot()
            .plugins()
            .map(|p| p.name().to_string())
            .collect();
        assert_eq!(now, vec!["b", "c"]);
        // A snapshot taken before keeps its own set.
        assert_eq!(old.names(), vec!["a"]);
        let user = user(true, false, &[]);
        assert_eq!(transports.choose(&user).unwrap().name(), "b");
    }

    #[test]
    fn blank_addresses_do_not_count() {
        let mut u = user(false, false, &[]);
        u.email = Some("  ".into());
        u.phone = Some(String::new());
        assert!(!u.has(AddressKind::Any));
    }

    #[test]
    fn messages_carry_only_the_address_the_transport_uses() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[server]\nstate_dir = {:?}\n[[transport]]\nname = \"mail\"\nplugin = \"spool\"\naddress = \"email\"\n\
             [[transport]]\nname = \"sms\"\nplugin = \"spool\"\naddress = \"phone\"\ngroups = [\"field\"]\n\
             config = {{ folder = {:?} }}\n",
            dir.path(),
            dir.path().join("sms")
        );
        let config = Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
        let transports = Transports::load(&config).unwrap();
        assert_eq!(transports.names(), vec!["mail", "sms"]);
        let message = || {
            let mut m = Message::new(pinwheel_sdk::MessageKind::Pin, "alice");
            m.body = "Your PIN is 4711".into();
            m
        };
        let name = transports
            .send_blocking(&user(true, true, &["field"]), message())
            .unwrap();
        assert_eq!(name, "sms");
        let sms: Vec<_> = std::fs::read_dir(dir.path().join("sms")).unwrap().collect();
        let text = std::fs::read_to_string(sms[0].as_ref().unwrap().path()).unwrap();
        assert!(text.starts_with("To: +15551234\n"), "{text}");
        let name = transports
            .send_blocking(&user(true, true, &[]), message())
            .unwrap();
        assert_eq!(name, "mail");
        let mail: Vec<_> = std::fs::read_dir(dir.path().join("spool"))
            .unwrap()
            .collect();
        let text = std::fs::read_to_string(mail[0].as_ref().unwrap().path()).unwrap();
        assert!(text.starts_with("To: alice@example.org\n"), "{text}");
        let e = transports
            .send_blocking(&user(false, false, &[]), message())
            .unwrap_err();
        assert!(matches!(e, SendError::NoRecipient(_)), "{e}");
    }
}
