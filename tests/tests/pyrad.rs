//! A second, independent RADIUS implementation on the wire: Debian's
//! `python3-pyrad` builds the PAP Access-Requests and decodes the replies.
//!
//! pyrad 2.1 (bookworm) has no Message-Authenticator support, so the script adds
//! one itself per RFC 3579 §3.2 (HMAC-MD5 over the request with the attribute's
//! value zeroed) and checks the reply's the same way: it must be the FIRST
//! attribute and verify over the reply with the Request Authenticator in the
//! Authenticator field. pyrad hides User-Password (`PwCrypt`), encodes the
//! attributes from a minimal dictionary, decodes the reply and checks its
//! Response Authenticator (`VerifyReply`). The script runs with Debian's own
//! `/usr/bin/python3`, where the package installs; tools/test.sh installs it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use pinwheel_tests::{alter_otc, mobile_otc, run, CmdOutput, Daemon, SECRET};

/// Debian's interpreter: python3-pyrad installs into its dist-packages.
const PYTHON: &str = "/usr/bin/python3";

/// The attributes the script uses, in FreeRADIUS dictionary syntax (which pyrad reads).
const DICTIONARY: &str = "\
ATTRIBUTE	User-Name		1	string
ATTRIBUTE	User-Password		2	string
ATTRIBUTE	Reply-Message		18	string
ATTRIBUTE	State			24	octets
ATTRIBUTE	NAS-Identifier		32	string
ATTRIBUTE	Proxy-State		33	octets
ATTRIBUTE	Message-Authenticator	80	octets
";

/// `pyrad_pap.py PORT SECRET DICTIONARY USER PASSWORD`: one PAP Access-Request with
/// Message-Authenticator first, NAS-Identifier and two Proxy-States; prints
/// `key=value` lines about the reply and exits 0, or exits non-zero saying why.
const SCRIPT: &str = r#"
import hashlib
import hmac
import socket
import sys

import pyrad.packet
from pyrad.dictionary import Dictionary

port, secret, dictionary, user, password = sys.argv[1:6]
secret = secret.encode()
MA = 80

req = pyrad.packet.AuthPacket(
    code=pyrad.packet.AccessRequest, id=0x5c, secret=secret, dict=Dictionary(dictionary)
)
# Message-Authenticator first, zeroed for now. Set by number: pyrad's octets
# encoder would read a value starting with "0x" as hex.
req[MA] = [bytes(16)]
req["User-Name"] = user
req["User-Password"] = req.PwCrypt(password)  # RFC 2865 section 5.2, by pyrad
req["NAS-Identifier"] = "pyrad-nas"
req.AddAttribute("Proxy-State", b"pyrad-proxy-1")
req.AddAttribute("Proxy-State", b"pyrad-proxy-2")
raw = req.RequestPacket()  # fixes the random Request Authenticator
if raw[20:38] != bytes([MA, 18]) + bytes(16):
    sys.exit("pyrad did not put the zeroed Message-Authenticator first")
# RFC 3579 section 3.2: HMAC-MD5 over the whole request, MA value zeroed.
req[MA] = [hmac.new(secret, raw, hashlib.md5).digest()]
raw = req.RequestPacket()

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(3)
reply_raw = None
for _ in range(3):  # a retransmission gets the cached reply
    sock.sendto(raw, ("127.0.0.1", int(port)))
    try:
        reply_raw = sock.recv(4096)
        break
    except socket.timeout:
        continue
if reply_raw is None:
    sys.exit("no reply")

reply = req.CreateReply(packet=reply_raw)
if not req.VerifyReply(reply, reply_raw):
    sys.exit("bad Response Authenticator or identifier")
print("code=%d" % reply.code)
print("response_authenticator=ok")

# Message-Authenticator: the first attribute, verified independently.
if reply_raw[20:22] != bytes([MA, 18]):
    sys.exit("reply's first attribute is not Message-Authenticator")
signed = reply_raw[:4] + req.authenticator + reply_raw[20:22] + bytes(16) + reply_raw[38:]
expected = hmac.new(secret, signed, hashlib.md5).digest()
if not hmac.compare_digest(expected, reply_raw[22:38]):
    sys.exit("reply's Message-Authenticator does not verify")
print("message_authenticator=first,valid")

proxy = reply[33] if 33 in reply else []
print("proxy_state=" + ",".join(v.decode() for v in proxy))
if "Reply-Message" in reply:
    print("reply_message=" + "|".join(reply["Reply-Message"]))
"#;

/// Debian's python3 with pyrad importable; fails (never skips) when it is missing.
fn python_with_pyrad() -> &'static str {
    let out = Command::new(PYTHON)
        .args(["-c", "import pyrad.packet, pyrad.dictionary"])
        .output();
    match out {
        Ok(o) if o.status.success() => PYTHON,
        other => panic!(
            "python3-pyrad is missing ({PYTHON} -c 'import pyrad' failed: {other:?}): \
             these tests need Debian's python3-pyrad, which tools/test.sh installs \
             (DEBIAN_FRONTEND=noninteractive apt-get install -y python3-pyrad)"
        ),
    }
}

/// The script and its dictionary, written to the daemon's temp dir.
struct Pyrad {
    python: &'static str,
    script: PathBuf,
    dictionary: PathBuf,
}

impl Pyrad {
    fn new(d: &Daemon) -> Pyrad {
        let python = python_with_pyrad();
        let script = d.path("pyrad_pap.py");
        let dictionary = d.path("pyrad.dictionary");
        fs::write(&script, SCRIPT).unwrap();
        fs::write(&dictionary, DICTIONARY).unwrap();
        Pyrad {
            python,
            script,
            dictionary,
        }
    }

    /// One PAP Access-Request to `d`; the script's output, which must succeed.
    fn auth(&self, d: &Daemon, user: &str, password: &str) -> Reply {
        let out = run(Command::new(self.python)
            .arg(&self.script)
            .arg(d.layout.radius_port.to_string())
            .arg(SECRET)
            .arg(&self.dictionary)
            .arg(user)
            .arg(password));
        assert!(out.success(), "pyrad client failed: {out}");
        Reply::parse(&out, &self.script)
    }
}

/// What the script reported about a reply.
#[derive(Debug)]
struct Reply {
    code: u8,
    proxy_state: String,
}

impl Reply {
    fn parse(out: &CmdOutput, script: &Path) -> Reply {
        let value = |key: &str| {
            out.stdout
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("no {key}= from {}: {out}", script.display()))
                .to_string()
        };
        assert_eq!(value("response_authenticator"), "ok", "{out}");
        assert_eq!(value("message_authenticator"), "first,valid", "{out}");
        Reply {
            code: value("code").parse().expect("numeric code"),
            proxy_state: value("proxy_state"),
        }
    }
}

const ACCESS_ACCEPT: u8 = 2;
const ACCESS_REJECT: u8 = 3;

#[test]
fn pyrad_pap_with_message_authenticator_accepts_once_and_rejects_replays_and_wrong_codes() {
    let d = Daemon::start_default();
    let pyrad = Pyrad::new(&d);
    let pin = "5813";
    d.add_user("alice", pin);
    let phone = d.path("alice.json");
    d.provision_device(&phone, "alice");

    let code = mobile_otc(&phone, pin, None);
    let fresh = pyrad.auth(&d, "alice", &code);
    assert_eq!(fresh.code, ACCESS_ACCEPT, "fresh code: {fresh:?}");
    // Proxy-State comes back unchanged and in order (RFC 2865 §5.33).
    assert_eq!(fresh.proxy_state, "pyrad-proxy-1,pyrad-proxy-2");

    let again = pyrad.auth(&d, "alice", &code);
    assert_eq!(again.code, ACCESS_REJECT, "same code again: {again:?}");
    assert_eq!(again.proxy_state, "pyrad-proxy-1,pyrad-proxy-2");

    let wrong = alter_otc(&mobile_otc(&phone, pin, None));
    let wrong_reply = pyrad.auth(&d, "alice", &wrong);
    assert_eq!(
        wrong_reply.code, ACCESS_REJECT,
        "wrong code: {wrong_reply:?}"
    );

    // The next fresh code still passes: pyrad's requests are not the problem.
    let next = mobile_otc(&phone, pin, None);
    assert_eq!(pyrad.auth(&d, "alice", &next).code, ACCESS_ACCEPT);
}
