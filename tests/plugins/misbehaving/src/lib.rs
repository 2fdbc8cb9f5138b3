//! Test plugin (being written).
#![forbid(unsafe_code)]
