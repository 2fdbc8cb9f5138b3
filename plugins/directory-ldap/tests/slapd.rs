//! The plugin against a real OpenLDAP `slapd`, started privately for each
//! test on 127.0.0.1 at ports chosen at run time, with its own config and
//! database in a temporary folder, and killed when the test ends.
//!
//! Needs Debian's `slapd` and `ldap-utils` (run `tools/test.sh`, which
//! installs them); the starter is `pinwheel-test-peers`. The directory
//! holds: people (alice with mail, mobile and groups vpn + staff; bob
//! without a phone; a user whose uid is `eve*)(uid=*`; twin), a second
//! `twin` elsewhere (for the ambiguity test), Active-Directory-like users
//! (`sAMAccountName`, `userAccountControl`, from a small test schema), and
//! groupOfNames groups, with the memberof overlay maintaining `memberOf`.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ldap3::LdapConn;
use pinwheel_directory_ldap::LdapDirectory;
use pinwheel_sdk::{Directory, DirectoryUser, ErrorKind, Plugin};
use pinwheel_test_peers::free_port;
use pinwheel_test_peers::slapd::{
    Options, Slapd, Tls, PEOPLE, ROOT_DN, ROOT_PW, SERVICE_DN, SERVICE_PW, SUFFIX,
};
use serde_json::{json, Value};

/// A small schema imitating the Active Directory attributes the plugin
/// reads, under OpenLDAP's experimental OID arc.
const AD_SCHEMA: &str = "\
attributetype ( 1.3.6.1.4.1.4203.666.11.77.1 NAME 'sAMAccountName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.4203.666.11.77.2 NAME 'userAccountControl'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.4203.666.11.77.3 NAME 'pinwheelTestAdUser'
  SUP top AUXILIARY MAY ( sAMAccountName $ userAccountControl ) )
";

/// A private slapd with the AD-like schema, the memberof overlay, `mobile`
/// readable by the service account only, an `ldaps://` listener (CA in
/// `ca.pem`, an unrelated CA in `other-ca.pem`) and the test entries.
fn start_slapd() -> Slapd {
    let (tls, other_ca) = tls_files();
    let slapd = Slapd::start(&Options {
        schemas: vec![("ad.schema", AD_SCHEMA)],
        overlays: vec!["memberof"],
        service_only_attrs: vec!["mobile"],
        tls: Some(tls),
    });
    std::fs::write(slapd.path("other-ca.pem"), other_ca).expect("other-ca.pem");
    load(&slapd);
    slapd
}

/// Adds the test entries as the root DN (online, so the memberof
/// overlay fills in `memberOf`).
fn load(slapd: &Slapd) {
    let mut c = LdapConn::new(&slapd.url()).expect("connect as root");
    c.simple_bind(ROOT_DN, ROOT_PW)
        .and_then(|r| r.success())
        .expect("root bind");
    let c = &mut c;
    add(
        c,
        SUFFIX,
        attrs(&[
            ("objectClass", &["dcObject", "organization"]),
            ("dc", &["example"]),
            ("o", &["Example"]),
        ]),
    );
    for ou in ["people", "services", "groups", "others", "ad"] {
        add(
            c,
            &format!("ou={ou},{SUFFIX}"),
            attrs(&[("objectClass", &["organizationalUnit"]), ("ou", &[ou])]),
        );
    }
    add(
        c,
        SERVICE_DN,
        attrs(&[
            (
                "objectClass",
                &["organizationalRole", "simpleSecurityObject"],
            ),
            ("cn", &["pinwheel"]),
            ("userPassword", &[SERVICE_PW]),
        ]),
    );
    add(
        c,
        &format!("uid=alice,{PEOPLE}"),
        person(
            "alice",
            "Alice Liddell",
            &[
                ("mail", "alice@example.org"),
                ("mobile", "+15550100"),
                ("userPassword", "alice-pw"),
            ],
        ),
    );
    add(
        c,
        &format!("uid=bob,{PEOPLE}"),
        person(
            "bob",
            "Bob",
            &[("mail", "bob@example.org"), ("userPassword", "bob-pw")],
        ),
    );
    add(
        c,
        &format!("cn=Eve Meta,{PEOPLE}"),
        person("eve*)(uid=*", "Eve Meta", &[("userPassword", "eve-pw")]),
    );
    add(
        c,
        &format!("uid=twin,{PEOPLE}"),
        person("twin", "Twin One", &[]),
    );
    add(
        c,
        &format!("uid=twin,ou=others,{SUFFIX}"),
        person("twin", "Twin Two", &[]),
    );
    let mut dave = person(
        "dave.ad",
        "Dave",
        &[
            ("mail", "dave@corp.example"),
            ("sAMAccountName", "dave"),
            ("userAccountControl", "512"),
            ("userPassword", "dave-pw"),
        ],
    );
    dave[0].1.push("pinwheelTestAdUser".into());
    add(c, &format!("cn=Dave,ou=ad,{SUFFIX}"), dave);
    let mut dan = person(
        "dan.ad",
        "Dan",
        &[("sAMAccountName", "dan"), ("userAccountControl", "514")],
    );
    dan[0].1.push("pinwheelTestAdUser".into());
    add(c, &format!("cn=Dan,ou=ad,{SUFFIX}"), dan);
    let alice = format!("uid=alice,{PEOPLE}");
    let bob = format!("uid=bob,{PEOPLE}");
    let dave_dn = format!("cn=Dave,ou=ad,{SUFFIX}");
    add(
        c,
        &format!("cn=vpn,ou=groups,{SUFFIX}"),
        group("vpn", &[&alice]),
    );
    add(
        c,
        &format!("cn=staff,ou=groups,{SUFFIX}"),
        group("staff", &[&alice, &bob]),
    );
    add(
        c,
        &format!("cn=VPN Users,ou=groups,{SUFFIX}"),
        group("VPN Users", &[&dave_dn]),
    );
}

type Attrs = Vec<(String, Vec<String>)>;

fn attrs(list: &[(&str, &[&str])]) -> Attrs {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
        .collect()
}

fn person(uid: &str, cn: &str, extra: &[(&str, &str)]) -> Attrs {
    let mut a = attrs(&[
        ("objectClass", &["inetOrgPerson"]),
        ("uid", &[uid]),
        ("cn", &[cn]),
        ("sn", &[cn]),
    ]);
    for (k, v) in extra {
        a.push((k.to_string(), vec![v.to_string()]));
    }
    a
}

fn group(cn: &str, members: &[&str]) -> Attrs {
    attrs(&[
        ("objectClass", &["groupOfNames"]),
        ("cn", &[cn]),
        ("member", members),
    ])
}

fn add(c: &mut LdapConn, dn: &str, attrs: Attrs) {
    let attrs: Vec<(String, HashSet<String>)> = attrs
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect();
    c.add(dn, attrs)
        .and_then(|r| r.success())
        .unwrap_or_else(|e| panic!("adding {dn}: {e}"));
}

/// A CA and a server certificate for 127.0.0.1 signed by it, and (second)
/// a CA that signed nothing here, for the refusal test; as PEM.
fn tls_files() -> (Tls, String) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Pinwheel test CA");
    let ca = ca_params.clone().self_signed(&ca_key).expect("CA cert");
    let key = rcgen::KeyPair::generate().expect("server key");
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("server params");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
    let tls = Tls {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    };
    let other_key = rcgen::KeyPair::generate().expect("other key");
    let other = ca_params.self_signed(&other_key).expect("other CA");
    (tls, other.pem())
}

fn service_password_file(slapd: &Slapd, password: &str) -> PathBuf {
    let path = slapd.path(&format!("bind-{}.pw", password.len()));
    std::fs::write(&path, format!("{password}\n")).expect("password file");
    path
}

/// The OpenLDAP-style config: users under ou=people, groups by group search.
fn openldap_config(slapd: &Slapd, urls: &[String]) -> Value {
    json!({
        "urls": urls,
        "bind_dn": SERVICE_DN,
        "bind_password_file": service_password_file(slapd, SERVICE_PW),
        "base_dn": PEOPLE,
        "attributes": { "username": "uid", "email": "mail", "phone": "mobile", "groups": "" },
        "group_search": {
            "base_dn": format!("ou=groups,{SUFFIX}"),
            "filter": "(&(objectClass=groupOfNames)(member={dn}))",
            "name_attribute": "cn",
        },
        "timeout": 2,
    })
}

fn new_plugin(config: Value) -> LdapDirectory {
    match LdapDirectory::new(config) {
        Ok(p) => p,
        Err(e) => panic!("config refused: {e}"),
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn lookup(p: &LdapDirectory, name: &str) -> Option<DirectoryUser> {
    p.lookup(name)
        .unwrap_or_else(|e| panic!("lookup {name:?}: {e}"))
}

#[test]
fn lookup_maps_attributes_and_groups() {
    let slapd = start_slapd();
    let p = new_plugin(openldap_config(&slapd, &[slapd.url()]));

    let alice = lookup(&p, "alice").expect("alice exists");
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.email.as_deref(), Some("alice@example.org"));
    assert_eq!(alice.phone.as_deref(), Some("+15550100"));
    assert_eq!(sorted(alice.groups.clone()), ["staff", "vpn"]);
    assert!(alice.enabled);

    // The directory's spelling, whatever the case typed.
    assert_eq!(
        lookup(&p, "ALICE").expect("case-insensitive").username,
        "alice"
    );

    let bob = lookup(&p, "bob").expect("bob exists");
    assert_eq!(bob.email.as_deref(), Some("bob@example.org"));
    assert_eq!(bob.phone, None);
    assert_eq!(bob.groups, ["staff"]);

    assert_eq!(lookup(&p, "nobody"), None);

    // The same users with groups from memberOf (the memberof overlay).
    let mut config = openldap_config(&slapd, &[slapd.url()]);
    config["attributes"]["groups"] = json!("memberOf");
    config
        .as_object_mut()
        .expect("object")
        .remove("group_search");
    let p = new_plugin(config);
    let alice = lookup(&p, "alice").expect("alice exists");
    assert_eq!(sorted(alice.groups), ["staff", "vpn"]);
    assert_eq!(lookup(&p, "bob").expect("bob").groups, ["staff"]);

    assert_eq!(p.health(), Ok(()));
}

#[test]
fn filter_metacharacters_never_widen_a_search() {
    let slapd = start_slapd();
    let p = new_plugin(openldap_config(&slapd, &[slapd.url()]));

    // A user literally named with metacharacters is found, and only them.
    let eve = lookup(&p, "eve*)(uid=*").expect("eve exists");
    assert_eq!(eve.username, "eve*)(uid=*");
    assert_eq!(eve.groups, Vec::<String>::new());

    for attempt in [
        "*",
        "a*",
        "alice)(uid=*",
        "*)(|(uid=*",
        "al\\2aice",
        "eve*",
        "bob)(mail=*",
    ] {
        assert_eq!(lookup(&p, attempt), None, "{attempt:?} matched someone");
        assert_eq!(
            p.check_password(attempt, "alice-pw"),
            Ok(false),
            "{attempt:?}"
        );
    }
    assert_eq!(p.check_password("eve*)(uid=*", "eve-pw"), Ok(true));
    assert_eq!(p.check_password("eve*)(uid=*", "alice-pw"), Ok(false));

    // Names refused before any query.
    assert_eq!(lookup(&p, &"a".repeat(300)), None);
    assert_eq!(lookup(&p, "alice\n"), None);
    assert_eq!(lookup(&p, "alice\0"), None);
}

#[test]
fn check_password_binds_as_the_user() {
    let slapd = start_slapd();
    let p = new_plugin(openldap_config(&slapd, &[slapd.url()]));

    assert_eq!(p.check_password("alice", "alice-pw"), Ok(true));
    assert_eq!(p.check_password("alice", "wrong"), Ok(false));
    assert_eq!(p.check_password("alice", ""), Ok(false));
    assert_eq!(p.check_password("Alice", "alice-pw"), Ok(true));
    assert_eq!(p.check_password("bob", "bob-pw"), Ok(true));
    assert_eq!(p.check_password("bob", "alice-pw"), Ok(false));
    assert_eq!(p.check_password("nobody", "alice-pw"), Ok(false));
    // A user without a password cannot bind.
    assert_eq!(p.check_password("twin", "anything"), Ok(false));

    // The shared service connection was not disturbed: only the service
    // account may read `mobile` (alice herself cannot), and it still can.
    let mut as_alice = LdapConn::new(&slapd.url()).expect("connect");
    as_alice
        .simple_bind(&format!("uid=alice,{PEOPLE}"), "alice-pw")
        .and_then(|r| r.success())
        .expect("alice binds");
    let ldap3::SearchResult(entries, _) = as_alice
        .search(
            &format!("uid=alice,{PEOPLE}"),
            ldap3::Scope::Base,
            "(objectClass=*)",
            vec!["mobile", "mail"],
        )
        .expect("alice reads herself");
    let own = ldap3::SearchEntry::construct(entries.into_iter().next().expect("own entry"));
    assert!(
        own.attrs.contains_key("mail") && !own.attrs.contains_key("mobile"),
        "{own:?}"
    );
    let alice = lookup(&p, "alice").expect("alice");
    assert_eq!(alice.phone.as_deref(), Some("+15550100"));

    // A wrong service password is reported as a refusal, without the password.
    let mut config = openldap_config(&slapd, &[slapd.url()]);
    config["bind_password_file"] = json!(service_password_file(&slapd, "not-the-service-secret"));
    let bad = new_plugin(config);
    let e = bad.lookup("alice").expect_err("bind refused");
    assert_eq!(e.kind, ErrorKind::Rejected, "{e}");
    assert!(e.message.contains("bind_dn"), "{e}");
    assert!(!e.message.contains("not-the-service-secret"), "{e}");
    assert_eq!(
        bad.health().err().map(|e| e.kind),
        Some(ErrorKind::Rejected)
    );
}

#[test]
fn list_users_pages_through_everyone() {
    let slapd = start_slapd();
    let mut config = openldap_config(&slapd, &[slapd.url()]);
    config["page_size"] = json!(1);
    let paged = new_plugin(config);
    let mut config = openldap_config(&slapd, &[slapd.url()]);
    config["page_size"] = json!(0);
    let unpaged = new_plugin(config);

    for p in [&paged, &unpaged] {
        let users = p.list_users().expect("list");
        let names = sorted(users.iter().map(|u| u.username.clone()).collect());
        assert_eq!(names, ["alice", "bob", "eve*)(uid=*", "twin"]);
        let alice = users.iter().find(|u| u.username == "alice").expect("alice");
        assert_eq!(sorted(alice.groups.clone()), ["staff", "vpn"]);
        assert_eq!(alice.phone.as_deref(), Some("+15550100"));
    }
}

#[test]
fn ambiguous_users_are_an_error() {
    let slapd = start_slapd();
    let mut config = openldap_config(&slapd, &[slapd.url()]);
    config["base_dn"] = json!(SUFFIX);
    let p = new_plugin(config);
    let e = p.lookup("twin").expect_err("ambiguous");
    assert_eq!(e.kind, ErrorKind::Internal);
    assert!(e.message.contains("ambiguous"), "{e}");
    assert!(p.check_password("twin", "x").is_err());
    assert!(lookup(&p, "alice").is_some());
}

#[test]
fn active_directory_style_config() {
    let slapd = start_slapd();
    let p = new_plugin(json!({
        "urls": [slapd.url()],
        "bind_dn": SERVICE_DN,
        "bind_password_file": service_password_file(&slapd, SERVICE_PW),
        "base_dn": SUFFIX,
        "user_filter": "(&(objectClass=pinwheelTestAdUser)(sAMAccountName={username}))",
        "attributes": { "username": "sAMAccountName", "email": "mail", "phone": "mobile", "groups": "memberOf" },
    }));
    let dave = lookup(&p, "DAVE").expect("dave");
    assert_eq!(dave.username, "dave");
    assert_eq!(dave.email.as_deref(), Some("dave@corp.example"));
    assert_eq!(dave.groups, ["VPN Users"]);
    assert!(dave.enabled);
    let dan = lookup(&p, "dan").expect("dan");
    assert!(!dan.enabled, "userAccountControl 514 is disabled");
    assert_eq!(p.check_password("dave", "dave-pw"), Ok(true));
    assert_eq!(p.check_password("dave", "x"), Ok(false));
    let names = sorted(
        p.list_users()
            .expect("list")
            .into_iter()
            .map(|u| u.username)
            .collect(),
    );
    assert_eq!(names, ["dan", "dave"]);
    // An AD user is not found by the OpenLDAP filter and vice versa.
    assert_eq!(lookup(&p, "alice"), None);
}

#[test]
fn failover_to_the_next_url() {
    let slapd = start_slapd();
    let dead = format!("ldap://127.0.0.1:{}", free_port());
    // A server that accepts TCP but never answers LDAP.
    let silent = TcpListener::bind("127.0.0.1:0").expect("silent listener");
    let silent_url = format!("ldap://{}", silent.local_addr().expect("addr"));

    let p = new_plugin(openldap_config(
        &slapd,
        &[dead.clone(), silent_url.clone(), slapd.url()],
    ));
    let start = Instant::now();
    assert_eq!(lookup(&p, "alice").expect("alice").username, "alice");
    let first = start.elapsed();
    assert!(
        first < Duration::from_secs(4),
        "first lookup took {first:?}"
    );
    // The dead and the silent server are now tried last: no second timeout.
    let start = Instant::now();
    assert_eq!(p.check_password("alice", "alice-pw"), Ok(true));
    assert_eq!(p.check_password("alice", "wrong"), Ok(false));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(p.health(), Ok(()));

    // Nothing answers: a quick, specific error naming every URL tried.
    let p = new_plugin(openldap_config(&slapd, &[dead.clone(), silent_url.clone()]));
    let start = Instant::now();
    let e = p.lookup("alice").expect_err("unavailable");
    let took = start.elapsed();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(
        e.message.contains(&dead) && e.message.contains(&silent_url),
        "{e}"
    );
    assert!(e.message.contains("timed out"), "{e}");
    assert!(
        took < Duration::from_secs(4),
        "took {took:?} with timeout = 2"
    );
    let e = p
        .check_password("alice", "alice-pw")
        .expect_err("unavailable");
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert_eq!(
        p.health().err().map(|e| e.kind),
        Some(ErrorKind::Unavailable)
    );
    assert_eq!(
        p.list_users().err().map(|e| e.kind),
        Some(ErrorKind::Unavailable)
    );
    drop(silent);
}

#[test]
fn reconnects_after_the_server_restarts() {
    let mut slapd = start_slapd();
    let p = new_plugin(openldap_config(&slapd, &[slapd.url()]));
    assert!(lookup(&p, "alice").is_some());
    slapd.restart();
    // The pooled connection is dead now; the plugin notices and reconnects.
    assert!(lookup(&p, "alice").is_some());
    assert!(lookup(&p, "bob").is_some());
    slapd.stop();
    let e = p.lookup("alice").expect_err("server gone");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
}

#[test]
fn tls_with_ldaps_and_starttls() {
    let slapd = start_slapd();
    let mut config = openldap_config(&slapd, &[slapd.tls_url()]);
    config["ca_file"] = json!(slapd.path("ca.pem"));
    let p = new_plugin(config);
    assert_eq!(
        lookup(&p, "alice").expect("alice").email.as_deref(),
        Some("alice@example.org")
    );
    assert_eq!(p.check_password("alice", "alice-pw"), Ok(true));

    let mut config = openldap_config(&slapd, &[slapd.url()]);
    config["ca_file"] = json!(slapd.path("ca.pem"));
    config["starttls"] = json!(true);
    let p = new_plugin(config);
    assert!(lookup(&p, "bob").is_some());
    assert_eq!(p.check_password("bob", "bob-pw"), Ok(true));

    // A certificate from another CA is refused.
    let mut config = openldap_config(&slapd, &[slapd.tls_url()]);
    config["ca_file"] = json!(slapd.path("other-ca.pem"));
    let p = new_plugin(config);
    let e = p.lookup("alice").expect_err("untrusted certificate");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(e.message.contains(&slapd.tls_url()), "{e}");
}

#[test]
fn a_missing_base_dn_is_a_clear_error() {
    let slapd = start_slapd();
    let mut config = openldap_config(&slapd, &[slapd.url()]);
    config["base_dn"] = json!(format!("ou=missing,{SUFFIX}"));
    let p = new_plugin(config);
    let e = p.health().expect_err("no such base");
    assert_eq!(e.kind, ErrorKind::Rejected, "{e}");
    assert!(
        e.message.contains(&slapd.url()) && e.message.contains("32"),
        "{e}"
    );
    let e = p.lookup("alice").expect_err("no such base");
    assert_eq!(e.kind, ErrorKind::Rejected, "{e}");
    assert_eq!(p.list_users().map_err(|e| e.kind), Err(ErrorKind::Rejected));
}
