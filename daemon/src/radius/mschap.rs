//! MS-CHAPv2 for a RADIUS server that knows the user's one-time code in clear.
//!
//! This module owns the MS-CHAPv2 arithmetic of RFC 2759 §8 (ChallengeHash,
//! NtPasswordHash, HashNtPasswordHash, ChallengeResponse, DesEncrypt,
//! GenerateNTResponse and GenerateAuthenticatorResponse), the constant-time check of a
//! peer's NT-Response, the layout of the Microsoft vendor-specific attributes that carry
//! MS-CHAPv2 in RADIUS (MS-CHAP-Challenge, MS-CHAP2-Response and MS-CHAP2-Success,
//! RFC 2548 §2.1.2, §2.3.2, §2.3.3) and the framing of Vendor-Specific attribute values
//! (RFC 2865 §5.26, RFC 2548 §2).
//!
//! It must never open a socket, read a clock or a file, log anything, keep a password
//! or a password hash beyond the call, decide policy (which users may use MS-CHAPv2,
//! how many retries are allowed, what goes into an MS-CHAP-Error), or panic on any
//! input bytes: every malformed attribute value is an [`MsChapError`]. It does not
//! handle the RADIUS packet itself (see `codec`), MS-CHAPv1, password change
//! (RFC 2759 §8.9–§8.13) or MPPE keys (RFC 3079).
//!
//! User names are hashed without any `DOMAIN\` prefix (RFC 2759 §8.2): every function
//! here that takes a user name applies [`strip_domain`] itself, so callers may pass
//! the User-Name as received (stripping twice is harmless).
//!
//! The Flags and Reserved fields of an MS-CHAP2-Response "MUST be zero" for the sender
//! (RFC 2548 §2.3.2); like common servers, [`parse_response`] ignores them rather than
//! rejecting the response: they carry no meaning and do not enter any hash.

#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use des::cipher::{BlockEncrypt, KeyInit};
use des::Des;
use md4::{Digest, Md4};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// SMI Network Management Private Enterprise Code of Microsoft, the Vendor-Id of the
/// MS-CHAP attributes (RFC 2548 §2).
pub const VENDOR_MICROSOFT: u32 = 311;

/// Vendor-Type of MS-CHAP-Error (RFC 2548 §2.1.5): Ident (1 octet) then ASCII text,
/// in Access-Reject.
pub const MS_CHAP_ERROR: u8 = 2;

/// Vendor-Type of MS-CHAP-Challenge (RFC 2548 §2.1.2): for MS-CHAPv2 the 16-octet
/// authenticator challenge.
pub const MS_CHAP_CHALLENGE: u8 = 11;

/// Vendor-Type of MS-CHAP2-Response (RFC 2548 §2.3.2): 50 octets, see
/// [`parse_response`].
pub const MS_CHAP2_RESPONSE: u8 = 25;

/// Vendor-Type of MS-CHAP2-Success (RFC 2548 §2.3.3): Ident (1 octet) then the
/// 42-octet authenticator response `S=<40 uppercase hex digits>`, in Access-Accept.
pub const MS_CHAP2_SUCCESS: u8 = 26;

/// Length of an MS-CHAP2-Response value, in octets: Ident (1), Flags (1),
/// Peer-Challenge (16), Reserved (8), NT-Response (24) (RFC 2548 §2.3.2).
pub const MS_CHAP2_RESPONSE_LEN: usize = 50;

/// Length of an authenticator or peer challenge, in octets (RFC 2759 §4).
pub const CHALLENGE_LEN: usize = 16;

/// Length of an NT-Response, in octets (RFC 2759 §8.1).
pub const NT_RESPONSE_LEN: usize = 24;

/// Length of an authenticator response string `S=` + 40 hex digits, in octets
/// (RFC 2759 §8.7).
pub const AUTHENTICATOR_RESPONSE_LEN: usize = 42;

/// Largest data of one vendor sub-attribute, in octets: the 253-octet attribute value
/// minus the 4-octet Vendor-Id and the Vendor-Type and Vendor-Length octets
/// (RFC 2865 §5, §5.26).
pub const MAX_VENDOR_DATA_LEN: usize = 247;

/// Length of the Vendor-Id at the start of a Vendor-Specific value, in octets
/// (RFC 2865 §5.26).
const VENDOR_ID_LEN: usize = 4;

/// Largest Vendor-Id: the high-order octet must be zero (RFC 2865 §5.26).
const MAX_VENDOR_ID: u32 = 0x00FF_FFFF;

/// "Magic server to client signing constant" (RFC 2759 §8.7 Magic1).
const MAGIC1: &[u8; 39] = b"Magic server to client signing constant";

/// "Pad to make it do more than one iteration" (RFC 2759 §8.7 Magic2).
const MAGIC2: &[u8; 41] = b"Pad to make it do more than one iteration";

/// Everything that can be wrong with an attribute value read or written here. Messages
/// carry lengths, offsets and vendor numbers only, never attribute contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsChapError {
    /// An MS-CHAP2-Response value is not exactly [`MS_CHAP2_RESPONSE_LEN`] octets
    /// (RFC 2548 §2.3.2).
    #[error("MS-CHAP2-Response value is {len} octets, expected {MS_CHAP2_RESPONSE_LEN}")]
    ResponseLength {
        /// Length of the value received, in octets.
        len: usize,
    },
    /// A Vendor-Specific value is shorter than a Vendor-Id followed by one sub-attribute
    /// header (6 octets; RFC 2865 §5.26 requires at least 5, RFC 2548 §2 a
    /// Vendor-Type and a Vendor-Length).
    #[error("Vendor-Specific value of {len} octets is too short")]
    VendorSpecificTooShort {
        /// Length of the value received, in octets.
        len: usize,
    },
    /// A Vendor-Id whose high-order octet is not zero (RFC 2865 §5.26).
    #[error("Vendor-Id {vendor_id} does not fit in 24 bits")]
    BadVendorId {
        /// The Vendor-Id read or asked for.
        vendor_id: u32,
    },
    /// The vendor sub-attribute whose Vendor-Type octet is at `offset` (from the start
    /// of the Vendor-Specific value) has a Vendor-Length below 2, overruns the value, or
    /// is cut off after its Vendor-Type octet (RFC 2548 §2).
    #[error("malformed vendor sub-attribute at octet offset {offset}")]
    BadSubAttribute {
        /// Offset of the sub-attribute's Vendor-Type octet from the start of the value.
        offset: usize,
    },
    /// Sub-attribute data to encode is longer than [`MAX_VENDOR_DATA_LEN`] octets.
    #[error("vendor sub-attribute data of {len} octets exceeds {MAX_VENDOR_DATA_LEN}")]
    VendorDataTooLong {
        /// Length of the data asked for, in octets.
        len: usize,
    },
}

/// The fields of an MS-CHAP2-Response that enter the verification (RFC 2548 §2.3.2,
/// RFC 2759 §4). Flags and Reserved are not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsChap2Response {
    /// The PPP MS-CHAPv2 Identifier, to be echoed in MS-CHAP2-Success / MS-CHAP-Error.
    pub ident: u8,
    /// The peer's 16-octet random challenge.
    pub peer_challenge: [u8; CHALLENGE_LEN],
    /// The 24-octet NT-Response (RFC 2759 §8.1).
    pub nt_response: [u8; NT_RESPONSE_LEN],
}

/// Parses the value (Vendor-Type and Vendor-Length already removed) of an
/// MS-CHAP2-Response sub-attribute: exactly 50 octets laid out as Ident (1), Flags (1),
/// Peer-Challenge (16), Reserved (8), NT-Response (24) (RFC 2548 §2.3.2).
///
/// Flags and Reserved are ignored (see the module documentation).
///
/// # Errors
/// [`MsChapError::ResponseLength`] if `value` is not exactly
/// [`MS_CHAP2_RESPONSE_LEN`] octets.
pub fn parse_response(value: &[u8]) -> Result<MsChap2Response, MsChapError> {
    let len = value.len();
    let bad = || MsChapError::ResponseLength { len };
    if len != MS_CHAP2_RESPONSE_LEN {
        return Err(bad());
    }
    let (&[ident, _flags], rest) = value.split_first_chunk::<2>().ok_or_else(bad)?;
    let (peer_challenge, rest) = rest.split_first_chunk::<CHALLENGE_LEN>().ok_or_else(bad)?;
    let (_reserved, rest) = rest.split_first_chunk::<8>().ok_or_else(bad)?;
    let nt_response: &[u8; NT_RESPONSE_LEN] = rest.try_into().map_err(|_| bad())?;
    Ok(MsChap2Response {
        ident,
        peer_challenge: *peer_challenge,
        nt_response: *nt_response,
    })
}

/// Splits the value of a Vendor-Specific attribute (type 26; Type and Length already
/// removed) into its sub-attributes: a 4-octet big-endian Vendor-Id, then one or more
/// Vendor-Type (1) / Vendor-Length (1) / data triples, where Vendor-Length counts its
/// own two header octets (RFC 2865 §5.26, RFC 2548 §2).
///
/// Returns `(vendor_id, vendor_type, data)` for each sub-attribute, in wire order; the
/// Vendor-Id is repeated in every tuple. Only vendors that use this recommended layout
/// (Microsoft does) can be read this way.
///
/// # Errors
/// * [`MsChapError::VendorSpecificTooShort`] if `value` has fewer than 6 octets;
/// * [`MsChapError::BadVendorId`] if the Vendor-Id's high-order octet is not zero;
/// * [`MsChapError::BadSubAttribute`] for a sub-attribute with a Vendor-Length below 2,
///   one that overruns the value, or one octet left over after the last sub-attribute.
pub fn parse_vendor_specific(value: &[u8]) -> Result<Vec<(u32, u8, Vec<u8>)>, MsChapError> {
    let too_short = MsChapError::VendorSpecificTooShort { len: value.len() };
    let Some((vendor_id, mut rest)) = value.split_first_chunk::<VENDOR_ID_LEN>() else {
        return Err(too_short);
    };
    if rest.len() < 2 {
        return Err(too_short);
    }
    let vendor_id = u32::from_be_bytes(*vendor_id);
    if vendor_id > MAX_VENDOR_ID {
        return Err(MsChapError::BadVendorId { vendor_id });
    }
    let mut offset = VENDOR_ID_LEN;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let bad = MsChapError::BadSubAttribute { offset };
        let [vendor_type, vendor_length, tail @ ..] = rest else {
            return Err(bad);
        };
        let Some(data_len) = usize::from(*vendor_length).checked_sub(2) else {
            return Err(bad);
        };
        let Some((data, next)) = tail.split_at_checked(data_len) else {
            return Err(bad);
        };
        out.push((vendor_id, *vendor_type, data.to_vec()));
        offset += usize::from(*vendor_length);
        rest = next;
    }
    Ok(out)
}

/// Builds the value of a Vendor-Specific attribute (type 26) holding one sub-attribute:
/// Vendor-Id (4, big-endian), Vendor-Type (1), Vendor-Length (1, = data length + 2),
/// data (RFC 2865 §5.26, RFC 2548 §2). The result is `data.len() + 6` octets, at most
/// 253, ready to be the value of one RADIUS attribute.
///
/// # Errors
/// * [`MsChapError::BadVendorId`] if `vendor` does not fit in 24 bits;
/// * [`MsChapError::VendorDataTooLong`] if `data` exceeds [`MAX_VENDOR_DATA_LEN`] octets.
pub fn vendor_specific(vendor: u32, vendor_type: u8, data: &[u8]) -> Result<Vec<u8>, MsChapError> {
    if vendor > MAX_VENDOR_ID {
        return Err(MsChapError::BadVendorId { vendor_id: vendor });
    }
    let too_long = MsChapError::VendorDataTooLong { len: data.len() };
    if data.len() > MAX_VENDOR_DATA_LEN {
        return Err(too_long);
    }
    let vendor_length = u8::try_from(data.len() + 2).map_err(|_| too_long)?;
    let mut out = Vec::with_capacity(VENDOR_ID_LEN + 2 + data.len());
    out.extend_from_slice(&vendor.to_be_bytes());
    out.push(vendor_type);
    out.push(vendor_length);
    out.extend_from_slice(data);
    Ok(out)
}

/// The user name as hashed by MS-CHAPv2: the octets after the last `\`, or all of
/// `username` if it has none (`DOMAIN\user` → `user`; RFC 2759 §8.2 hashes the user
/// name "excluding any prepended domain name"). Idempotent.
pub fn strip_domain(username: &[u8]) -> &[u8] {
    username
        .iter()
        .rposition(|&b| b == b'\\')
        .and_then(|i| username.get(i + 1..))
        .unwrap_or(username)
}

/// NtPasswordHash (RFC 2759 §8.3): the 16-octet MD4 digest of `password` encoded as
/// UTF-16LE, without any terminating zero. Characters beyond the Basic Multilingual
/// Plane are encoded as surrogate pairs.
pub fn nt_password_hash(password: &str) -> [u8; 16] {
    let mut md4 = Md4::new();
    for unit in password.encode_utf16() {
        md4.update(unit.to_le_bytes());
    }
    md4.finalize().into()
}

/// HashNtPasswordHash (RFC 2759 §8.4): the 16-octet MD4 digest of an NtPasswordHash.
pub fn hash_nt_password_hash(password_hash: &[u8; 16]) -> [u8; 16] {
    Md4::digest(password_hash).into()
}

/// ChallengeHash (RFC 2759 §8.2): the first 8 octets of
/// SHA-1(PeerChallenge ‖ AuthenticatorChallenge ‖ UserName), where UserName is
/// `username` after [`strip_domain`].
pub fn challenge_hash(
    peer_challenge: &[u8; CHALLENGE_LEN],
    authenticator_challenge: &[u8; CHALLENGE_LEN],
    username: &[u8],
) -> [u8; 8] {
    let mut sha1 = Sha1::new();
    sha1.update(peer_challenge);
    sha1.update(authenticator_challenge);
    sha1.update(strip_domain(username));
    let digest = sha1.finalize();
    let mut challenge = [0u8; 8];
    challenge
        .iter_mut()
        .zip(digest.iter())
        .for_each(|(out, d)| *out = *d);
    challenge
}

/// GenerateNTResponse (RFC 2759 §8.1): the 24-octet NT-Response a peer computes for
/// `password` from both challenges and `username` (domain prefix stripped, see
/// [`strip_domain`]).
pub fn generate_nt_response(
    authenticator_challenge: &[u8; CHALLENGE_LEN],
    peer_challenge: &[u8; CHALLENGE_LEN],
    username: &[u8],
    password: &str,
) -> [u8; NT_RESPONSE_LEN] {
    let challenge = challenge_hash(peer_challenge, authenticator_challenge, username);
    challenge_response(&challenge, &nt_password_hash(password))
}

/// Verifies the peer's NT-Response (RFC 2759 §5, §8.1): true if and only if
/// `response.nt_response` is the NT-Response of `password` for
/// `authenticator_challenge`, `response.peer_challenge` and `username` (domain prefix
/// stripped). The 24 octets are compared in constant time.
pub fn verify(
    authenticator_challenge: &[u8; CHALLENGE_LEN],
    response: &MsChap2Response,
    username: &[u8],
    password: &str,
) -> bool {
    let expected = generate_nt_response(
        authenticator_challenge,
        &response.peer_challenge,
        username,
        password,
    );
    expected.ct_eq(&response.nt_response).into()
}

/// GenerateAuthenticatorResponse (RFC 2759 §8.7): the 42-character string
/// `S=<40 uppercase hex digits>` that proves to the peer that the server knows
/// `password`. `nt_response` is the peer's (already verified) NT-Response; `username`
/// has its domain prefix stripped (see [`strip_domain`]).
pub fn authenticator_response(
    password: &str,
    nt_response: &[u8; NT_RESPONSE_LEN],
    peer_challenge: &[u8; CHALLENGE_LEN],
    authenticator_challenge: &[u8; CHALLENGE_LEN],
    username: &[u8],
) -> String {
    let password_hash_hash = hash_nt_password_hash(&nt_password_hash(password));
    let mut sha1 = Sha1::new();
    sha1.update(password_hash_hash);
    sha1.update(nt_response);
    sha1.update(MAGIC1);
    let digest = sha1.finalize();

    let challenge = challenge_hash(peer_challenge, authenticator_challenge, username);
    let mut sha1 = Sha1::new();
    sha1.update(digest);
    sha1.update(challenge);
    sha1.update(MAGIC2);
    let digest = sha1.finalize();

    let mut out = String::with_capacity(AUTHENTICATOR_RESPONSE_LEN);
    out.push_str("S=");
    for byte in digest {
        out.push(hex_upper(byte >> 4));
        out.push(hex_upper(byte));
    }
    out
}

/// The data of an MS-CHAP2-Success sub-attribute: `ident` (the Ident of the
/// MS-CHAP2-Response being answered) followed by the octets of
/// `authenticator_response` (RFC 2548 §2.3.3); 43 octets for a string from
/// [`authenticator_response`]. Put it in a Vendor-Specific value with
/// [`vendor_specific`], [`VENDOR_MICROSOFT`] and [`MS_CHAP2_SUCCESS`].
pub fn success_data(ident: u8, authenticator_response: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + authenticator_response.len());
    out.push(ident);
    out.extend_from_slice(authenticator_response.as_bytes());
    out
}

/// ChallengeResponse (RFC 2759 §8.5): the password hash zero-padded to 21 octets, cut
/// into three 7-octet DES keys, each encrypting `challenge`.
fn challenge_response(challenge: &[u8; 8], password_hash: &[u8; 16]) -> [u8; NT_RESPONSE_LEN] {
    let mut z_password_hash = [0u8; 21];
    z_password_hash
        .iter_mut()
        .zip(password_hash)
        .for_each(|(z, p)| *z = *p);
    let mut response = [0u8; NT_RESPONSE_LEN];
    for (out, key) in response
        .chunks_exact_mut(8)
        .zip(z_password_hash.chunks_exact(7))
    {
        let block = des_encrypt(challenge, key);
        out.iter_mut().zip(block).for_each(|(o, b)| *o = b);
    }
    response
}

/// DesEncrypt (RFC 2759 §8.6): DES-ECB encryption of one 8-octet block under a 56-bit
/// key given as 7 octets (only the first 7 octets of `key7` are used).
fn des_encrypt(clear: &[u8; 8], key7: &[u8]) -> [u8; 8] {
    let cipher = Des::new(&des_key(key7).into());
    let mut block = (*clear).into();
    cipher.encrypt_block(&mut block);
    block.into()
}

/// Expands 56 key bits (the first 7 octets of `key7`, most significant bit first) to
/// the 8-octet DES key: 7 key bits then an odd-parity bit per octet (RFC 2759 §9.3).
fn des_key(key7: &[u8]) -> [u8; 8] {
    let bits = key7
        .iter()
        .take(7)
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let mut key = [0u8; 8];
    for (shift, out) in (0..8u32).rev().zip(key.iter_mut()) {
        let seven = ((bits >> (7 * shift)) & 0x7F) as u8;
        let byte = seven << 1;
        *out = byte | u8::from(byte.count_ones() % 2 == 0);
    }
    key
}

/// The uppercase hexadecimal digit of the low nibble of `nibble`.
fn hex_upper(nibble: u8) -> char {
    let n = nibble & 0x0F;
    char::from(if n < 10 { b'0' + n } else { b'A' + n - 10 })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes a hex string (spaces allowed); test helper only.
    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    fn arr<const N: usize>(s: &str) -> [u8; N] {
        hex(s).try_into().unwrap()
    }

    // RFC 2759 §9.2 "Hash Example", verbatim.
    const USER: &[u8] = b"User";
    const PASSWORD: &str = "clientPass";
    const AUTHENTICATOR_CHALLENGE: &str = "5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28";
    const PEER_CHALLENGE: &str = "21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E";
    const CHALLENGE: &str = "D0 2E 43 86 BC E9 12 26";
    const PASSWORD_HASH: &str = "44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE";
    const NT_RESPONSE: &str =
        "82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF";
    const PASSWORD_HASH_HASH: &str = "41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F";
    const AUTHENTICATOR_RESPONSE: &str = "S=407A5589115FD0D6209F510FE9C04566932CDA56";

    fn auth_challenge() -> [u8; 16] {
        arr(AUTHENTICATOR_CHALLENGE)
    }

    fn peer_challenge() -> [u8; 16] {
        arr(PEER_CHALLENGE)
    }

    fn rfc_response() -> MsChap2Response {
        MsChap2Response {
            ident: 7,
            peer_challenge: peer_challenge(),
            nt_response: arr(NT_RESPONSE),
        }
    }

    /// An MS-CHAP2-Response value: Ident, Flags, Peer-Challenge, Reserved, NT-Response.
    fn rfc_response_value() -> Vec<u8> {
        let mut v = vec![7, 0];
        v.extend_from_slice(&peer_challenge());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&hex(NT_RESPONSE));
        v
    }

    #[test]
    fn rfc2759_password_hash() {
        assert_eq!(nt_password_hash(PASSWORD), arr::<16>(PASSWORD_HASH));
    }

    #[test]
    fn rfc2759_password_hash_hash() {
        let hash = nt_password_hash(PASSWORD);
        assert_eq!(hash_nt_password_hash(&hash), arr::<16>(PASSWORD_HASH_HASH));
    }

    #[test]
    fn rfc2759_challenge_hash() {
        assert_eq!(
            challenge_hash(&peer_challenge(), &auth_challenge(), USER),
            arr::<8>(CHALLENGE)
        );
    }

    #[test]
    fn rfc2759_challenge_response() {
        assert_eq!(
            challenge_response(&arr(CHALLENGE), &arr(PASSWORD_HASH)),
            arr::<24>(NT_RESPONSE)
        );
    }

    #[test]
    fn rfc2759_nt_response() {
        assert_eq!(
            generate_nt_response(&auth_challenge(), &peer_challenge(), USER, PASSWORD),
            arr::<24>(NT_RESPONSE)
        );
    }

    #[test]
    fn rfc2759_authenticator_response() {
        let s = authenticator_response(
            PASSWORD,
            &arr(NT_RESPONSE),
            &peer_challenge(),
            &auth_challenge(),
            USER,
        );
        assert_eq!(s, AUTHENTICATOR_RESPONSE);
        assert_eq!(s.len(), AUTHENTICATOR_RESPONSE_LEN);
    }

    /// RFC 2759 §9.3: password "MyPw", its hash, and the two parity-corrected DES keys.
    #[test]
    fn rfc2759_des_key_generation() {
        let hash = nt_password_hash("MyPw");
        assert_eq!(
            hash,
            arr::<16>("FC 15 6A F7 ED CD 6C 0E DD E3 33 7D 42 7F 4E AC")
        );
        assert_eq!(des_key(&hash[..7]), arr::<8>("FD 0B 5B 5E 7F 6E 34 D9"));
        assert_eq!(des_key(&hash[7..14]), arr::<8>("0E 6E 79 67 37 EA 08 FE"));
    }

    #[test]
    fn verify_accepts_the_rfc_vector() {
        assert!(verify(&auth_challenge(), &rfc_response(), USER, PASSWORD));
    }

    #[test]
    fn verify_rejects_any_single_flipped_bit() {
        for bit in 0..NT_RESPONSE_LEN * 8 {
            let mut response = rfc_response();
            response.nt_response[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !verify(&auth_challenge(), &response, USER, PASSWORD),
                "bit {bit}"
            );
        }
        let mut response = rfc_response();
        response.peer_challenge[0] ^= 1;
        assert!(!verify(&auth_challenge(), &response, USER, PASSWORD));
        let mut challenge = auth_challenge();
        challenge[15] ^= 0x80;
        assert!(!verify(&challenge, &rfc_response(), USER, PASSWORD));
    }

    #[test]
    fn verify_rejects_another_password_or_user() {
        assert!(!verify(
            &auth_challenge(),
            &rfc_response(),
            USER,
            "clientPasS"
        ));
        assert!(!verify(&auth_challenge(), &rfc_response(), USER, ""));
        assert!(!verify(
            &auth_challenge(),
            &rfc_response(),
            b"user",
            PASSWORD
        ));
    }

    #[test]
    fn verify_strips_the_domain() {
        assert!(verify(
            &auth_challenge(),
            &rfc_response(),
            b"EXAMPLE\\User",
            PASSWORD
        ));
        assert_eq!(
            authenticator_response(
                PASSWORD,
                &arr(NT_RESPONSE),
                &peer_challenge(),
                &auth_challenge(),
                b"EXAMPLE\\User",
            ),
            AUTHENTICATOR_RESPONSE
        );
    }

    #[test]
    fn strip_domain_cases() {
        assert_eq!(strip_domain(b"User"), b"User");
        assert_eq!(strip_domain(b"DOMAIN\\User"), b"User");
        assert_eq!(strip_domain(b"A\\B\\User"), b"User");
        assert_eq!(strip_domain(b"DOMAIN\\"), b"");
        assert_eq!(strip_domain(b"\\"), b"");
        assert_eq!(strip_domain(b""), b"");
        assert_eq!(strip_domain(b"user@realm"), b"user@realm");
        assert_eq!(
            strip_domain(strip_domain(b"A\\B\\C")),
            strip_domain(b"A\\B\\C")
        );
    }

    #[test]
    fn nt_password_hash_uses_utf16le() {
        // "é" is one UTF-16 unit E9 00, not its UTF-8 octets C3 A9.
        assert_eq!(
            nt_password_hash("é"),
            <[u8; 16]>::from(Md4::digest([0xE9, 0x00]))
        );
        // Outside the BMP: a surrogate pair D83D DE00, little-endian.
        assert_eq!(
            nt_password_hash("\u{1F600}"),
            <[u8; 16]>::from(Md4::digest([0x3D, 0xD8, 0x00, 0xDE]))
        );
        // MD4 of the empty string (RFC 1320 §A.5).
        assert_eq!(
            nt_password_hash(""),
            arr::<16>("31d6cfe0d16ae931b73c59d7e0c089c0")
        );
    }

    #[test]
    fn parse_response_rfc_layout() {
        let parsed = parse_response(&rfc_response_value()).unwrap();
        assert_eq!(parsed, rfc_response());
        assert!(verify(&auth_challenge(), &parsed, USER, PASSWORD));
    }

    #[test]
    fn parse_response_ignores_flags_and_reserved() {
        let mut v = rfc_response_value();
        v[1] = 0xFF;
        v[18..26].fill(0xAA);
        assert_eq!(parse_response(&v).unwrap(), rfc_response());
    }

    #[test]
    fn parse_response_rejects_wrong_lengths() {
        let v = rfc_response_value();
        assert_eq!(
            parse_response(&v[..49]),
            Err(MsChapError::ResponseLength { len: 49 })
        );
        let mut long = v.clone();
        long.push(0);
        assert_eq!(
            parse_response(&long),
            Err(MsChapError::ResponseLength { len: 51 })
        );
        assert_eq!(
            parse_response(&[]),
            Err(MsChapError::ResponseLength { len: 0 })
        );
    }

    #[test]
    fn vendor_specific_round_trip() {
        let value =
            vendor_specific(VENDOR_MICROSOFT, MS_CHAP2_RESPONSE, &rfc_response_value()).unwrap();
        assert_eq!(value.len(), 4 + 2 + MS_CHAP2_RESPONSE_LEN);
        assert_eq!(&value[..6], &[0, 0, 0x01, 0x37, 25, 52]);
        let subs = parse_vendor_specific(&value).unwrap();
        assert_eq!(
            subs,
            vec![(VENDOR_MICROSOFT, MS_CHAP2_RESPONSE, rfc_response_value())]
        );
        assert_eq!(parse_response(&subs[0].2).unwrap(), rfc_response());
    }

    #[test]
    fn vendor_specific_extremes() {
        let empty = vendor_specific(VENDOR_MICROSOFT, MS_CHAP_ERROR, &[]).unwrap();
        assert_eq!(empty, [0, 0, 0x01, 0x37, 2, 2]);
        assert_eq!(
            parse_vendor_specific(&empty).unwrap(),
            vec![(VENDOR_MICROSOFT, MS_CHAP_ERROR, vec![])]
        );

        let max = vendor_specific(VENDOR_MICROSOFT, 1, &[0x55; MAX_VENDOR_DATA_LEN]).unwrap();
        assert_eq!(max.len(), 253);
        assert_eq!(max[5], 249);
        assert_eq!(
            parse_vendor_specific(&max).unwrap()[0].2.len(),
            MAX_VENDOR_DATA_LEN
        );

        assert_eq!(
            vendor_specific(VENDOR_MICROSOFT, 1, &[0; MAX_VENDOR_DATA_LEN + 1]),
            Err(MsChapError::VendorDataTooLong { len: 248 })
        );
        assert_eq!(
            vendor_specific(0x0100_0000, 1, b"x"),
            Err(MsChapError::BadVendorId {
                vendor_id: 0x0100_0000
            })
        );
    }

    #[test]
    fn parse_vendor_specific_several_sub_attributes() {
        let challenge = auth_challenge();
        let mut value = vendor_specific(VENDOR_MICROSOFT, MS_CHAP_CHALLENGE, &challenge).unwrap();
        let second =
            vendor_specific(VENDOR_MICROSOFT, MS_CHAP2_RESPONSE, &rfc_response_value()).unwrap();
        value.extend_from_slice(&second[4..]);
        assert_eq!(
            parse_vendor_specific(&value).unwrap(),
            vec![
                (VENDOR_MICROSOFT, MS_CHAP_CHALLENGE, challenge.to_vec()),
                (VENDOR_MICROSOFT, MS_CHAP2_RESPONSE, rfc_response_value()),
            ]
        );
    }

    #[test]
    fn parse_vendor_specific_rejects_malformed() {
        use MsChapError::*;
        assert_eq!(
            parse_vendor_specific(&[]),
            Err(VendorSpecificTooShort { len: 0 })
        );
        assert_eq!(
            parse_vendor_specific(&[0, 0, 1, 0x37]),
            Err(VendorSpecificTooShort { len: 4 })
        );
        assert_eq!(
            parse_vendor_specific(&[0, 0, 1, 0x37, 11]),
            Err(VendorSpecificTooShort { len: 5 })
        );
        assert_eq!(
            parse_vendor_specific(&[1, 0, 1, 0x37, 11, 2]),
            Err(BadVendorId {
                vendor_id: 0x0100_0137
            })
        );
        // Vendor-Length below 2.
        assert_eq!(
            parse_vendor_specific(&[0, 0, 1, 0x37, 11, 1]),
            Err(BadSubAttribute { offset: 4 })
        );
        assert_eq!(
            parse_vendor_specific(&[0, 0, 1, 0x37, 11, 0]),
            Err(BadSubAttribute { offset: 4 })
        );
        // Vendor-Length overruns the value.
        assert_eq!(
            parse_vendor_specific(&[0, 0, 1, 0x37, 11, 5, 1, 2]),
            Err(BadSubAttribute { offset: 4 })
        );
        // A good sub-attribute followed by a lone octet, then by an overrun.
        assert_eq!(
            parse_vendor_specific(&[0, 0, 1, 0x37, 11, 3, 9, 26]),
            Err(BadSubAttribute { offset: 7 })
        );
        assert_eq!(
            parse_vendor_specific(&[0, 0, 1, 0x37, 11, 3, 9, 26, 4, 1]),
            Err(BadSubAttribute { offset: 7 })
        );
    }

    #[test]
    fn success_data_layout() {
        let data = success_data(7, AUTHENTICATOR_RESPONSE);
        assert_eq!(data.len(), 43);
        assert_eq!(data[0], 7);
        assert_eq!(&data[1..], AUTHENTICATOR_RESPONSE.as_bytes());
        // RFC 2548 §2.3.3: Vendor-Length 45.
        let value = vendor_specific(VENDOR_MICROSOFT, MS_CHAP2_SUCCESS, &data).unwrap();
        assert_eq!(value[5], 45);
    }

    #[test]
    fn hex_digits() {
        let digits: String = (0..16).map(hex_upper).collect();
        assert_eq!(digits, "0123456789ABCDEF");
        assert_eq!(hex_upper(0xF3), '3');
    }

    proptest! {
        #[test]
        fn parse_vendor_specific_never_panics(value in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_vendor_specific(&value);
        }

        #[test]
        fn parse_response_never_panics(value in proptest::collection::vec(any::<u8>(), 0..80)) {
            let parsed = parse_response(&value);
            prop_assert_eq!(parsed.is_ok(), value.len() == MS_CHAP2_RESPONSE_LEN);
        }

        #[test]
        fn vendor_specific_round_trips(
            vendor in 0u32..=0x00FF_FFFF,
            vendor_type in any::<u8>(),
            data in proptest::collection::vec(any::<u8>(), 0..=MAX_VENDOR_DATA_LEN),
        ) {
            let value = vendor_specific(vendor, vendor_type, &data).unwrap();
            prop_assert!(value.len() <= 253);
            prop_assert_eq!(parse_vendor_specific(&value).unwrap(), vec![(vendor, vendor_type, data)]);
        }

        #[test]
        fn generated_responses_verify(
            auth in any::<[u8; 16]>(),
            peer in any::<[u8; 16]>(),
            user in "[A-Za-z0-9.@-]{0,20}",
            password in "\\PC{0,16}",
        ) {
            let nt_response = generate_nt_response(&auth, &peer, user.as_bytes(), &password);
            let response = MsChap2Response { ident: 1, peer_challenge: peer, nt_response };
            prop_assert!(verify(&auth, &response, user.as_bytes(), &password));
            let other = format!("{password}x");
            prop_assert!(!verify(&auth, &response, user.as_bytes(), &other));
        }
    }
}
