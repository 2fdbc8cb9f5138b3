//! Keeping a message's contents out of error text.
//!
//! A transport's peer (an SMTP relay, an SMS gateway) may echo what it was
//! sent in its error answer: "550 message text was ... Your PIN is: 7314".
//! Plugins put the peer's answer in their errors, which reach the daemon's
//! log and `pinwheelctl` output, so they first cut out every secret of the
//! message with [`scrub`], using the list from [`message_secrets`]. Config
//! errors likewise never echo a value ([`parse_config`]): an inline secret
//! of the wrong type would otherwise be copied into the log.

use crate::Message;

/// Lines of a text this long or longer are scrubbed whole, besides the
/// values they contain (a peer may echo a single line).
const MIN_LINE_LEN: usize = 8;

/// What replaces a secret in scrubbed text.
pub const REDACTED: &str = "[redacted]";

/// Everything of `message` that must not reach an error, longest first:
/// each text in `rendered` (what was actually sent, e.g. a rendered
/// template), the message body, their lines of at least 8 characters, and
/// every value but the user name. Blank entries are left out.
pub fn message_secrets(message: &Message, rendered: &[&str]) -> Vec<String> {
    let mut texts: Vec<&str> = rendered.to_vec();
    texts.push(message.body.as_str());
    let mut all: Vec<String> = Vec::new();
    for text in &texts {
        all.push(text.trim().to_string());
        all.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| l.chars().count() >= MIN_LINE_LEN)
                .map(str::to_string),
        );
    }
    all.extend(
        message
            .values
            .iter()
            .filter(|(k, _)| k.as_str() != "username")
            .map(|(_, v)| v.trim().to_string()),
    );
    all.retain(|s| !s.is_empty());
    // Longest first, so a value inside a longer one does not break it up.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
    all.dedup();
    all
}

/// `text` with every entry of `secrets` (longest first, see
/// [`message_secrets`]) replaced by [`REDACTED`], trimmed, control
/// characters replaced by spaces, and cut to at most `max` bytes (on a
/// character boundary, `…` added when cut).
pub fn scrub(text: &str, secrets: &[String], max: usize) -> String {
    let mut text = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), REDACTED);
        }
    }
    let mut out = String::new();
    for c in text.trim().chars() {
        if out.len() + c.len_utf8() > max {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// `detail` (a serde error's text) without the offending value: serde says
/// "invalid type: integer `99887766`, expected a string", which would copy
/// an inline secret of the wrong type into logs. Gives "invalid type:
/// integer, expected a string"; other texts are returned as they are.
pub fn config_detail(detail: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        let Some(rest) = detail.strip_prefix(prefix) else {
            continue;
        };
        let (unexpected, expected) = match rest.find(", expected ") {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        // "integer `5`", "string \"x\"", "map": the kind, then the value.
        let kind = unexpected
            .split(['`', '"', '\''])
            .next()
            .unwrap_or_default()
            .trim();
        return format!("{prefix}{kind}{expected}");
    }
    detail.to_string()
}

/// Deserializes a plugin's JSON `config` into `T`. The error names the
/// config key at fault and never the value found there ([`config_detail`]):
/// "config key `password`: invalid type: integer, expected a string", or
/// "config: missing field `from`" for the whole table.
pub fn parse_config<T: serde::de::DeserializeOwned>(
    config: serde_json::Value,
) -> Result<T, String> {
    serde_path_to_error::deserialize(config).map_err(|e| {
        let path = e.path().to_string();
        let detail = config_detail(&e.inner().to_string());
        if path == "." || path.is_empty() {
            format!("config: {detail}")
        } else {
            format!("config key `{path}`: {detail}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MessageKind;

    fn pin_message() -> Message {
        let mut m = Message::new(MessageKind::Pin, "alice");
        m.subject = "Your Pinwheel PIN".into();
        m.body = "Hello alice,\nYour Pinwheel PIN is: 7314\nKeep it secret.\n".into();
        m.values.insert("pin".into(), "7314".into());
        m
    }

    #[test]
    fn values_lines_and_body_are_cut_out_but_not_the_user_name() {
        let m = pin_message();
        let secrets = message_secrets(&m, &["PIN for alice: 7314"]);
        let echoed = "550 5.7.1 message text was Hello alice,\r\nYour Pinwheel PIN is: 7314\r\n";
        let out = scrub(echoed, &secrets, 300);
        assert!(!out.contains("7314"), "{out}");
        assert!(!out.contains("Hello"), "{out}");
        assert_eq!(
            scrub("no mailbox for alice", &secrets, 300),
            "no mailbox for alice"
        );
        assert!(out.starts_with("550 5.7.1 message text was"), "{out}");
        assert!(!out.contains('\r') && !out.contains('\n'), "{out}");
        // The value alone, wherever it is.
        assert_eq!(
            scrub("code 7314 refused", &secrets, 300),
            "code [redacted] refused"
        );
        // Longest first: the whole line, not just the PIN inside it.
        assert!(secrets[0].len() >= secrets[secrets.len() - 1].len());
        assert!(!secrets.iter().any(|s| s == "alice"));
    }

    #[test]
    fn config_errors_name_the_key_but_never_the_value() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Settings {
            password: Option<String>,
            port: Option<u16>,
        }
        let err = parse_config::<Settings>(serde_json::json!({"password": 99887766})).unwrap_err();
        assert_eq!(
            err,
            "config key `password`: invalid type: integer, expected a string"
        );
        let err = parse_config::<Settings>(serde_json::json!({"port": "s3cr3t"})).unwrap_err();
        assert!(
            err.starts_with("config key `port`: invalid type: string"),
            "{err}"
        );
        assert!(!err.contains("s3cr3t"), "{err}");
        let err = parse_config::<Settings>(serde_json::json!({"port": 99887766})).unwrap_err();
        assert!(
            err.starts_with("config key `port`: invalid value: integer"),
            "{err}"
        );
        assert!(!err.contains("99887766"), "{err}");
        let err = parse_config::<Settings>(serde_json::json!({"pasword": "x"})).unwrap_err();
        assert!(err.contains("unknown field `pasword`"), "{err}");
        assert!(parse_config::<Settings>(serde_json::json!({"password": "x"})).is_ok());
    }

    #[test]
    fn scrub_cuts_on_a_character_boundary() {
        let out = scrub("ééééé", &[], 5);
        assert_eq!(out, "éé…");
        assert_eq!(scrub("  short  ", &[], 100), "short");
        assert_eq!(scrub("x", &[String::new()], 100), "x");
    }
}
