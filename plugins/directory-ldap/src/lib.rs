//! Pinwheel plugin `directory-ldap` (being written).
#![forbid(unsafe_code)]
