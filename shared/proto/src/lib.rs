//! The Underpass tunnel protocol, free of I/O: the `underpass/1` frames, the control protocol
//! as sans-IO state machines for both ends, the identities (SPIFFE IDs and roles) both ends
//! authenticate with, and the header names of the edge ↔ connector ↔ backend contract.

#![forbid(unsafe_code)]

pub mod control;
pub mod enroll;
pub mod frame;
pub mod headers;
pub mod identity;
pub mod trace;

#[cfg(test)]
mod prop_tests;
