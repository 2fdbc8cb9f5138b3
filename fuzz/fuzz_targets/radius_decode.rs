//! Fuzz target: arbitrary bytes into the RADIUS request decoder, then a decode →
//! encode → decode round trip of every request it accepts.
//!
//! For input `data`, under the fixed shared secret [`SECRET`] (the RFC 2865 §7.1 and
//! RFC 5997 §6.1 examples' secret, so those seeds decode):
//! 1. `codec::decode_request` must return, never panic;
//! 2. when it accepts the packet, a reply answering its code is encoded with
//!    `codec::encode_reply`, carrying the request's own attributes back (all but
//!    Message-Authenticator, Proxy-State and empty values, which `encode_reply`
//!    places itself or refuses). It must succeed unless the reply would exceed
//!    4096 bytes, and then fail with `TooLong` and nothing else;
//! 3. `codec::decode_reply` must accept that reply, with Message-Authenticator
//!    first and then exactly the attributes encoded, followed by the request's
//!    Proxy-State values unchanged and in order.
//!
//! The same check replays `corpus/radius_decode/` as a normal test in the codec's
//! test module (`daemon/src/radius/codec.rs`, `fuzz_corpus_replays_round_trip`);
//! keep the two in step. Run with `cargo +nightly fuzz run radius_decode` from
//! this folder.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pinwheel::radius::codec::{
    self, attr, Code, CodecError, AUTHENTICATOR_LEN, HEADER_LEN, MAX_PACKET_LEN,
};

/// Shared secret of every packet in the seed corpus.
const SECRET: &[u8] = b"xyzzy5461";

fuzz_target!(|data: &[u8]| {
    round_trip(data);
});

/// Decode `bytes` as a request; if it decodes, answer it and decode the answer.
fn round_trip(bytes: &[u8]) {
    let Ok(request) = codec::decode_request(bytes, SECRET) else {
        return;
    };
    // Accessors must not panic either.
    let _ = request.user_password(SECRET);
    let _ = request.user_name();

    let reply_code = match request.code {
        Code::AccessRequest | Code::StatusServer => Code::AccessAccept,
        Code::AccountingRequest => Code::AccountingResponse,
        other => panic!("decode_request accepted a {other} packet"),
    };
    let carried: Vec<(u8, Vec<u8>)> = request
        .attributes
        .iter()
        .filter(|(kind, value)| {
            *kind != attr::MESSAGE_AUTHENTICATOR && *kind != attr::PROXY_STATE && !value.is_empty()
        })
        .cloned()
        .collect();
    let proxy_states: Vec<(u8, Vec<u8>)> = request
        .proxy_states()
        .map(|v| (attr::PROXY_STATE, v.to_vec()))
        .collect();
    let expected_len = HEADER_LEN
        + 2
        + AUTHENTICATOR_LEN
        + carried
            .iter()
            .chain(&proxy_states)
            .map(|(_, v)| 2 + v.len())
            .sum::<usize>();

    let reply = match codec::encode_reply(reply_code, &request, &carried, SECRET) {
        Ok(reply) => reply,
        Err(CodecError::TooLong) if expected_len > MAX_PACKET_LEN => return,
        Err(e) => panic!("encode_reply failed ({e}) for a {expected_len}-byte reply"),
    };
    assert_eq!(reply.len(), expected_len, "reply length");
    let decoded = codec::decode_reply(&reply, &request.authenticator, SECRET)
        .unwrap_or_else(|e| panic!("decode_reply refused our own reply: {e}"));
    assert_eq!(decoded.code, reply_code);
    assert_eq!(decoded.identifier, request.identifier);
    assert!(decoded.has_message_authenticator);
    let (first, rest) = decoded
        .attributes
        .split_first()
        .expect("reply has attributes");
    assert_eq!(first.0, attr::MESSAGE_AUTHENTICATOR, "MA first");
    let expected: Vec<(u8, Vec<u8>)> = carried.into_iter().chain(proxy_states).collect();
    assert_eq!(rest, expected.as_slice(), "re-decoded attributes");
}
