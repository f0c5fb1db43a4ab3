//! `server.trusted_proxies`: the reverse proxies whose `X-Forwarded-For` is believed, as
//! addresses or CIDR networks (`127.0.0.1, 10.0.0.0/8, ::1`).

use std::net::IpAddr;

/// An address with a prefix length; a bare address is a /32 (IPv4) or /128 (IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// `192.0.2.0/24`, `2001:db8::/32` or a bare address.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let wrong = || format!("`{text}` is not an IP address or network such as 10.0.0.0/8");
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| wrong())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(wrong)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` lies in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (net, ip, bits) = match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => (u32::from(n) as u128, u32::from(i) as u128, 32),
            (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
            _ => return false,
        };
        let host_bits = bits - u32::from(self.prefix);
        host_bits >= bits || (net >> host_bits) == (ip >> host_bits)
    }
}

/// A comma-separated list of networks; empty means none.
pub fn parse_networks(text: &str) -> Result<Vec<IpNet>, String> {
    super::split_list(text)
        .iter()
        .map(|t| IpNet::parse(t))
        .collect()
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then the
/// `X-Forwarded-For` entries are read from the right (the nearest hop), skipping trusted
/// proxies, and the first other address is the client. A malformed entry stops the walk at the
/// last address a trusted proxy vouched for, so a forged value never reaches further than that.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let trusted_ip = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !trusted_ip(peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted_ip(ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_contain_what_their_prefix_says() {
        let nets = parse_networks("10.0.0.0/8, 192.0.2.7, 2001:db8::/32").unwrap();
        assert!(nets[0].contains(ip("10.200.1.2")));
        assert!(!nets[0].contains(ip("11.0.0.1")));
        assert!(nets[1].contains(ip("192.0.2.7")));
        assert!(!nets[1].contains(ip("192.0.2.8")));
        assert!(nets[2].contains(ip("2001:db8:1::5")));
        assert!(!nets[2].contains(ip("2001:db9::1")));
        assert!(nets[0].contains(ip("::ffff:10.1.2.3")));
        assert!(
            IpNet::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("203.0.113.9"))
        );
        assert!(IpNet::parse("10.0.0.0/33").is_err());
        assert!(IpNet::parse("proxy.local").is_err());
        assert_eq!(parse_networks(" ").unwrap(), vec![]);
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let trusted = parse_networks("127.0.0.1, 172.16.0.0/12").unwrap();
        let xff = |v: &'static str| std::iter::once(v);
        // Straight from the internet: the header is the client's own claim, ignored.
        assert_eq!(
            client_ip(ip("203.0.113.5"), xff("1.2.3.4"), &trusted),
            ip("203.0.113.5")
        );
        // Through the proxy: the address the proxy saw.
        assert_eq!(
            client_ip(ip("127.0.0.1"), xff("198.51.100.7"), &trusted),
            ip("198.51.100.7")
        );
        // A client forging a first entry gets the address the proxy appended, not the forgery.
        assert_eq!(
            client_ip(ip("127.0.0.1"), xff("1.1.1.1, 198.51.100.7"), &trusted),
            ip("198.51.100.7")
        );
        // Two trusted proxies in a row are skipped.
        assert_eq!(
            client_ip(ip("127.0.0.1"), xff("198.51.100.7, 172.18.0.3"), &trusted),
            ip("198.51.100.7")
        );
        // Garbage stops the walk at the last vouched-for address.
        assert_eq!(
            client_ip(ip("127.0.0.1"), xff("nonsense"), &trusted),
            ip("127.0.0.1")
        );
        // No trusted proxies configured: always the peer.
        assert_eq!(
            client_ip(ip("127.0.0.1"), xff("198.51.100.7"), &[]),
            ip("127.0.0.1")
        );
    }
}
