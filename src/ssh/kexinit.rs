//! The server's algorithm lists, read from its `SSH_MSG_KEXINIT` (RFC 4253 §7.1) on a
//! connection of their own when libssh2's key exchange failed. libssh2 says only "Unable to
//! exchange encryption keys", where ssh names the list with nothing in common and the
//! server's offer ("no matching host key type found. Their offer: ssh-ed25519"). The server
//! sends its lists in the clear right after its identification line, before anything of the
//! client's is needed but the client's own line.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Instant;

use super::wire::Reader;

/// What a server offers, each list in its order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Key exchange methods.
    pub kex: Vec<String>,
    /// Host key types.
    pub host_key: Vec<String>,
    /// Ciphers, client to server.
    pub ciphers: Vec<String>,
    /// MACs, client to server.
    pub macs: Vec<String>,
}

/// The longest packet read (RFC 4253 §6.1 asks every implementation for 35000 bytes).
const MAX_PACKET: usize = 35_000;

/// Reads the offer of the server at the other end of `tcp`, a connection of its own: sends
/// tether's identification line, skips the server's lines up to its `SSH-` line, reads one
/// packet. `None` when the server sends something else, closes, or is not done by `until`.
pub fn read(mut tcp: TcpStream, until: Instant) -> Option<Offer> {
    tcp.write_all(b"SSH-2.0-tether_probe\r\n").ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match parse(&buf) {
            Parsed::Offer(offer) => return Some(offer),
            Parsed::Invalid => return None,
            Parsed::Incomplete => {}
        }
        let left = until.checked_duration_since(Instant::now())?;
        tcp.set_read_timeout(Some(left.max(std::time::Duration::from_millis(1))))
            .ok()?;
        match tcp.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > MAX_PACKET + 64 * 1024 {
            return None;
        }
    }
}

enum Parsed {
    Offer(Offer),
    Incomplete,
    Invalid,
}

/// The offer in `buf` (what the server sent so far), if all of it arrived.
fn parse(buf: &[u8]) -> Parsed {
    // Lines before the identification line are allowed (RFC 4253 §4.2).
    let mut at = 0;
    let packet = loop {
        let Some(end) = buf[at..].iter().position(|&b| b == b'\n') else {
            return Parsed::Incomplete;
        };
        let line = &buf[at..at + end];
        at += end + 1;
        if line.starts_with(b"SSH-") {
            break &buf[at..];
        }
    };
    if packet.len() < 5 {
        return Parsed::Incomplete;
    }
    let length = u32::from_be_bytes([packet[0], packet[1], packet[2], packet[3]]) as usize;
    if !(5..=MAX_PACKET).contains(&length) {
        return Parsed::Invalid;
    }
    if packet.len() < 4 + length {
        return Parsed::Incomplete;
    }
    let padding = usize::from(packet[4]);
    let Some(payload) = packet.get(5..4 + length - padding.min(length - 1)) else {
        return Parsed::Invalid;
    };
    // SSH_MSG_KEXINIT, then a 16-byte cookie.
    if payload.first() != Some(&20) || payload.len() < 17 {
        return Parsed::Invalid;
    }
    let mut r = Reader::new(&payload[17..]);
    let mut list = |field| {
        r.text(field).map(|t| {
            t.split(',')
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect()
        })
    };
    let lists = (|| {
        let kex = list("kex_algorithms")?;
        let host_key = list("server_host_key_algorithms")?;
        let ciphers = list("encryption_algorithms_client_to_server")?;
        let _ = list("encryption_algorithms_server_to_client")?;
        let macs = list("mac_algorithms_client_to_server")?;
        Ok::<_, super::wire::Truncated>(Offer {
            kex,
            host_key,
            ciphers,
            macs,
        })
    })();
    match lists {
        Ok(offer) => Parsed::Offer(offer),
        Err(_) => Parsed::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::wire::put_string;

    fn kexinit(lists: &[&str]) -> Vec<u8> {
        let mut payload = vec![20u8];
        payload.extend_from_slice(&[7u8; 16]);
        for l in lists {
            put_string(&mut payload, l.as_bytes());
        }
        payload.extend_from_slice(&[0, 0, 0, 0, 0]);
        let padding = 8 - (payload.len() + 5) % 8 + 4;
        let mut packet = ((payload.len() + padding + 1) as u32)
            .to_be_bytes()
            .to_vec();
        packet.push(padding as u8);
        packet.extend_from_slice(&payload);
        packet.extend(std::iter::repeat_n(0u8, padding));
        packet
    }

    #[test]
    fn reads_the_lists_after_the_identification_line() {
        let mut sent = b"a greeting\r\nSSH-2.0-OpenSSH_9.2p1 Debian\r\n".to_vec();
        let packet = kexinit(&[
            "curve25519-sha256,ext-info-s",
            "ssh-ed25519",
            "aes128-ctr,chacha20-poly1305@openssh.com",
            "aes128-ctr",
            "hmac-sha2-256",
            "hmac-sha2-256",
            "none",
            "none",
            "",
            "",
        ]);
        sent.extend_from_slice(&packet);
        let Parsed::Offer(offer) = parse(&sent) else {
            panic!("not parsed");
        };
        assert_eq!(offer.kex, ["curve25519-sha256", "ext-info-s"]);
        assert_eq!(offer.host_key, ["ssh-ed25519"]);
        assert_eq!(
            offer.ciphers,
            ["aes128-ctr", "chacha20-poly1305@openssh.com"]
        );
        assert_eq!(offer.macs, ["hmac-sha2-256"]);
        // Every shorter prefix is incomplete, never an offer or a panic.
        for n in 0..sent.len() {
            assert!(matches!(parse(&sent[..n]), Parsed::Incomplete), "{n}");
        }
        let mut other = b"SSH-2.0-x\r\n".to_vec();
        other.extend_from_slice(&[0, 0, 0, 12, 4, 21, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(parse(&other), Parsed::Invalid));
    }
}
