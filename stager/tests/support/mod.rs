//! Helpers shared by the stager's integration tests: a test CA and a real HTTP(S) server on loopback.
// Each tests/*.rs file compiles this module on its own and uses a different part of it.
#![allow(dead_code)]

pub mod api_server;
pub mod https_server;
pub mod test_ca;
