//! How a value is escaped for the place a template puts it: a URL, a form
//! body, a JSON string. Each function appends the escaped `value` to `out`.

use std::fmt::Write as _;

/// Percent-encodes every byte of `value` but the RFC 3986 unreserved
/// characters (`A-Z a-z 0-9 - . _ ~`): safe in a path segment and in a query
/// component, a space becomes `%20` and a `+` becomes `%2B`.
pub(crate) fn percent(value: &str, out: &mut String) {
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// `application/x-www-form-urlencoded`, as browsers encode form fields:
/// ASCII letters, digits and `* - . _` stay, a space becomes `+`, every other
/// byte of the UTF-8 form becomes `%XX`.
pub(crate) fn form(value: &str, out: &mut String) {
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_') {
            out.push(char::from(b));
        } else if b == b' ' {
            out.push('+');
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// The inside of a JSON string (no quotes): `"`, `\` and control characters
/// escaped, everything else as it is.
pub(crate) fn json(value: &str, out: &mut String) {
    // Serializing a &str cannot fail.
    let quoted = serde_json::to_string(value).unwrap_or_default();
    let inner = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_default();
    out.push_str(inner);
}

/// No escaping (a `text` body).
pub(crate) fn raw(value: &str, out: &mut String) {
    out.push_str(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    const NASTY: &str = "a&b=c+d#e%f\"g\\h\ni é 😀/?";

    fn run(f: fn(&str, &mut String), value: &str) -> String {
        let mut out = String::new();
        f(value, &mut out);
        out
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved() {
        assert_eq!(
            run(percent, NASTY),
            "a%26b%3Dc%2Bd%23e%25f%22g%5Ch%0Ai%20%C3%A9%20%F0%9F%98%80%2F%3F"
        );
        assert_eq!(run(percent, "+44 7700 900123"), "%2B44%207700%20900123");
        assert_eq!(run(percent, "AZaz09-._~"), "AZaz09-._~");
    }

    #[test]
    fn form_encoding_uses_plus_for_space() {
        assert_eq!(
            run(form, NASTY),
            "a%26b%3Dc%2Bd%23e%25f%22g%5Ch%0Ai+%C3%A9+%F0%9F%98%80%2F%3F"
        );
        assert_eq!(run(form, "+44 7700 900123"), "%2B44+7700+900123");
        assert_eq!(run(form, "*-._~"), "*-._%7E");
    }

    #[test]
    fn json_escaping_gives_string_content() {
        assert_eq!(run(json, NASTY), "a&b=c+d#e%f\\\"g\\\\h\\ni é 😀/?");
        assert_eq!(run(json, "\u{1}\t"), "\\u0001\\t");
        let doc = format!("{{\"m\": \"{}\"}}", run(json, NASTY));
        let parsed: serde_json::Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(parsed["m"], NASTY);
    }

    #[test]
    fn raw_is_unchanged() {
        assert_eq!(run(raw, NASTY), NASTY);
    }
}
