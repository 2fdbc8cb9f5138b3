//! Users from an LDAP directory, end to end: a private OpenLDAP `slapd`
//! (started for each test on 127.0.0.1 at a port chosen at run time, with
//! its own config and database in a temporary folder, killed when the test
//! ends), the real LDAP plugin from the build, and the built daemon.
//!
//! Needs Debian's `slapd` and `ldap-utils` (tools/test.sh installs them).
//! The directory holds alice (mail, password) and bob (mail, password)
//! under ou=people, and the service account the plugin binds as.

use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pinwheel::otc::{extract, Pin, SecurityString};
use pinwheel::radius::codec::{self, Code};
use pinwheel_test_peers::slapd::{Options, Slapd, PEOPLE, SERVICE_DN, SERVICE_PW, SUFFIX};
use pinwheel_tests::{http_post, install_plugin, radclient_output, Daemon, SECRET};
use serde_json::json;

/// A private slapd with alice and bob under ou=people and the service
/// account the plugin binds as.
fn start_slapd() -> Slapd {
    let slapd = Slapd::start(&Options::default());
    load(&slapd);
    slapd
}

fn load(slapd: &Slapd) {
    let person = |uid: &str, mail: &str, pw: &str| {
        format!(
            "dn: uid={uid},{PEOPLE}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: {uid}\n\
             cn: {uid}\nsn: {uid}\nmail: {mail}\nuserPassword: {pw}\n\n"
        )
    };
    let mut ldif = format!(
        "dn: {SUFFIX}\nchangetype: add\nobjectClass: dcObject\nobjectClass: organization\n\
         dc: example\no: Example\n\n\
         dn: ou=people,{SUFFIX}\nchangetype: add\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=services,{SUFFIX}\nchangetype: add\nobjectClass: organizationalUnit\nou: services\n\n\
         dn: {SERVICE_DN}\nchangetype: add\nobjectClass: organizationalRole\n\
         objectClass: simpleSecurityObject\ncn: pinwheel\nuserPassword: {SERVICE_PW}\n\n"
    );
    ldif.push_str(&person("alice", "alice@example.org", "alice-pw"));
    ldif.push_str(&person("bob", "bob@example.org", "bob-pw"));
    slapd.modify(&ldif);
}

/// A daemon with the LDAP plugin as directory `corp` (no scheduled sync).
fn daemon_with(slapd: &Slapd, two_stage: bool) -> Daemon {
    daemon_at(slapd.dir(), &slapd.url(), two_stage, "", "")
}

/// A daemon with the LDAP plugin as directory `corp` at `url` (plugin and
/// service password kept in `dir`); `entry_extra`: raw TOML lines of the
/// `[[directory]]` entry; `after`: raw TOML appended to the file.
fn daemon_at(dir: &Path, url: &str, two_stage: bool, entry_extra: &str, after: &str) -> Daemon {
    let folder = dir.join("plugins");
    let plugin = install_plugin(&folder, "pinwheel-directory-ldap", 0o644);
    let pw_file = dir.join("service.pw");
    std::fs::write(&pw_file, format!("{SERVICE_PW}\n")).expect("password file");
    let s = |v: &str| serde_json::to_string(v).expect("TOML string");
    let extra = format!(
        "\n[plugins]\nfolder = {folder}\n\n[[directory]]\nname = \"corp\"\nplugin = {plugin}\n\
         sync_interval = \"0\"\n{entry_extra}\n[directory.config]\nurls = [{url}]\nbind_dn = {bind}\n\
         bind_password_file = {pw}\nbase_dn = {base}\ntimeout = 5\n\n\
         [directory.config.attributes]\nusername = \"uid\"\nemail = \"mail\"\nphone = \"mobile\"\n\
         groups = \"\"\n\n{after}",
        folder = s(&folder.to_string_lossy()),
        plugin = s(&plugin.to_string_lossy()),
        url = s(url),
        bind = s(SERVICE_DN),
        pw = s(&pw_file.to_string_lossy()),
        base = s(PEOPLE),
    );
    Daemon::start(|c| {
        c.two_stage = two_stage;
        c.extra = extra;
    })
}

/// Waits up to 30 s for a spool message of `kind` to `user`.
fn wait_message(d: &Daemon, user: &str, kind: &str) -> pinwheel_tests::SpoolMessage {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(m) = d.spool_for(user, kind).last() {
            return m.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} message for {user}; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn first_leg(d: &Daemon, user: &str, password: &str) -> String {
    radclient_output(
        d.layout.radius_port,
        "auth",
        SECRET,
        &format!(
            "User-Name = \"{user}\"\nUser-Password = \"{password}\"\nMessage-Authenticator = 0x00\n"
        ),
        3,
        1,
    )
    .1
}

fn second_leg(d: &Daemon, user: &str, state: &str, code: &str) -> String {
    radclient_output(
        d.layout.radius_port,
        "auth",
        SECRET,
        &format!(
            "User-Name = \"{user}\"\nUser-Password = \"{code}\"\nState = {state}\nMessage-Authenticator = 0x00\n"
        ),
        3,
        1,
    )
    .1
}

fn challenge_state(out: &str) -> String {
    assert!(out.contains("Received Access-Challenge"), "{out}");
    out.lines()
        .find_map(|l| l.trim().strip_prefix("State = "))
        .unwrap_or_else(|| panic!("State in the challenge: {out}"))
        .trim()
        .to_string()
}

#[test]
fn ldap_user_is_created_at_first_provision_request() {
    let slapd = start_slapd();
    let d = daemon_with(&slapd, false);
    let out = d.ctl(&["user", "show", "alice"]);
    assert!(!out.success(), "alice is not stored yet: {out}");

    let reply = http_post(
        &d.url("/api/v1/provision/request"),
        &json!({"username": "alice"}),
        None,
    );
    assert_eq!(reply.status, 202, "{reply:?}");
    let code = d.wait_provision_message("alice", 0);
    assert_eq!(code.to, "alice@example.org", "sent to the LDAP mail");
    // The generated PIN went to the same address, before the code.
    let pin = wait_message(&d, "alice", "pin");
    assert_eq!(pin.to, "alice@example.org");
    assert!(pin.file_name < code.file_name, "PIN first");

    let shown = d.ctl_ok(&["user", "show", "alice"]);
    assert!(shown.contains("directory: corp"), "{shown}");
    assert!(shown.contains("alice@example.org"), "{shown}");
    assert!(shown.contains("pin:       set"), "{shown}");

    // A second request neither creates again nor sends another PIN.
    let reply = http_post(
        &d.url("/api/v1/provision/request"),
        &json!({"username": "alice"}),
        None,
    );
    assert_eq!(reply.status, 202);
    d.wait_provision_message("alice", 1);
    assert_eq!(d.spool_for("alice", "pin").len(), 1);

    // Unknown everywhere: the same 202, nothing sent, nothing stored.
    let reply = http_post(
        &d.url("/api/v1/provision/request"),
        &json!({"username": "mallory"}),
        None,
    );
    assert_eq!(reply.status, 202);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!d.ctl(&["user", "show", "mallory"]).success());
    assert!(!d.log().contains("alice-pw"));
}

#[test]
fn two_stage_login_checks_the_ldap_password() {
    let slapd = start_slapd();
    let d = daemon_with(&slapd, true);
    // A wrong LDAP password is rejected; an empty one gets the decoy
    // challenge everyone without the right password gets, whose State never
    // works. Neither makes bob's record nor sends him anything.
    let out = first_leg(&d, "bob", "not-bobs-pw");
    assert!(
        out.contains("Received Access-Reject"),
        "wrong password: {out}"
    );
    let state = challenge_state(&first_leg(&d, "bob", ""));
    let out = second_leg(&d, "bob", &state, "1234");
    assert!(out.contains("Received Access-Reject"), "{out}");
    assert!(
        !d.ctl(&["user", "show", "bob"]).success(),
        "no record for bob"
    );
    assert!(d.spool_for("bob", "pin").is_empty(), "no PIN for bob");

    // The right one: a challenge, and the string goes to the LDAP mail.
    let state = challenge_state(&first_leg(&d, "alice", "alice-pw"));
    let pin = wait_message(&d, "alice", "pin")
        .body_value("Your Pinwheel PIN is:")
        .expect("PIN in the message");
    let sent = wait_message(&d, "alice", "security-string");
    assert_eq!(sent.to, "alice@example.org");
    let string = sent
        .body_value("Your security string is: ")
        .expect("string");
    let code = extract(
        &SecurityString::parse(&string).expect("string"),
        &Pin::parse(&pin, 4, 10).expect("PIN"),
    );
    let out = second_leg(&d, "alice", &state, &code);
    assert!(out.contains("Received Access-Accept"), "{out}");

    let shown = d.ctl_ok(&["user", "show", "alice"]);
    assert!(shown.contains("directory: corp"), "{shown}");
    let log = d.log();
    assert!(
        !log.contains("alice-pw") && !log.contains("not-bobs-pw"),
        "no password in the log"
    );
}

#[test]
fn sync_updates_attributes_and_disables_users_gone_from_ldap() {
    let slapd = start_slapd();
    let d = daemon_with(&slapd, true);
    d.add_user("zed", "4821");
    let out = d.ctl_ok(&["directory", "sync", "corp"]);
    assert!(
        out.contains("directory corp sync: 2 listed, 0 updated, 2 created, 0 disabled"),
        "{out}"
    );
    // Created by the sync without sending anything.
    assert!(d.spool_for("alice", "pin").is_empty());
    let shown = d.ctl_ok(&["user", "show", "bob"]);
    assert!(
        shown.contains("directory: corp") && shown.contains("pin:       not set"),
        "{shown}"
    );

    slapd.delete(&format!("uid=bob,{PEOPLE}"));
    slapd.modify(&format!(
        "dn: uid=alice,{PEOPLE}\nchangetype: modify\nreplace: mail\nmail: alice@new.example\n\n"
    ));
    let out = d.ctl_ok(&["directory", "sync", "corp"]);
    assert!(
        out.contains("directory corp sync: 1 listed, 1 updated, 0 created, 1 disabled"),
        "{out}"
    );
    assert!(
        d.wait_log_lines(
            &["directory corp sync: 1 listed, 1 updated, 0 created, 1 disabled"],
            1
        ) >= 1,
        "the log line: {}",
        d.log()
    );
    let bob = d.ctl_ok(&["user", "show", "bob"]);
    assert!(bob.contains("enabled:   no"), "{bob}");
    let alice = d.ctl_ok(&["user", "show", "alice"]);
    assert!(
        alice.contains("alice@new.example") && alice.contains("enabled:   yes"),
        "{alice}"
    );
    // Local users are never touched.
    let zed = d.ctl_ok(&["user", "show", "zed"]);
    assert!(
        zed.contains("directory: local") && zed.contains("enabled:   yes"),
        "{zed}"
    );

    // bob is rejected; alice's string now goes to her new address.
    let out = first_leg(&d, "bob", "bob-pw");
    assert!(out.contains("Received Access-Reject"), "{out}");
    challenge_state(&first_leg(&d, "alice", "alice-pw"));
    assert_eq!(
        wait_message(&d, "alice", "security-string").to,
        "alice@new.example"
    );

    // A directory that is down: the sync fails and changes nothing.
    drop(slapd);
    let out = d.ctl(&["directory", "sync", "corp"]);
    assert!(!out.success(), "{out}");
    let alice = d.ctl_ok(&["user", "show", "alice"]);
    assert!(alice.contains("enabled:   yes"), "{alice}");
    // An unknown directory is a clear error.
    let out = d.ctl(&["directory", "sync", "nosuch"]);
    assert!(
        !out.success() && out.stderr.contains("no directory named"),
        "{out}"
    );
}

/// Sends SIGHUP and waits for the `n`-th "configuration reloaded" line.
fn reload(d: &Daemon, n: usize) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    assert!(
        d.wait_log_lines(&["configuration reloaded:"], n) >= n,
        "no reload #{n}; log:\n{}",
        d.log()
    );
}

#[test]
fn sync_with_an_empty_listing_is_refused_unless_forced() {
    let slapd = start_slapd();
    let d = daemon_with(&slapd, false);
    let out = d.ctl_ok(&["directory", "sync", "corp"]);
    assert!(
        out.contains("directory corp sync: 2 listed, 0 updated, 2 created, 0 disabled"),
        "{out}"
    );
    // A filter matching nobody (as a wrong base_dn or a lost read right).
    let text = std::fs::read_to_string(d.config_path()).expect("config");
    let text = text.replacen(
        "[directory.config]\n",
        "[directory.config]\nlist_filter = \"(uid=nomatch)\"\n",
        1,
    );
    std::fs::write(d.config_path(), text).expect("config");
    reload(&d, 1);

    let out = d.ctl(&["directory", "sync", "corp"]);
    let refusal = "directory corp sync refused: it would disable 2 of 2 users; \
                   check list_filter/base_dn, or run `pinwheelctl directory sync corp --force`";
    assert!(!out.success() && out.stderr.contains(refusal), "{out}");
    assert!(
        d.wait_log_lines(&["ERROR", refusal], 1) >= 1,
        "an ERROR line; log:\n{}",
        d.log()
    );
    for user in ["alice", "bob"] {
        let shown = d.ctl_ok(&["user", "show", user]);
        assert!(shown.contains("enabled:   yes"), "{shown}");
    }

    // --force applies it.
    let out = d.ctl_ok(&["directory", "sync", "corp", "--force"]);
    assert!(
        out.contains("directory corp sync: 0 listed, 0 updated, 0 created, 2 disabled"),
        "{out}"
    );
    let shown = d.ctl_ok(&["user", "show", "alice"]);
    assert!(shown.contains("enabled:   no"), "{shown}");
}

/// Sets `user`'s local directory password with `pinwheelctl user set-password`
/// (read from standard input).
fn set_local_password(d: &Daemon, user: &str, password: &str) {
    let mut ctl = Command::new(pinwheel_tests::bin("pinwheelctl"))
        .arg("--config")
        .arg(d.config_path())
        .args(["user", "set-password", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pinwheelctl");
    ctl.stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("password to pinwheelctl");
    let out = ctl.wait_with_output().expect("pinwheelctl output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `dual_channel.first_leg_min_delay` by default.
const FIRST_LEG_MIN_DELAY: Duration = Duration::from_millis(500);

#[test]
fn two_stage_first_leg_does_not_reveal_who_exists() {
    let slapd = start_slapd();
    let d = daemon_with(&slapd, true);
    d.add_user("carol", "5601");
    set_local_password(&d, "carol", "carols-pw");
    // Unknown everywhere, in LDAP but not stored yet, local with a password:
    // the same answers, none sooner than the minimum delay.
    for user in ["mallory", "bob", "carol"] {
        let start = Instant::now();
        let out = first_leg(&d, user, "");
        let took = start.elapsed();
        eprintln!("{user}: empty password answered in {took:?}");
        let state = challenge_state(&out);
        assert!(
            out.contains("Reply-Message = \"One-Time Code\""),
            "{user}: {out}"
        );
        assert!(
            took >= FIRST_LEG_MIN_DELAY,
            "{user}: empty password answered after {took:?}"
        );
        let out = second_leg(&d, user, &state, "1234");
        assert!(
            out.contains("Received Access-Reject"),
            "{user}: the decoy State never works: {out}"
        );

        let start = Instant::now();
        let out = first_leg(&d, user, "wrong-pw");
        let took = start.elapsed();
        eprintln!("{user}: wrong password answered in {took:?}");
        assert!(
            out.contains("Received Access-Reject"),
            "{user}: wrong password: {out}"
        );
        assert!(
            took >= FIRST_LEG_MIN_DELAY,
            "{user}: wrong password answered after {took:?}"
        );
    }
    // Nothing was created and nothing sent.
    for user in ["mallory", "bob"] {
        assert!(
            !d.ctl(&["user", "show", user]).success(),
            "{user} must not be stored"
        );
    }
    let sent = pinwheel_tests::spool_messages(d.spool_dir());
    assert!(sent.is_empty(), "nothing sent: {sent:?}");
    let rows = d.ctl_ok(&["--json", "audit", "--user", "bob"]);
    assert!(rows.contains("wrong_password"), "{rows}");

    // The right passwords still work, and only then is bob's record made.
    let state = challenge_state(&first_leg(&d, "bob", "bob-pw"));
    assert!(state.len() >= 2 + 64, "a real 32-byte State: {state}");
    wait_message(&d, "bob", "pin");
    wait_message(&d, "bob", "security-string");
    let shown = d.ctl_ok(&["user", "show", "bob"]);
    assert!(shown.contains("directory: corp"), "{shown}");
    challenge_state(&first_leg(&d, "carol", "carols-pw"));
    wait_message(&d, "carol", "security-string");
    let log = d.log();
    assert!(
        !log.contains("carols-pw") && !log.contains("bob-pw") && !log.contains("wrong-pw"),
        "no password in the log"
    );
}

/// Reads one RADIUS reply on `socket` to `packet`, sent to `port`; returns
/// its code and how long it took.
fn exchange(socket: &UdpSocket, port: u16, packet: &[u8]) -> (Code, Duration) {
    let start = Instant::now();
    socket
        .send_to(packet, ("127.0.0.1", port))
        .expect("send to pinwheeld");
    let mut buf = [0u8; 4096];
    let (len, _) = socket
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no reply within 5 s: {e}"));
    let took = start.elapsed();
    let authenticator = codec::request_authenticator(packet).expect("authenticator");
    let reply = codec::decode_reply(&buf[..len], &authenticator, SECRET.as_bytes())
        .expect("a reply signed with the secret");
    (reply.code, took)
}

#[test]
fn hung_directory_and_first_leg_flood_do_not_stall_other_requests() {
    // A directory server that accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").expect("silent listener");
    let url = format!("ldap://{}", silent.local_addr().expect("address"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming().flatten() {
            held.push(conn);
        }
    });
    let dir = tempfile::tempdir().expect("temp dir");
    // A second NAS at 127.0.0.2, without two-stage: plain PAP.
    let other = format!(
        "[[radius.client]]\nname = \"other-nas\"\naddress = \"127.0.0.2/32\"\nsecret = \"{SECRET}\"\n"
    );
    let d = daemon_at(
        dir.path(),
        &url,
        true,
        "timeout = \"5s\"\nmax_concurrent = 4\n",
        &other,
    );
    d.add_user("carol", "5601");
    let port = d.layout.radius_port;

    // About 100 first legs a second of made-up names from the first NAS, for
    // 4 s: more than radius.max_in_flight (256) would wait for the directory
    // at once if first legs took the shared slots.
    const FLOOD: usize = 400;
    let flood = std::thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("flood socket");
        for i in 0..FLOOD {
            let name = format!("nobody-{}-{i}", std::process::id());
            let packet = codec::encode_access_request(
                i as u8,
                &name,
                b"guess",
                &[],
                SECRET.as_bytes(),
                true,
            )
            .expect("first leg");
            socket
                .send_to(&packet, ("127.0.0.1", port))
                .expect("send first leg");
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    std::thread::sleep(Duration::from_millis(3000));

    // Meanwhile a PAP request from the other NAS is answered at once...
    let other_nas = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2 (loopback)");
    other_nas
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    for id in 0..3u8 {
        let packet =
            codec::encode_access_request(id, "carol", b"000000", &[], SECRET.as_bytes(), true)
                .expect("PAP request");
        let (code, took) = exchange(&other_nas, port, &packet);
        eprintln!("PAP from the other NAS during the flood: {took:?}");
        assert_eq!(code, Code::AccessReject, "wrong code rejected");
        assert!(
            took < Duration::from_secs(1),
            "PAP during the flood took {took:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // ... and so is Status-Server from the flooding NAS itself.
    let start = Instant::now();
    let (_, out) = radclient_output(
        port,
        "status",
        SECRET,
        "Message-Authenticator = 0x00\n",
        1,
        1,
    );
    let took = start.elapsed();
    eprintln!("Status-Server (radclient) during the flood: {took:?}");
    assert!(out.contains("Received Access-Accept"), "{out}");
    assert!(
        took < Duration::from_secs(1),
        "Status-Server during the flood took {took:?}"
    );
    flood.join().expect("flood thread");

    // Once the directory calls have timed out, the log holds far fewer
    // warnings than packets (drops and directory errors are rate-limited).
    std::thread::sleep(Duration::from_secs(7));
    let log = d.log();
    let warnings = log.lines().filter(|l| l.contains("WARN")).count();
    eprintln!("{warnings} warning lines for {FLOOD} first legs");
    assert!(
        warnings < FLOOD,
        "{warnings} warning lines for {FLOOD} packets:\n{log}"
    );
    assert!(!log.contains("guess"), "no password in the log");
}
