//! Pinwheel plugin `transport-http` (being written).
#![forbid(unsafe_code)]
