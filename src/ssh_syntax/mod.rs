//! The words ssh_config(5), sshd_config(5) and ssh(1)'s destinations share, read as OpenSSH
//! reads them: patterns, `ssh://` URIs and port numbers. A leaf: the ssh config reader, the
//! reader of the sshd's settings and tether's host names all use it.

pub mod pattern;
pub mod port;
pub mod uri;
