//! Who is on the other end, beyond `config::client_ip`: the key per-address limits count under,
//! and whether a probe comes from the operator.

use std::net::{IpAddr, Ipv6Addr};

use axum::http::HeaderMap;

use crate::config::{self, IpNet};

/// True for the operator's own probes: the client (through trusted proxies) is on loopback, or
/// the request carries `Authorization: Bearer <server.metrics_token>` while one is set. Such
/// requests may see `/metrics` (when a token is set) and the details of `/readyz`.
pub fn is_operator(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet], token: &str) -> bool {
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    if config::client_ip(peer, forwarded, trusted).is_loopback() {
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
