//! What the sshd serving a session is configured to do, read from the host: the POSIX sh
//! scripts that find that sshd and print its config ([`probe`]), and the parsers of what they
//! print ([`settings`]). `tether check` reports it; the heartbeat uses it to run only what the
//! server's limits need.

pub mod probe;
pub mod settings;
