//! The local side of a resolution: who runs tether, on which machine, with which home and
//! shell. OpenSSH takes these from the password database and `gethostname(3)`; tokens `%u`,
//! `%i`, `%d`, `%l`, `%L`, `Match localuser` and `~` expansion depend on them.

use std::ffi::{CStr, CString};
use std::path::PathBuf;

/// The local user and machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    /// Login name (`%u`, `Match localuser`, the default `User`).
    pub user: String,
    /// Numeric uid (`%i`).
    pub uid: u32,
    /// Home directory (`~`, `%d`, `~/.ssh/config`).
    pub home: PathBuf,
    /// `gethostname(3)` (`%l`; `%L` is its first label).
    pub hostname: String,
    /// The shell that runs `Match exec` and `ProxyCommand`: `$SHELL`, else `/bin/sh`.
    pub shell: PathBuf,
}

impl Local {
    /// This process's user and machine. The home is `$HOME` when set (ssh itself takes the
    /// password database's; the two differ only when HOME was changed), else the password
    /// database's.
    pub fn current() -> Self {
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        let (pw_name, pw_dir) = passwd_by_uid(uid).unwrap_or_default();
        let user = if pw_name.is_empty() {
            std::env::var("USER").unwrap_or_else(|_| uid.to_string())
        } else {
            pw_name
        };
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(|| (!pw_dir.is_empty()).then(|| PathBuf::from(&pw_dir)))
            .unwrap_or_else(|| PathBuf::from("/"));
        // Unset is /bin/sh; set and empty stays empty, which `Match exec` refuses, as
        // readconf.c `execute_in_shell` does.
        let shell = std::env::var_os("SHELL")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/bin/sh"));
        Local {
            user,
            uid,
            home,
            hostname: hostname(),
            shell,
        }
    }

    /// `%L`: the local host name up to its first dot.
    pub fn short_hostname(&self) -> &str {
        self.hostname.split('.').next().unwrap_or_default()
    }
}

/// The home directory of `user` from the password database (`~user`).
pub fn home_of(user: &str) -> Option<PathBuf> {
    let name = CString::new(user).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: zeroed passwd is a valid out-parameter; buf outlives its use.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; getpwnam_r writes strings into buf.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pw.pw_dir.is_null() {
        return None;
    }
    // SAFETY: pw_dir points into buf, NUL-terminated by getpwnam_r.
    let dir = unsafe { CStr::from_ptr(pw.pw_dir) };
    Some(PathBuf::from(dir.to_string_lossy().into_owned()))
}

fn passwd_by_uid(uid: libc::uid_t) -> Option<(String, String)> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: zeroed passwd is a valid out-parameter; buf outlives its use.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; getpwuid_r writes strings into buf.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pw.pw_name.is_null() || pw.pw_dir.is_null() {
        return None;
    }
    // SAFETY: both point into buf, NUL-terminated by getpwuid_r.
    let (name, dir) = unsafe { (CStr::from_ptr(pw.pw_name), CStr::from_ptr(pw.pw_dir)) };
    Some((
        name.to_string_lossy().into_owned(),
        dir.to_string_lossy().into_owned(),
    ))
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its whole length.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
