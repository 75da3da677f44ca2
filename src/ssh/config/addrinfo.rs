//! The system resolver, `getaddrinfo(3)`, called as ssh calls it (`SOCK_STREAM`, the family
//! of `AddressFamily`): `/etc/hosts` and DNS alike, an `AF_INET` lookup mapped by the resolver
//! as ssh would see it (glibc answers one for `::1` in `/etc/hosts` with `127.0.0.1`).

use std::ffi::{CStr, CString};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// A list `getaddrinfo` returned, freed when dropped.
pub(super) struct AddrInfo {
    pub(super) head: *mut libc::addrinfo,
}

impl AddrInfo {
    /// `name` (port 22) in `family` (`AF_UNSPEC`, `AF_INET`, `AF_INET6`) with `flags`; None
    /// where it does not resolve.
    pub(super) fn get(name: &str, family: i32, flags: i32) -> Option<Self> {
        Self::lookup(name, "22", family, flags).ok()
    }

    /// `name` and `service` in `family` with `flags`, or getaddrinfo's error code.
    fn lookup(name: &str, service: &str, family: i32, flags: i32) -> Result<Self, i32> {
        let node = CString::new(name).map_err(|_| libc::EAI_NONAME)?;
        let service = CString::new(service).map_err(|_| libc::EAI_SERVICE)?;
        // SAFETY: a zeroed addrinfo is a valid "no hints" value, then filled in.
        let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
        hints.ai_family = family;
        hints.ai_socktype = libc::SOCK_STREAM;
        hints.ai_flags = flags;
        let mut head: *mut libc::addrinfo = std::ptr::null_mut();
        // SAFETY: node, service and hints are valid for the call; head receives the list.
        let rc = unsafe { libc::getaddrinfo(node.as_ptr(), service.as_ptr(), &hints, &mut head) };
        match (rc, head.is_null()) {
            (0, false) => Ok(AddrInfo { head }),
            (0, true) => Err(libc::EAI_NONAME),
            (rc, _) => Err(rc),
        }
    }
}

impl Drop for AddrInfo {
    fn drop(&mut self) {
        // SAFETY: head came from getaddrinfo and is freed once.
        unsafe { libc::freeaddrinfo(self.head) };
    }
}

/// The addresses to connect to for `name` and `port`, in the resolver's order, as ssh.c
/// `resolve_host` asks for them: `family` one of `AF_UNSPEC`, `AF_INET`, `AF_INET6`
/// (`AddressFamily any`, `inet`, `inet6`). An error is the resolver's words
/// (`gai_strerror(3)`).
pub fn socket_addrs(name: &str, port: u16, family: i32) -> Result<Vec<SocketAddr>, String> {
    let list = AddrInfo::lookup(name, &port.to_string(), family, 0).map_err(|rc| {
        if rc == libc::EAI_SYSTEM {
            return std::io::Error::last_os_error().to_string();
        }
        // SAFETY: gai_strerror returns a static NUL-terminated string for any code.
        unsafe { CStr::from_ptr(libc::gai_strerror(rc)) }
            .to_string_lossy()
            .into_owned()
    })?;
    let mut out = Vec::new();
    let mut at = list.head;
    while !at.is_null() {
        // SAFETY: `at` is an entry of the list, valid until `list` is dropped.
        let entry = unsafe { &*at };
        match entry.ai_family {
            // SAFETY: an AF_INET entry's ai_addr is a sockaddr_in.
            libc::AF_INET => {
                let sin = unsafe { &*(entry.ai_addr as *const libc::sockaddr_in) };
                out.push(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                    u16::from_be(sin.sin_port),
                )));
            }
            // SAFETY: an AF_INET6 entry's ai_addr is a sockaddr_in6.
            libc::AF_INET6 => {
                let sin6 = unsafe { &*(entry.ai_addr as *const libc::sockaddr_in6) };
                out.push(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )));
            }
            _ => {}
        }
        at = entry.ai_next;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_each_family() {
        let any = socket_addrs("127.0.0.1", 2222, libc::AF_UNSPEC).unwrap();
        assert_eq!(any, ["127.0.0.1:2222".parse::<SocketAddr>().unwrap()]);
        let v6 = socket_addrs("::1", 22, libc::AF_INET6).unwrap();
        assert_eq!(v6, ["[::1]:22".parse::<SocketAddr>().unwrap()]);
        assert!(socket_addrs("::1", 22, libc::AF_INET).is_err());
        assert!(socket_addrs("127.0.0.1", 22, libc::AF_INET6).is_err());
        let local = socket_addrs("localhost", 22, libc::AF_INET).unwrap();
        assert!(local.iter().all(SocketAddr::is_ipv4) && !local.is_empty());
        assert!(socket_addrs("no-such-host.invalid", 22, libc::AF_UNSPEC).is_err());
    }
}
