//! Who is on the other end: the client address (through trusted reverse proxies only) and the
//! key that per-address limits count under.

use std::net::{IpAddr, Ipv6Addr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client's address: the TCP peer, unless the peer is a trusted proxy, then the right-most
/// address in `X-Forwarded-For` that is not itself a trusted proxy. Anything a client writes
/// into the header to the left of that is ignored, so it cannot pick its own address.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut forwarded = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        // A header we cannot read entirely is not trusted at all.
        let Ok(text) = value.to_str() else {
            return peer;
        };
        for item in text.split(',') {
            match item.trim().parse::<IpAddr>() {
                Ok(ip) => forwarded.push(canonical(ip)),
                Err(_) => return peer,
            }
        }
    }
    let mut client = peer;
    for ip in forwarded.into_iter().rev() {
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// True for the operator's own probes: the client (through trusted proxies) is on loopback, or
/// the request carries `Authorization: Bearer <server.metrics_token>` while one is set. Such
/// requests may see `/metrics` (when a token is set) and the details of `/readyz`.
pub fn is_operator(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet], token: &str) -> bool {
    if client_ip(peer, headers, trusted).is_loopback() {
        return true;
    }
    let token = token.trim();
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .trim();
    crate::auth::csrf::matches(token, given)
}

/// What per-address limits count under: an IPv4 address, or the /64 network of an IPv6 one
/// (one subscriber usually holds a whole /64, so counting single IPv6 addresses would give
/// them 2^64 budgets).
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, from dual-stack sockets) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let trusted = crate::config::parse_networks("127.0.0.1, 10.0.0.0/8").unwrap();
        // Not a proxy: whatever it claims is ignored.
        assert_eq!(
            client_ip(ip("203.0.113.9"), &headers("198.51.100.1"), &trusted),
            ip("203.0.113.9")
        );
        // A trusted proxy: the right-most untrusted address wins; a forged left part is ignored.
        assert_eq!(
            client_ip(
                ip("127.0.0.1"),
                &headers("1.1.1.1, 198.51.100.7, 10.1.2.3"),
                &trusted
            ),
            ip("198.51.100.7")
        );
        // No header, or one we cannot read: the proxy itself.
        assert_eq!(
            client_ip(ip("127.0.0.1"), &HeaderMap::new(), &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), &headers("1.1.1.1, junk"), &trusted),
            ip("127.0.0.1")
        );
        // Nothing configured: the peer, always.
        assert_eq!(
            client_ip(ip("127.0.0.1"), &headers("198.51.100.7"), &[]),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn ipv6_clients_are_limited_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            limit_key(ip("2001:db8:1:2:aaaa::1")),
            limit_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_ne!(
            limit_key(ip("2001:db8:1:2::1")),
            limit_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(limit_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(limit_key(ip("192.0.2.1")), ip("192.0.2.1"));
    }
}
