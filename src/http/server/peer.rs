//! Peer credentials of a loopback TCP connection (API.md §9 "Same user only"):
//! the uid owning the CLIENT's socket — the socket whose local address is our
//! peer and whose remote address is our local address. Looked up once per
//! connection.
//!
//! Linux: first an exact sock_diag query over netlink (`NETLINK_SOCK_DIAG`,
//! `SOCK_DIAG_BY_FAMILY` without `NLM_F_DUMP`: the kernel looks the 4-tuple up
//! directly, O(1) whatever the number of sockets, no privilege needed), for
//! `AF_INET` then `AF_INET6` (a dual-stack client socket shows IPv4 addresses
//! as `::ffff:a.b.c.d`); if netlink is unavailable, a scan of
//! `/proc/net/tcp` and `/proc/net/tcp6` (whose cost grows with the number of
//! sockets: ~ms with thousands open).

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
    #[cfg(target_os = "linux")]
    {
        if let Some(uid) = diag::lookup(ours, peer) {
            return PeerUid::Uid(uid);
        }
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

/// The exact sock_diag query (linux/inet_diag.h, linux/sock_diag.h).
#[cfg(target_os = "linux")]
mod diag {
    use nix::sys::socket::{
        AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto,
        setsockopt, socket, sockopt,
    };
    use std::net::{IpAddr, SocketAddr};
    use std::os::fd::AsRawFd;

    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLM_F_REQUEST: u16 = 1;
    const AF_INET: u8 = 2;
    const AF_INET6: u8 = 10;
    const IPPROTO_TCP: u8 = 6;
    /// `sizeof(struct nlmsghdr)`.
    const NLMSG_HDR: usize = 16;
    /// `sizeof(struct inet_diag_req_v2)`.
    const REQ_LEN: usize = 56;
    /// `sizeof(struct inet_diag_msg)` and the offset of `idiag_uid` in it.
    const MSG_LEN: usize = 72;
    const UID_AT: usize = 64;

    /// 16 bytes of `idiag_src`/`idiag_dst` for `family`.
    fn addr16(ip: IpAddr, family: u8) -> Option<[u8; 16]> {
        let mut out = [0u8; 16];
        match (ip, family) {
            (IpAddr::V4(v4), AF_INET) => out[..4].copy_from_slice(&v4.octets()),
            (IpAddr::V4(v4), AF_INET6) => out = v4.to_ipv6_mapped().octets(),
            (IpAddr::V6(v6), AF_INET6) => out = v6.octets(),
            _ => return None,
        }
        Some(out)
    }

    /// The `SOCK_DIAG_BY_FAMILY` request for the socket `src` → `dst`.
    pub fn request(src: SocketAddr, dst: SocketAddr, family: u8) -> Option<Vec<u8>> {
        let mut m = Vec::with_capacity(NLMSG_HDR + REQ_LEN);
        m.extend(((NLMSG_HDR + REQ_LEN) as u32).to_ne_bytes());
        m.extend(SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        m.extend(NLM_F_REQUEST.to_ne_bytes());
        m.extend(1u32.to_ne_bytes()); // seq
        m.extend(0u32.to_ne_bytes()); // pid: the kernel
        m.extend([family, IPPROTO_TCP, 0, 0]);
        m.extend(u32::MAX.to_ne_bytes()); // every state
        m.extend(src.port().to_be_bytes());
        m.extend(dst.port().to_be_bytes());
        m.extend(addr16(src.ip(), family)?);
        m.extend(addr16(dst.ip(), family)?);
        m.extend(0u32.to_ne_bytes()); // interface
        m.extend(u32::MAX.to_ne_bytes()); // INET_DIAG_NOCOOKIE
        m.extend(u32::MAX.to_ne_bytes());
        Some(m)
    }

    /// `idiag_uid` of a reply that is an `inet_diag_msg` for `src`'s port.
    pub fn parse(reply: &[u8], src_port: u16) -> Option<u32> {
        if reply.len() < NLMSG_HDR + MSG_LEN {
            return None;
        }
        let ty = u16::from_ne_bytes([reply[4], reply[5]]);
        let body = &reply[NLMSG_HDR..];
        let sport = u16::from_be_bytes([body[4], body[5]]);
        if ty != SOCK_DIAG_BY_FAMILY || sport != src_port {
            return None;
        }
        let u = &body[UID_AT..UID_AT + 4];
        Some(u32::from_ne_bytes([u[0], u[1], u[2], u[3]]))
    }

    fn query(src: SocketAddr, dst: SocketAddr, family: u8) -> Option<u32> {
        let msg = request(src, dst, family)?;
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkSockDiag,
        )
        .ok()?;
        let _ = setsockopt(
            &fd,
            sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(1, 0),
        );
        sendto(
            fd.as_raw_fd(),
            &msg,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )
        .ok()?;
        let mut buf = [0u8; 1024];
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).ok()?;
        parse(&buf[..n.min(buf.len())], src.port())
    }

    /// The uid owning the client socket `peer` → `ours`, if netlink finds it.
    pub fn lookup(ours: SocketAddr, peer: SocketAddr) -> Option<u32> {
        if peer.is_ipv4() {
            if let Some(uid) = query(peer, ours, AF_INET) {
                return Some(uid);
            }
        }
        query(peer, ours, AF_INET6)
    }
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

    /// Cost of one lookup (bench, not a test): `cargo test --release --lib
    /// peer_lookup_cost -- --ignored --nocapture`. Holds 1,000 extra
    /// connections open to show the netlink path does not grow with them.
    #[test]
    #[ignore]
    fn peer_lookup_cost() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let mut keep = Vec::new();
        for _ in 0..1000 {
            keep.push(std::net::TcpStream::connect(addr).expect("connect"));
            keep.push(l.accept().expect("accept").0);
        }
        let c = std::net::TcpStream::connect(addr).expect("connect");
        let (s, _) = l.accept().expect("accept");
        let (ours, peer) = (s.local_addr().ok(), s.peer_addr().ok());
        let n = 2000;
        let t = std::time::Instant::now();
        for _ in 0..n {
            assert!(matches!(lookup(ours, peer), PeerUid::Uid(_)));
        }
        let per = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        #[cfg(target_os = "linux")]
        let proc_per = {
            let t = std::time::Instant::now();
            for _ in 0..50 {
                let _ = std::fs::read_to_string("/proc/net/tcp");
            }
            t.elapsed().as_secs_f64() * 1e6 / 50.0
        };
        #[cfg(not(target_os = "linux"))]
        let proc_per = 0.0;
        println!(
            "peer uid lookup: {per:.1} us each (netlink), one /proc/net/tcp read: {proc_per:.1} us, with {} sockets open",
            keep.len() + 2
        );
        drop(c);
    }

    #[test]
    fn a_real_connection_is_ours() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let c = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (s, _) = l.accept().expect("accept");
        let got = lookup(s.local_addr().ok(), s.peer_addr().ok());
        if cfg!(target_os = "linux") {
            let me = nix::unistd::geteuid().as_raw();
            assert_eq!(got, PeerUid::Uid(me));
            #[cfg(target_os = "linux")]
            {
                let (ours, peer) = (s.local_addr().expect("a"), s.peer_addr().expect("p"));
                assert_eq!(diag::lookup(ours, peer), Some(me), "netlink path");
                let t = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
                if let (IpAddr::V4(p), IpAddr::V4(o)) = (peer.ip(), ours.ip()) {
                    let k = (v4_key(p, peer.port()), v4_key(o, ours.port()));
                    assert_eq!(find_uid(&t, &k.0, &k.1), Some(me), "/proc path");
                }
            }
        }
        drop(c);
    }
}
