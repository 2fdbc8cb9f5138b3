//! The state file of `pinwheel-mobile`: where it lives, what it holds and how it is
//! read and written. It keeps the user's options (server address and user name), the
//! device credential from the last successful provision (device id and device token)
//! and either, in strings mode, the current batch of 99 security strings and the
//! indexes already spent on this device, or, in OATH mode, the `otpauth://` key URI
//! (whose `counter` is the next HOTP counter). The file is JSON with a `version` field
//! (2 now; version-1 files, which predate OATH mode, are still read and are written
//! back as version 2), is written atomically (temporary file in the same folder,
//! fsync, rename) with mode 0600, and a file that is not valid is refused with a
//! clear error rather than silently replaced.

use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use pinwheel::otc::oath::{KeyUri, OathKind};
use pinwheel::otc::{SecurityString, UsedSet, BATCH_SIZE};
use serde::{Deserialize, Serialize};

use crate::client;

/// The version of the state file format this program writes (2: OATH mode).
pub const STATE_VERSION: u32 = 2;

/// The oldest version this program still reads (1: security strings only). Such a
/// file is read as is and saved as [`STATE_VERSION`].
pub const OLDEST_STATE_VERSION: u32 = 1;

/// Longest key URI kept (a SHA-512 key with a long issuer and account fits easily).
pub const MAX_KEY_URI_LEN: usize = 2048;

/// Environment variable naming the state file.
pub const STATE_ENV: &str = "PINWHEEL_MOBILE_STATE";

/// Everything `pinwheel-mobile` remembers between runs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Format version, always [`STATE_VERSION`] when written by this program.
    pub version: u32,
    /// Base URL of the Pinwheel server (option), e.g. `https://2fa.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The user name (option).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The device credential and strings from the last successful provision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
}

/// A provisioned device: its credential and, in strings mode, its batch of security
/// strings and the indexes of that batch already used here, or, in OATH mode (when
/// `otpauth_uri` is set), its key URI and nothing else.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Identifier the server gave this device.
    pub device_id: String,
    /// Secret credential for later calls (`Authorization: Bearer`). Never printed.
    pub device_token: String,
    /// Batch number of `strings` (strings mode; 0 and left out in OATH mode).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub batch: u64,
    /// The 99 security strings; `strings[i]` has index `i + 1` (strings mode; empty
    /// and left out in OATH mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strings: Vec<String>,
    /// Indexes (1..=99) already used on this device, ascending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used: Vec<u8>,
    /// OATH mode: the `otpauth://` key URI from the server (a secret: printed only by
    /// `provision` and `status --show-key`). For HOTP its `counter` is the next
    /// counter to use; `otc` rewrites it after each code. Absent in strings mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otpauth_uri: Option<String>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// How a device makes its codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Security strings and a PIN.
    Strings,
    /// An OATH key (TOTP or HOTP), parsed from the saved URI.
    Oath(KeyUri),
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("version", &self.version)
            .field("server", &self.server)
            .field("user", &self.user)
            .field("device", &self.device)
            .finish()
    }
}

impl std::fmt::Debug for Device {
    // Hand-written so that the device token and the strings never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("device_id", &self.device_id)
            .field("device_token", &"<redacted>")
            .field("batch", &self.batch)
            .field("strings", &format_args!("<{} strings>", self.strings.len()))
            .field("used", &self.used)
            .field(
                "otpauth_uri",
                &self.otpauth_uri.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Default for State {
    fn default() -> Self {
        State {
            version: STATE_VERSION,
            server: None,
            user: None,
            device: None,
        }
    }
}

impl Device {
    /// The set of used indexes.
    pub fn used_set(&self) -> UsedSet {
        let mut set = UsedSet::default();
        for &index in &self.used {
            set.mark(index);
        }
        set
    }

    /// Marks `index` used (keeps `used` sorted and free of duplicates).
    pub fn mark_used(&mut self, index: u8) {
        if let Err(at) = self.used.binary_search(&index) {
            self.used.insert(at, index);
        }
    }

    /// How many strings of the batch are still unused.
    pub fn strings_left(&self) -> usize {
        self.strings.len().saturating_sub(self.used.len())
    }

    /// The security string of `index` (1..=99), parsed.
    pub fn string(&self, index: u8) -> Result<SecurityString> {
        let text = index
            .checked_sub(1)
            .and_then(|i| self.strings.get(usize::from(i)))
            .with_context(|| format!("no security string with index {index:02}"))?;
        SecurityString::parse(text).map_err(|_| {
            anyhow::anyhow!("security string {index:02} in the state file is not valid")
        })
    }

    /// The device's mode; OATH mode parses the saved key URI.
    pub fn mode(&self) -> Result<Mode> {
        match &self.otpauth_uri {
            None => Ok(Mode::Strings),
            Some(uri) => Ok(Mode::Oath(parse_key_uri(uri)?)),
        }
    }

    /// An OATH device with the key URI `uri` (already checked by [`parse_key_uri`]).
    pub fn oath(device_id: String, device_token: String, uri: String) -> Device {
        Device {
            device_id,
            device_token,
            batch: 0,
            strings: Vec::new(),
            used: Vec::new(),
            otpauth_uri: Some(uri),
        }
    }

    /// OATH HOTP: saves `next` as the next counter by rewriting the key URI (in
    /// memory; the caller saves the state). An error in strings mode or for TOTP.
    pub fn set_hotp_counter(&mut self, next: u64) -> Result<()> {
        let Mode::Oath(mut key) = self.mode()? else {
            bail!("this device is not in OATH mode");
        };
        ensure!(key.params.kind == OathKind::Hotp, "this key is not HOTP");
        key.counter = next;
        self.otpauth_uri = Some(key.to_uri());
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        client::check_device_id(&self.device_id)?;
        client::check_device_token(&self.device_token)?;
        if let Some(uri) = &self.otpauth_uri {
            parse_key_uri(uri).context("otpauth_uri")?;
            ensure!(
                self.batch == 0 && self.strings.is_empty() && self.used.is_empty(),
                "a device in OATH mode has no batch, strings or used indexes"
            );
            return Ok(());
        }
        ensure!(self.batch >= 1, "batch number must be at least 1");
        client::check_strings(&self.strings)?;
        for &index in &self.used {
            ensure!(
                (1..=BATCH_SIZE).contains(&index),
                "used index {index} is outside 1..={BATCH_SIZE}"
            );
        }
        ensure!(
            self.used.windows(2).all(|w| w[0] < w[1]),
            "used indexes must be ascending and unique"
        );
        Ok(())
    }
}

impl State {
    /// Checks every field, as after reading the file.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.version == STATE_VERSION,
            "version {} is not supported (this program reads version {STATE_VERSION})",
            self.version
        );
        if let Some(server) = &self.server {
            client::parse_server(server).map_err(anyhow::Error::msg)?;
        }
        if let Some(user) = &self.user {
            check_user(user)?;
        }
        if let Some(device) = &self.device {
            device.validate().context("device")?;
        }
        Ok(())
    }

    /// Reads the state file at `path`; a missing file gives the empty state.
    pub fn load(path: &Path) -> Result<State> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(State::default()),
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("cannot read state file {}", path.display()))
            }
        };
        State::from_json(&bytes)
            .with_context(|| format!("state file {} is not valid", path.display()))
    }

    /// Parses and checks the JSON text of a state file. A version-1 file (strings
    /// mode only, no `otpauth_uri`) comes back as version [`STATE_VERSION`], so the
    /// next save upgrades it.
    pub fn from_json(bytes: &[u8]) -> Result<State> {
        let value: serde_json::Value = serde_json::from_slice(bytes).context("it is not JSON")?;
        let Some(version) = value.get("version") else {
            bail!("it has no \"version\" field");
        };
        let version = match version.as_u64() {
            Some(v)
                if (u64::from(OLDEST_STATE_VERSION)..=u64::from(STATE_VERSION)).contains(&v) =>
            {
                v
            }
            _ => bail!(
                "version {version} is not supported (this program reads versions \
                 {OLDEST_STATE_VERSION} to {STATE_VERSION})"
            ),
        };
        let mut state: State = serde_json::from_value(value)?;
        if version == 1 {
            ensure!(
                state
                    .device
                    .as_ref()
                    .is_none_or(|device| device.otpauth_uri.is_none()),
                "a version-1 state file cannot hold an OATH key"
            );
            state.version = STATE_VERSION;
        }
        state.validate()?;
        Ok(state)
    }

    /// Writes the state to `path` atomically with mode 0600, creating its folder
    /// (mode 0700) if needed.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.validate()
            .context("refusing to save an invalid state")?;
        let mut json = serde_json::to_vec_pretty(self).context("cannot encode the state")?;
        json.push(b'\n');
        write_atomically(path, &json)
            .with_context(|| format!("cannot save state file {}", path.display()))
    }
}

/// Checks and parses a key URI: at most [`MAX_KEY_URI_LEN`] visible ASCII characters
/// (it is printed, so no control or other characters that a terminal could act on)
/// that [`KeyUri::parse`] accepts. The error never repeats the URI (it holds the key).
pub fn parse_key_uri(uri: &str) -> Result<KeyUri> {
    ensure!(
        !uri.is_empty() && uri.len() <= MAX_KEY_URI_LEN,
        "the key URI must have 1 to {MAX_KEY_URI_LEN} characters"
    );
    ensure!(
        uri.bytes().all(|b| b.is_ascii_graphic()),
        "the key URI must be visible ASCII characters"
    );
    KeyUri::parse(uri).map_err(|err| anyhow::anyhow!("the key URI is not valid: {err}"))
}

/// Checks a user name: not empty, no control characters, at most 256 characters.
pub fn check_user(user: &str) -> Result<()> {
    ensure!(!user.trim().is_empty(), "user name is empty");
    ensure!(user.chars().count() <= 256, "user name is too long");
    ensure!(
        !user.chars().any(char::is_control),
        "user name contains control characters"
    );
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let file_name = path
        .file_name()
        .context("the path does not name a file")?
        .to_string_lossy()
        .into_owned();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create folder {}", dir.display()))?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(".{file_name}.tmp-{}-{nanos}", std::process::id()));
    let result = (|| -> Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        file.write_all(bytes).context("cannot write")?;
        file.sync_all().context("cannot fsync")?;
        drop(file);
        fs::rename(&tmp, path).context("cannot rename into place")?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // Make the rename itself durable. Some file systems refuse fsync on a folder;
    // the file is in place either way, so that is not an error.
    if let Ok(dir) = File::open(&dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Where the state file is when `--state` is not given: `$PINWHEEL_MOBILE_STATE`,
/// else `$XDG_STATE_HOME/pinwheel-mobile/state.json` (when absolute), else
/// `$HOME/.local/state/pinwheel-mobile/state.json`. `env` reads a variable.
pub fn default_path(env: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf> {
    let non_empty = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(path) = non_empty(STATE_ENV) {
        return Ok(PathBuf::from(path));
    }
    if let Some(xdg) = non_empty("XDG_STATE_HOME").map(PathBuf::from) {
        if xdg.is_absolute() {
            return Ok(xdg.join("pinwheel-mobile").join("state.json"));
        }
    }
    if let Some(home) = non_empty("HOME") {
        return Ok(PathBuf::from(home)
            .join(".local/state/pinwheel-mobile")
            .join("state.json"));
    }
    bail!("cannot tell where the state file is: give --state FILE or set {STATE_ENV}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn strings() -> Vec<String> {
        (1..=99u32)
            .map(|i| format!("{:010}", u64::from(i) * 1_234_567))
            .collect()
    }

    fn provisioned() -> State {
        State {
            version: STATE_VERSION,
            server: Some("http://127.0.0.1:8080".into()),
            user: Some("alice".into()),
            device: Some(Device {
                device_id: "dev-1".into(),
                device_token: "tok-secret".into(),
                batch: 3,
                strings: strings(),
                used: vec![1, 2, 7],
                otpauth_uri: None,
            }),
        }
    }

    const TOTP_URI: &str = "otpauth://totp/Pinwheel:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Pinwheel&algorithm=SHA1&digits=6&period=30";
    const HOTP_URI: &str = "otpauth://hotp/Pinwheel:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Pinwheel&algorithm=SHA256&digits=8&counter=0";

    fn oath(uri: &str) -> State {
        State {
            device: Some(Device::oath(
                "dev-9".into(),
                "tok-secret".into(),
                uri.into(),
            )),
            ..provisioned()
        }
    }

    #[test]
    fn missing_file_is_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::load(&dir.path().join("nope.json")).unwrap();
        assert_eq!(state, State::default());
    }

    #[test]
    fn round_trip_in_tempdir_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/folder/state.json");
        let state = provisioned();
        state.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), state);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let folder = fs::metadata(path.parent().unwrap()).unwrap();
        assert_eq!(folder.permissions().mode() & 0o077, 0);
        // Saving again replaces the file and leaves no temporary file behind.
        let mut state2 = state.clone();
        state2.device.as_mut().unwrap().mark_used(50);
        state2.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), state2);
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("state.json")]);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"version\": 2"));
    }

    #[test]
    fn mode_is_0600_even_over_a_world_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, "{}").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        State::default().save(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let cases: &[(&str, &str)] = &[
            ("not json", "not JSON"),
            ("{}", "no \"version\""),
            (r#"{"version": 3}"#, "version 3 is not supported"),
            (r#"{"version": 0}"#, "version 0 is not supported"),
            (r#"{"version": "1"}"#, "is not supported"),
            (r#"{"version": 1, "extra": true}"#, "unknown field"),
            (r#"{"version": 1, "server": "ftp://x"}"#, "http"),
            (r#"{"version": 1, "user": ""}"#, "user name is empty"),
        ];
        for (text, want) in cases {
            let err = format!("{:#}", State::from_json(text.as_bytes()).unwrap_err());
            assert!(err.contains(want), "{text}: {err}");
        }
        let mut state = provisioned();
        state.device.as_mut().unwrap().strings.pop();
        let json = serde_json::to_vec(&state).unwrap();
        let err = format!("{:#}", State::from_json(&json).unwrap_err());
        assert!(err.contains("99"), "{err}");
        let mut state = provisioned();
        state.device.as_mut().unwrap().used = vec![0];
        let json = serde_json::to_vec(&state).unwrap();
        assert!(State::from_json(&json).is_err());
    }

    #[test]
    fn version_1_files_still_load_and_are_saved_as_version_2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        // A file exactly as version 1 of this program wrote it.
        let v1 = json_v1();
        fs::write(&path, &v1).unwrap();
        let state = State::load(&path).unwrap();
        assert_eq!(state.version, STATE_VERSION);
        assert_eq!(state, provisioned());
        assert_eq!(
            state.device.as_ref().unwrap().mode().unwrap(),
            Mode::Strings
        );
        state.save(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"version\": 2"), "{text}");
        assert_eq!(State::load(&path).unwrap(), provisioned());
        // An empty version-1 state too.
        let state = State::from_json(br#"{"version": 1, "user": "bob"}"#).unwrap();
        assert_eq!(state.version, STATE_VERSION);
        assert_eq!(state.user.as_deref(), Some("bob"));
        // Version 1 had no OATH mode.
        let mut value: serde_json::Value = serde_json::from_str(&v1).unwrap();
        value["device"] = serde_json::json!({
            "device_id": "d", "device_token": "t", "otpauth_uri": TOTP_URI
        });
        let err = format!(
            "{:#}",
            State::from_json(value.to_string().as_bytes()).unwrap_err()
        );
        assert!(err.contains("version-1"), "{err}");
    }

    fn json_v1() -> String {
        let mut text =
            String::from("{\n  \"version\": 1,\n  \"server\": \"http://127.0.0.1:8080\",\n");
        text.push_str("  \"user\": \"alice\",\n  \"device\": {\n    \"device_id\": \"dev-1\",\n");
        text.push_str(
            "    \"device_token\": \"tok-secret\",\n    \"batch\": 3,\n    \"strings\": [",
        );
        let quoted: Vec<String> = strings().iter().map(|s| format!("\"{s}\"")).collect();
        text.push_str(&quoted.join(", "));
        text.push_str("],\n    \"used\": [1, 2, 7]\n  }\n}\n");
        text
    }

    #[test]
    fn oath_devices_round_trip_without_strings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        for uri in [TOTP_URI, HOTP_URI] {
            let state = oath(uri);
            state.save(&path).unwrap();
            assert_eq!(State::load(&path).unwrap(), state);
            let text = fs::read_to_string(&path).unwrap();
            assert!(text.contains(uri), "{text}");
            for absent in ["batch", "strings", "used"] {
                assert!(!text.contains(absent), "{absent}: {text}");
            }
            let Mode::Oath(key) = state.device.unwrap().mode().unwrap() else {
                panic!("not OATH");
            };
            assert_eq!(key.account, "alice");
        }
    }

    #[test]
    fn oath_devices_are_checked() {
        let mut state = oath(TOTP_URI);
        state.device.as_mut().unwrap().strings = strings();
        state.device.as_mut().unwrap().batch = 1;
        assert!(state.validate().is_err());
        let mut state = oath(TOTP_URI);
        state.device.as_mut().unwrap().used = vec![1];
        assert!(state.validate().is_err());
        let secret = "JBSWY3DPEHPK3PXP";
        for (uri, want) in [
            (
                format!("otpauth://totp/a?secret={secret}&digits=5"),
                "6 to 8 digits",
            ),
            (format!("otpauth://totp/a?secret={secret}!"), "base32"),
            (
                format!("otpauth://totp/a?secret={secret}\u{1b}[2J"),
                "visible ASCII",
            ),
            (format!("http://totp/a?secret={secret}"), "otpauth"),
            (format!("otpauth://hotp/a?secret={secret}"), "counter"),
            (String::new(), "1 to 2048"),
        ] {
            let state = oath(&uri);
            let json = serde_json::to_vec(&state).unwrap();
            let err = format!("{:#}", State::from_json(&json).unwrap_err());
            assert!(err.contains(want), "{uri}: {err}");
            assert!(!err.contains(secret), "{err}");
        }
    }

    #[test]
    fn hotp_counter_is_kept_in_the_uri() {
        let mut state = oath(HOTP_URI);
        let device = state.device.as_mut().unwrap();
        device.set_hotp_counter(7).unwrap();
        let Mode::Oath(key) = device.mode().unwrap() else {
            panic!("not OATH");
        };
        assert_eq!(key.counter, 7);
        assert_eq!(key.params.kind, OathKind::Hotp);
        assert!(device.otpauth_uri.as_ref().unwrap().ends_with("&counter=7"));
        assert!(state.validate().is_ok());
        let mut totp = oath(TOTP_URI);
        assert!(totp.device.as_mut().unwrap().set_hotp_counter(1).is_err());
        let mut strings_mode = provisioned();
        assert!(strings_mode
            .device
            .as_mut()
            .unwrap()
            .set_hotp_counter(1)
            .is_err());
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, "garbage").unwrap();
        let err = format!("{:#}", State::load(&path).unwrap_err());
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn debug_hides_the_token() {
        let text = format!("{:?}", provisioned());
        assert!(!text.contains("tok-secret"));
        assert!(!text.contains(&strings()[0]));
        let text = format!("{:?}", oath(TOTP_URI));
        assert!(!text.contains("tok-secret"));
        assert!(!text.contains("JBSWY3DP"), "{text}");
        let text = format!("{:?}", oath(TOTP_URI).device.unwrap().mode().unwrap());
        assert!(!text.contains("JBSWY3DP"), "{text}");
    }

    #[test]
    fn used_set_and_strings_left() {
        let mut state = provisioned();
        let device = state.device.as_mut().unwrap();
        assert_eq!(device.strings_left(), 96);
        device.mark_used(5);
        device.mark_used(5);
        assert_eq!(device.used, vec![1, 2, 5, 7]);
        let set = device.used_set();
        assert!(set.is_used(5) && set.is_used(1) && !set.is_used(3));
        assert_eq!(set.next_unused(), Some(3));
        assert_eq!(device.string(1).unwrap().as_str(), strings()[0]);
        assert_eq!(device.string(99).unwrap().as_str(), strings()[98]);
        assert!(device.string(0).is_err() && device.string(100).is_err());
    }

    #[test]
    fn default_path_order() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let all = &[
            (STATE_ENV, "/tmp/s.json"),
            ("XDG_STATE_HOME", "/xdg"),
            ("HOME", "/home/a"),
        ];
        assert_eq!(
            default_path(env(all)).unwrap(),
            PathBuf::from("/tmp/s.json")
        );
        assert_eq!(
            default_path(env(&[
                (STATE_ENV, ""),
                ("XDG_STATE_HOME", "/xdg"),
                ("HOME", "/h")
            ]))
            .unwrap(),
            PathBuf::from("/xdg/pinwheel-mobile/state.json")
        );
        assert_eq!(
            default_path(env(&[("XDG_STATE_HOME", "relative"), ("HOME", "/h")])).unwrap(),
            PathBuf::from("/h/.local/state/pinwheel-mobile/state.json")
        );
        assert!(default_path(env(&[])).is_err());
    }
}
