//! The one integration test binary: every module below talks to real OpenSSH `sshd` processes
//! (see `support/lab.rs`) or runs the `tether` binary; one binary links once.

mod support;

mod agent;
mod check;
mod deploy;
mod failures;
mod json;
mod jump;
mod keepalive;
mod lab;
mod layers;
mod recipe;
mod run;
mod seed;
mod sudo;
mod timeline;
mod watch;
