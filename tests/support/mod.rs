#![allow(dead_code)]
//! Shared helpers for integration tests: `mod support;` then
//! `use support::lab::Lab;` (real sshd hosts) or `use support::tether::Tether;`
//! (runs the tether binary).  Each test binary uses a subset of them.

pub mod harness;
pub mod lab;
pub mod net;
pub mod netns;
pub mod site;
pub mod tether;
