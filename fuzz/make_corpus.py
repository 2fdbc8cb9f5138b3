#!/usr/bin/env python3
"""Write the seed corpus of the radius_decode fuzz target to corpus/radius_decode/.

Every packet is signed with the target's fixed secret (xyzzy5461, the secret of the
RFC 2865 section 7.1 and RFC 5997 section 6.1 examples) and has a fixed Request
Authenticator, so running this again writes the same bytes. The packets are the ones
the codec's own tests use (daemon/src/radius/codec.rs): the two RFC examples, an
Accounting-Request with and without Message-Authenticator, Proxy-State packets,
Message-Authenticator in the middle and last, and truncated or malformed framing.
Only the standard library is used: python3 fuzz/make_corpus.py
"""

import hashlib
import hmac
import os
import struct

SECRET = b"xyzzy5461"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "radius_decode")

# RFC 2865 section 7.1: Access-Request for "nemo"/"arctangent" (secret xyzzy5461).
RFC2865_REQUEST = bytes.fromhex(
    "01000038"
    "0f403f9473978057bd83d5cb98f4227a"
    "01066e656d6f"
    "02120dbe708d93d413ce3196e43f782a0aee"
    "0406c0a80110"
    "050600000003"
)
# RFC 5997 section 6.1: Status-Server, id 218, Message-Authenticator.
RFC5997_STATUS_SERVER = bytes.fromhex(
    "0cda0026"
    "8a54f4686fb394c52866e302185d0623"
    "50125a665e2e1e8411f3e243822097c84fa3"
)


def attribute(kind, value):
    return bytes([kind, len(value) + 2]) + value


def packet(code, ident, auth, attrs):
    return struct.pack("!BBH", code, ident, 20 + len(attrs)) + auth + attrs


def hide(password, auth):
    """RFC 2865 section 5.2 User-Password hiding."""
    buf = password + b"\0" * (-len(password) % 16) if password else b"\0" * 16
    out, prev = b"", auth
    for i in range(0, len(buf), 16):
        pad = hashlib.md5(SECRET + prev).digest()
        block = bytes(a ^ b for a, b in zip(buf[i:i + 16], pad))
        out += block
        prev = block
    return out


def sign_ma(pkt, vector):
    """Fill the (zeroed) Message-Authenticator per RFC 3579 section 3.2."""
    at = pkt.find(b"\x50\x12" + b"\0" * 16, 20) + 2
    assert at >= 22, "no zeroed Message-Authenticator"
    copy = pkt[:4] + vector + pkt[20:]
    mac = hmac.new(SECRET, copy, hashlib.md5).digest()
    return pkt[:at] + mac + pkt[at + 16:]


def sign_accounting(pkt):
    """RFC 2866 section 3 Request Authenticator (MA first, if any)."""
    zero = b"\0" * 16
    if b"\x50\x12" + zero in pkt[20:]:
        pkt = sign_ma(pkt, zero)
    digest = hashlib.md5(pkt[:4] + zero + pkt[20:] + SECRET).digest()
    return pkt[:4] + digest + pkt[20:]


def access_request(ident, auth, attrs_with_password, ma=True):
    pkt = packet(1, ident, auth, attrs_with_password)
    return sign_ma(pkt, auth) if ma else pkt


MA_ZERO = attribute(80, b"\0" * 16)


def main():
    seeds = {}
    seeds["rfc2865-7.1-access-request"] = RFC2865_REQUEST
    seeds["rfc5997-6.1-status-server"] = RFC5997_STATUS_SERVER

    # Accounting-Request as in accounting_request_authenticator_and_response.
    acct = attribute(40, b"\0\0\0\x01") + attribute(44, b"abc") + attribute(33, b"ps")
    seeds["accounting-request"] = sign_accounting(packet(4, 9, b"\0" * 16, acct))
    seeds["accounting-request-with-ma"] = sign_accounting(
        packet(4, 1, b"\0" * 16, MA_ZERO + attribute(40, b"\0\0\0\x02"))
    )

    # Access-Request with MA first and Proxy-State around NAS-Identifier.
    auth = bytes(range(1, 17))
    seeds["access-request-proxy-state"] = access_request(
        3,
        auth,
        MA_ZERO
        + attribute(1, b"carol")
        + attribute(2, hide(b"pw", auth))
        + attribute(33, b"first")
        + attribute(32, b"vpn-gw")
        + attribute(33, b"second")
        + attribute(33, b"third"),
    )
    # Repeated non-adjacent attributes, MA last.
    auth = bytes(range(0xA0, 0xB0))
    seeds["access-request-ma-last"] = access_request(
        7,
        auth,
        attribute(33, b"\x01")
        + attribute(1, b"alice")
        + attribute(2, hide(b"123456", auth))
        + attribute(32, b"nas-1")
        + attribute(33, b"\x02")
        + MA_ZERO,
    )
    # MA in the middle.
    auth = bytes(range(0x40, 0x50))
    seeds["access-request-ma-middle"] = access_request(
        42,
        auth,
        attribute(1, b"bob") + MA_ZERO + attribute(2, hide(b"746912", auth)) + attribute(32, b"gw"),
    )
    # No MA, a zero-length Proxy-State (echoed as is) and a 128-byte password.
    auth = bytes(range(0x10, 0x20))
    seeds["access-request-empty-proxy-state"] = access_request(
        5,
        auth,
        attribute(1, b"dave") + attribute(2, hide(b"p" * 128, auth)) + bytes([33, 2]),
        ma=False,
    )

    # Malformed framing, from malformed_requests_return_specific_errors.
    good = RFC2865_REQUEST
    seeds["truncated-header"] = good[:19]
    seeds["truncated-datagram"] = good[:55]
    seeds["length-cuts-attribute"] = good[:2] + struct.pack("!H", 30) + good[4:]
    seeds["attribute-length-zero"] = good[:21] + b"\0" + good[22:]
    seeds["lone-type-octet"] = packet(1, 0, b"\x01" * 16, bytes([1, 3, ord("x"), 4]))

    os.makedirs(OUT, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds)} seeds to {OUT}")


if __name__ == "__main__":
    main()
