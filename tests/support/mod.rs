//! Shared helpers for the integration tests (`tests/main.rs`):
//! `use support::lab::Lab;` (real sshd hosts) or `use support::tether::Tether;`
//! (runs the tether binary).

pub mod agent;
pub mod browser;
pub mod harness;
pub mod lab;
pub mod net;
pub mod netns;
pub mod noise;
pub mod pty;
pub mod recipe;
pub mod sandbox;
pub mod site;
pub mod tether;
pub mod threads;
pub mod users;
