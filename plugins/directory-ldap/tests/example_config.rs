//! `etc/directory-ldap.example.toml` and the examples in the crate docs
//! must stay valid: every `[[directory]]` entry (the commented Active
//! Directory one too) is parsed and its `config` checked by the plugin, with
//! the files it names replaced by temporary ones.

use pinwheel_directory_ldap::LdapDirectory;
use pinwheel_sdk::Plugin;

fn check_entries(toml_text: &str, what: &str) -> usize {
    let doc: toml::Table = toml_text
        .parse()
        .unwrap_or_else(|e| panic!("{what} is not valid TOML: {e}"));
    let entries = doc
        .get("directory")
        .and_then(|d| d.as_array())
        .unwrap_or_else(|| panic!("{what} has no [[directory]]"));
    let dir = tempfile::tempdir().expect("temp dir");
    let password = dir.path().join("pw");
    std::fs::write(&password, "secret\n").expect("password");
    let ca = dir.path().join("ca.pem");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["ca.example".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    std::fs::write(&ca, cert.pem()).expect("ca");
    for entry in entries {
        assert_eq!(
            entry.get("plugin").and_then(|p| p.as_str()),
            Some("libpinwheel_directory_ldap.so"),
            "{what}"
        );
        let mut config = entry
            .get("config")
            .and_then(|c| c.as_table())
            .cloned()
            .unwrap_or_else(|| panic!("{what}: entry without config"));
        for (key, file) in [("bind_password_file", &password), ("ca_file", &ca)] {
            if config.contains_key(key) {
                config.insert(key.into(), toml::Value::String(file.display().to_string()));
            }
        }
        let json = serde_json::to_value(&config).expect("json");
        if let Err(e) = LdapDirectory::new(json) {
            panic!("{what}: config refused: {e}");
        }
    }
    entries.len()
}

/// The commented Active Directory half of the example, uncommented once.
fn uncomment_after(text: &str, marker: &str) -> String {
    let start = text.find(marker).expect("marker");
    text[start..]
        .lines()
        .skip(1)
        .map(|l| {
            l.strip_prefix("# ")
                .or_else(|| l.strip_prefix('#'))
                .unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn example_file_entries_are_valid() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../etc/directory-ldap.example.toml"
    );
    let text = std::fs::read_to_string(path).expect("example file");
    assert_eq!(check_entries(&text, "OpenLDAP example"), 1);
    let ad = uncomment_after(&text, "-- Active Directory");
    assert_eq!(check_entries(&ad, "Active Directory example"), 1);
}

#[test]
fn doc_examples_are_valid() {
    let src = include_str!("../src/lib.rs");
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in src.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.strip_prefix(' ').unwrap_or(doc);
        match (&mut current, doc) {
            (None, "```toml") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take().map(|b| b.join("\n"))),
            (Some(b), l) => b.push(l),
            (None, _) => {}
        }
    }
    assert_eq!(
        blocks.len(),
        2,
        "the OpenLDAP and Active Directory examples"
    );
    for (i, block) in blocks.iter().enumerate() {
        check_entries(block, &format!("doc example {i}"));
    }
}
