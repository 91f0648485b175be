//! Peer credentials of a loopback TCP connection (API.md §9 "Same user only"):
//! the uid owning the CLIENT's socket, found in `/proc/net/tcp` (then
//! `/proc/net/tcp6`, where a dual-stack client socket shows its IPv4 addresses
//! as `::ffff:a.b.c.d`) by its local address = our peer and its remote
//! address = our local address. Looked up once per connection.

use std::net::{IpAddr, SocketAddr};

/// Who is at the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerUid {
    /// The uid owning the client's socket.
    Uid(u32),
    /// The platform cannot tell (not Linux, no `/proc`, socket not found).
    Unknown,
}

/// `/proc/net/tcp` spelling of an IPv4 address and port: the address as the
/// kernel's 32-bit word in host byte order, `%08X:%04X`.
fn v4_key(ip: std::net::Ipv4Addr, port: u16) -> String {
    format!("{:08X}:{:04X}", u32::from_ne_bytes(ip.octets()), port)
}

/// `/proc/net/tcp6` spelling: four 32-bit words in host byte order.
fn v6_key(ip: std::net::Ipv6Addr, port: u16) -> String {
    let o = ip.octets();
    let mut s = String::with_capacity(37);
    for w in o.chunks_exact(4) {
        s.push_str(&format!(
            "{:08X}",
            u32::from_ne_bytes([w[0], w[1], w[2], w[3]])
        ));
    }
    s.push_str(&format!(":{port:04X}"));
    s
}

fn to_v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Find the socket whose local address is `local_key` and remote address is
/// `remote_key` in a `/proc/net/tcp{,6}` table; its uid.
pub fn find_uid(table: &str, local_key: &str, remote_key: &str) -> Option<u32> {
    for line in table.lines().skip(1) {
        let mut f = line.split_whitespace();
        let (_sl, l, r) = (f.next(), f.next()?, f.next()?);
        if l.eq_ignore_ascii_case(local_key) && r.eq_ignore_ascii_case(remote_key) {
            // st, tx:rx, tr:when, retrnsmt, uid
            return f.nth(4)?.parse().ok();
        }
    }
    None
}

/// The uid owning the client socket of the connection `ours` ↔ `peer`
/// (`ours` = our local address, `peer` = the client's). Linux only; elsewhere
/// and on any failure [`PeerUid::Unknown`].
pub fn lookup(ours: Option<SocketAddr>, peer: Option<SocketAddr>) -> PeerUid {
    let (Some(ours), Some(peer)) = (ours, peer) else {
        return PeerUid::Unknown;
    };
    if !cfg!(target_os = "linux") {
        return PeerUid::Unknown;
    }
    if let (IpAddr::V4(p), IpAddr::V4(o)) = (peer.ip(), ours.ip())
        && let Ok(t) = std::fs::read_to_string("/proc/net/tcp")
        && let Some(uid) = find_uid(&t, &v4_key(p, peer.port()), &v4_key(o, ours.port()))
    {
        return PeerUid::Uid(uid);
    }
    if let Ok(t) = std::fs::read_to_string("/proc/net/tcp6")
        && let Some(uid) = find_uid(
            &t,
            &v6_key(to_v6(peer.ip()), peer.port()),
            &v6_key(to_v6(ours.ip()), ours.port()),
        )
    {
        return PeerUid::Uid(uid);
    }
    PeerUid::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_the_kernel_spelling() {
        // 127.0.0.1:9876 as printed on little-endian Linux
        if cfg!(target_endian = "little") {
            assert_eq!(v4_key([127, 0, 0, 1].into(), 9876), "0100007F:2694");
            assert_eq!(
                v6_key(std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped(), 1),
                "0000000000000000FFFF00000100007F:0001"
            );
        }
    }

    #[test]
    fn finds_the_client_socket() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                 0: 0100007F:2694 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0\n\
                 1: 0100007F:D431 0100007F:2694 01 00000000:00000000 00:00000000 00000000  1001        0 2 1 0\n\
                 2: 0100007F:2694 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0\n";
        assert_eq!(find_uid(t, "0100007F:D431", "0100007F:2694"), Some(1001));
        assert_eq!(find_uid(t, "0100007F:2694", "0100007F:D431"), Some(0));
        assert_eq!(find_uid(t, "0100007F:0001", "0100007F:2694"), None);
    }

    #[test]
    fn a_real_connection_is_ours() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let c = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (s, _) = l.accept().expect("accept");
        let got = lookup(s.local_addr().ok(), s.peer_addr().ok());
        if cfg!(target_os = "linux") {
            assert_eq!(got, PeerUid::Uid(nix::unistd::geteuid().as_raw()));
        }
        drop(c);
    }
}
