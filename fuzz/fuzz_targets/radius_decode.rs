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
//! The check itself is `codec::round_trip_check`; the codec's test
//! `fuzz_corpus_replays_round_trip` replays `corpus/radius_decode/` with it. Run with `cargo +nightly fuzz run radius_decode` from
//! this folder.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pinwheel::radius::codec;

/// Shared secret of every packet in the seed corpus.
const SECRET: &[u8] = b"xyzzy5461";

fuzz_target!(|data: &[u8]| {
    if let Err(bug) = codec::round_trip_check(data, SECRET) {
        panic!("{bug}");
    }
});
