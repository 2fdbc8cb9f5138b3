//! Pinwheel plugin `transport-smtp` (being written).
#![forbid(unsafe_code)]
