//! CIDR lists and the client address behind a trusted proxy (API.md §12
//! "IP allowlist"). Parsing is `ipnet`'s; a bare address is a /32 (or /128).

use ipnet::IpNet;
use std::net::IpAddr;

/// Parse one CIDR (`10.0.0.0/8`, `::1/128`) or a bare address (a host route).
/// IPv4-mapped IPv6 addresses are compared as IPv4.
///
/// Errors: a lowercase message naming the value.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    match t.parse::<IpAddr>() {
        Ok(a) => Ok(IpNet::from(canonical(a))),
        Err(_) => Err(format!(
            "invalid cidr '{s}': expected an address or address/prefix such as 10.0.0.0/8"
        )),
    }
}

/// Parse a list of CIDRs. Errors: the first bad value's message.
pub fn parse_list<S: AsRef<str>>(v: &[S]) -> Result<Vec<IpNet>, String> {
    v.iter().map(|s| parse_cidr(s.as_ref())).collect()
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as plain IPv4; anything else unchanged.
pub fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Is `ip` inside any of `nets`?
pub fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    nets.iter().any(|n| n.contains(&ip))
}

/// The client address: the peer, or — only when the peer is a trusted proxy —
/// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy
/// (the standard walk: entries left of an untrusted hop may be forged).
/// An unparsable entry stops the walk and the last trusted hop is used.
pub fn client_ip(peer: IpAddr, xff: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if !contains(trusted, peer) {
        return peer;
    }
    let Some(x) = xff else { return peer };
    let mut cur = peer;
    for part in x.rsplit(',') {
        let p = part.trim();
        let parsed = p
            .parse::<IpAddr>()
            .ok()
            .or_else(|| p.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()));
        let Some(a) = parsed.map(canonical) else {
            return cur;
        };
        cur = a;
        if !contains(trusted, a) {
            return a;
        }
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn parses_and_matches() {
        let n = parse_list(&["10.0.0.0/8", "192.168.1.7", "::1/128"]).expect("list");
        assert!(contains(&n, ip("10.2.3.4")));
        assert!(contains(&n, ip("192.168.1.7")));
        assert!(!contains(&n, ip("192.168.1.8")));
        assert!(contains(&n, ip("::1")));
        assert!(contains(&n, ip("::ffff:10.0.0.1")));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("nope").is_err());
        assert!(parse_cidr("").is_err());
        // host bits are ignored: 10.1.2.3/8 is 10.0.0.0/8
        assert!(contains(
            &[parse_cidr("10.1.2.3/8").expect("cidr")],
            ip("10.9.9.9")
        ));
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted = parse_list(&["127.0.0.1"]).expect("list");
        let lo = ip("127.0.0.1");
        assert_eq!(client_ip(lo, Some("10.1.2.3"), &trusted), ip("10.1.2.3"));
        assert_eq!(client_ip(lo, None, &trusted), lo);
        // forged left-most entries are ignored
        assert_eq!(
            client_ip(lo, Some("1.1.1.1, 10.1.2.3"), &trusted),
            ip("10.1.2.3")
        );
        assert_eq!(client_ip(lo, Some("garbage"), &trusted), lo);
        // an untrusted peer's header is never read
        assert_eq!(client_ip(lo, Some("10.1.2.3"), &[]), lo);
    }

    proptest! {
        #[test]
        fn cidr_parser_never_panics(s in ".{0,60}") {
            let _ = parse_cidr(&s);
        }

        #[test]
        fn v4_prefix_contains_its_network(a in any::<u32>(), len in 0u8..=32) {
            let addr = std::net::Ipv4Addr::from(a);
            let n = parse_cidr(&format!("{addr}/{len}")).expect("valid");
            prop_assert!(contains(&[n], IpAddr::V4(addr)));
        }

        #[test]
        fn xff_walk_never_panics(x in ".{0,80}") {
            let t = parse_list(&["127.0.0.0/8"]).expect("list");
            let _ = client_ip("127.0.0.1".parse().expect("ip"), Some(&x), &t);
        }
    }
}
