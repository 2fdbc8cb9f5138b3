//! Pure string handling, no I/O: RFC 4515 escaping of values put into search
//! filters, placeholder substitution in the configured filters, reduction of
//! group DNs to short names (RFC 4514), and the checks a user name must pass
//! before it is sent to a server at all.

/// Longest user name (in bytes) that is ever sent to the server. Longer ones
/// are answered "no such user" without a query.
pub const MAX_USERNAME_BYTES: usize = 256;

/// Escapes `value` for use as an assertion value inside a search filter
/// (RFC 4515 section 3): `*`, `(`, `)`, `\` and NUL become `\2a`, `\28`,
/// `\29`, `\5c` and `\00`. Other ASCII control characters are escaped too
/// (allowed by the RFC, and keeps filters printable); everything else,
/// including non-ASCII UTF-8, is kept as is.
pub fn escape_filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '*' | '(' | ')' | '\\' => push_hex(&mut out, c as u8),
            c if c.is_ascii_control() => push_hex(&mut out, c as u8),
            c => out.push(c),
        }
    }
    out
}

fn push_hex(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('\\');
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0x0f)]));
}

/// `template` with every `placeholder` (such as `{username}`) replaced by
/// `value`, escaped with [`escape_filter_value`].
pub fn fill(template: &str, placeholder: &str, value: &str) -> String {
    template.replace(placeholder, &escape_filter_value(value))
}

/// Whether `username` may be sent to the server: not empty, at most
/// [`MAX_USERNAME_BYTES`] bytes, no control characters.
pub fn acceptable_username(username: &str) -> bool {
    !username.is_empty()
        && username.len() <= MAX_USERNAME_BYTES
        && !username.chars().any(char::is_control)
}

/// The value of the first attribute of the first RDN of `dn`, unescaped
/// (RFC 4514): `cn=vpn,ou=groups,dc=example,dc=org` gives `vpn`,
/// `CN=VPN Users\, Berlin,OU=Groups,DC=corp` gives `VPN Users, Berlin`.
/// A value that is not a DN (no `=`) is returned trimmed, as it is.
pub fn group_name_from_dn(dn: &str) -> String {
    let Some((_, rest)) = dn.split_once('=') else {
        return dn.trim().to_string();
    };
    let rest = rest.trim_start();
    let bytes = rest.as_bytes();
    if bytes.first() == Some(&b'#') {
        // A BER-encoded value: nothing sensible to shorten it to.
        let end = rest.find([',', '+']).unwrap_or(rest.len());
        return rest[..end].trim().to_string();
    }
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    // Length of `out` up to the last escaped byte: escaped trailing spaces stay.
    let mut keep = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(byte) = hex {
                    out.push(byte);
                    i += 3;
                } else if let Some(&next) = bytes.get(i + 1) {
                    out.push(next);
                    i += 2;
                } else {
                    i += 1;
                }
                keep = out.len();
            }
            b',' | b'+' | b';' => break,
            b => {
                out.push(b);
                if b != b' ' {
                    keep = out.len();
                }
                i += 1;
            }
        }
    }
    out.truncate(keep);
    let name = String::from_utf8_lossy(&out).into_owned();
    if name.is_empty() {
        dn.trim().to_string()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4515_examples_escape_as_the_rfc_shows() {
        // RFC 4515 section 4 examples (hex digits in lower case; equivalent).
        assert_eq!(
            escape_filter_value("Parens R Us (for all your parenthetical needs)"),
            r"Parens R Us \28for all your parenthetical needs\29"
        );
        assert_eq!(escape_filter_value("*"), r"\2a");
        assert_eq!(escape_filter_value(r"C:\MyFile"), r"C:\5cMyFile");
        assert_eq!(escape_filter_value("\0\0\0\u{4}"), r"\00\00\00\04");
        // UTF-8 may stay as is (section 3: only the five specials must go).
        assert_eq!(escape_filter_value("Lučić"), "Lučić");
    }

    #[test]
    fn injection_attempts_become_plain_values() {
        let filter = fill(
            "(&(objectClass=inetOrgPerson)(uid={username}))",
            "{username}",
            "eve*)(uid=*",
        );
        assert_eq!(
            filter,
            r"(&(objectClass=inetOrgPerson)(uid=eve\2a\29\28uid=\2a))"
        );
        assert_eq!(fill("(a={x})(b={x})", "{x}", "*"), r"(a=\2a)(b=\2a)");
        assert!(ldap3::parse_filter(&filter).is_ok());
    }

    #[test]
    fn usernames_are_checked_before_any_query() {
        assert!(acceptable_username("alice"));
        assert!(acceptable_username("eve*)(uid=*"));
        assert!(acceptable_username("ünïcödé"));
        assert!(!acceptable_username(""));
        assert!(!acceptable_username("al\nice"));
        assert!(!acceptable_username("al\0ice"));
        assert!(!acceptable_username("al\u{7f}ice"));
        assert!(acceptable_username(&"a".repeat(256)));
        assert!(!acceptable_username(&"a".repeat(257)));
    }

    #[test]
    fn group_dns_reduce_to_their_first_rdn_value() {
        assert_eq!(
            group_name_from_dn("cn=vpn,ou=groups,dc=example,dc=org"),
            "vpn"
        );
        assert_eq!(
            group_name_from_dn("CN=VPN Users,OU=Groups,DC=corp,DC=example"),
            "VPN Users"
        );
        assert_eq!(group_name_from_dn(r"cn=a\,b,ou=x"), "a,b");
        assert_eq!(group_name_from_dn(r"cn=a\2Cb,ou=x"), "a,b");
        assert_eq!(group_name_from_dn(r"cn=caf\C3\A9,dc=x"), "café");
        assert_eq!(group_name_from_dn("cn=x+uid=y,dc=z"), "x");
        assert_eq!(group_name_from_dn(" cn = spaced ,dc=x"), "spaced");
        assert_eq!(group_name_from_dn(r"cn=trail\ ,dc=x"), "trail ");
        assert_eq!(group_name_from_dn("cn=#04024869,dc=x"), "#04024869");
        assert_eq!(group_name_from_dn("staff"), "staff");
        assert_eq!(group_name_from_dn("cn=,dc=x"), "cn=,dc=x");
    }
}
