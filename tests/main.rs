//! The one integration test binary: every module below talks to real OpenSSH `sshd` processes
//! (see `support/lab.rs`) or runs the `tether` binary; one binary links once.

mod support;

mod agent;
mod ask;
mod auth;
mod certificates;
mod check;
mod cli;
mod definitions;
mod deploy;
mod download;
mod failures;
mod fd_limit;
mod fold;
mod host_certificates;
mod host_keys;
mod idle_limits;
mod init;
mod json;
mod jump;
mod keepalive;
mod lab;
mod layers;
mod progress;
mod proxy_command;
mod reach;
mod reattach;
mod recipe;
mod robustness;
mod run;
mod run_log;
mod secrets;
mod seed;
mod shell;
mod shells;
mod ssh_config;
mod ssh_env;
mod standby;
mod sudo;
mod supervisor;
mod timeline;
mod upload;
mod watch;
