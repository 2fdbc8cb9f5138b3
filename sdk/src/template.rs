//! Plain-text message templates for plugins with `{name}` placeholders: parsed once at init
//! (an unknown name is a config error), rendered per message.
//!
//! A placeholder is `{` + a name (a letter or `_`, then letters, digits, `_`
//! or `-`) + `}`. Any other brace is literal text, so templates need no
//! escaping.

/// One parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(String),
}

/// The placeholder name starting at `rest` (which follows a `{`), and the
/// number of bytes it takes including the closing `}`.
fn placeholder(rest: &str) -> Option<(&str, usize)> {
    let end = rest.find('}')?;
    let name = &rest[..end];
    let mut chars = name.chars();
    let first = chars.next()?;
    if !(first.is_ascii_alphabetic() || first == '_') {
        return None;
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return None;
    }
    Some((name, end + 1))
}

impl Template {
    /// Parses `text`; every placeholder must be one of `allowed`.
    ///
    /// Errors: a message naming the unknown placeholder and the known ones.
    pub fn parse(text: &str, allowed: &[&str]) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            literal.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match placeholder(after) {
                Some((name, used)) => {
                    if !allowed.contains(&name) {
                        let known: Vec<String> =
                            allowed.iter().map(|n| format!("{{{n}}}")).collect();
                        return Err(format!(
                            "unknown placeholder `{{{name}}}` (known here: {})",
                            known.join(", ")
                        ));
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Var(name.to_string()));
                    rest = &after[used..];
                }
                None => {
                    literal.push('{');
                    rest = after;
                }
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template { pieces })
    }

    /// Fills in the placeholders with `lookup(name)`, unchanged.
    ///
    /// Errors: the name of a placeholder `lookup` has no value for.
    pub fn render<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> Result<String, String> {
        self.render_escaped(lookup, |value, out| out.push_str(value))
    }

    /// Fills in the placeholders with `lookup(name)`, each value passed
    /// through `escape` (literal text is kept as written).
    ///
    /// Errors: the name of a placeholder `lookup` has no value for.
    pub fn render_escaped<'a>(
        &self,
        lookup: impl Fn(&str) -> Option<&'a str>,
        escape: impl Fn(&str, &mut String),
    ) -> Result<String, String> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Var(name) => escape(lookup(name).ok_or_else(|| name.clone())?, &mut out),
            }
        }
        Ok(out)
    }

    /// Whether the template uses placeholder `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Var(n) if n == name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &["username", "code"];

    fn render(t: &Template) -> Result<String, String> {
        t.render(|name| match name {
            "username" => Some("alice"),
            "code" => Some("1234567890"),
            _ => None,
        })
    }

    #[test]
    fn substitutes_known_names() {
        let t = Template::parse("Hi {username}, your code is {code}.", NAMES).unwrap();
        assert_eq!(render(&t).unwrap(), "Hi alice, your code is 1234567890.");
    }

    #[test]
    fn other_braces_are_literal() {
        let t = Template::parse("{ } {} {1x} {code {{code}} {a b}", NAMES).unwrap();
        assert_eq!(render(&t).unwrap(), "{ } {} {1x} {code {1234567890} {a b}");
        let t = Template::parse("trailing {", NAMES).unwrap();
        assert_eq!(render(&t).unwrap(), "trailing {");
        let t = Template::parse("", NAMES).unwrap();
        assert_eq!(render(&t).unwrap(), "");
    }

    #[test]
    fn unknown_names_are_refused_with_the_known_list() {
        let e = Template::parse("PIN {pin}", NAMES).unwrap_err();
        assert!(e.contains("`{pin}`"), "{e}");
        assert!(e.contains("{username}, {code}"), "{e}");
    }

    #[test]
    fn a_missing_value_names_the_placeholder() {
        let t = Template::parse("{code}", &["code"]).unwrap();
        assert_eq!(t.render(|_| None), Err("code".to_string()));
    }

    #[test]
    fn values_are_not_reparsed() {
        let t = Template::parse("{username}", NAMES).unwrap();
        assert_eq!(t.render(|_| Some("{code}")).unwrap(), "{code}");
    }
}
