//! Client addresses behind proxies, as pure functions.
//!
//! `X-Forwarded-For` is believed only when the direct peer is a trusted proxy
//! (`TRUSTED_PROXIES`); otherwise anyone could claim any address and dodge
//! per-address limits. Each proxy appends the address it received from, so a
//! hop is as trustworthy as the proxy to its right: every line of the header,
//! in order, is walked from the right through trusted proxies, and the first
//! untrusted hop is the client. A hop that cannot be read (`unknown`, a
//! garbled value) stops the walk: the client is then the trusted proxy that
//! wrote it, never a value further left, which the client itself may have
//! sent. Hops may carry a port (`1.2.3.4:80`, `[2001:db8::1]:80`).
//!
//! Limits key an address by [`limit_key`]: IPv6 per /64 (one host is
//! routinely given a whole /64), IPv4-mapped IPv6 as its IPv4 address.

use std::net::IpAddr;
use std::str::FromStr;

/// An address block such as `10.0.0.0/8`, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let network: IpAddr = addr.trim().parse().map_err(|_| format!("{s:?} is not an IP address or CIDR block"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => {
                p.trim().parse::<u8>().ok().filter(|p| *p <= max).ok_or(format!("{s:?} has a bad prefix length"))?
            }
            None => max,
        };
        Ok(Self { network, prefix })
    }
}

impl Cidr {
    /// Whether `ip` is in this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let (net, ip, bits) = match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => (u128::from(u32::from(n)), u128::from(u32::from(i)), 32),
            (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || (net >> shift) == (ip >> shift)
    }
}

/// The client's address: the peer, or what trusted proxies say they
/// forwarded for (`forwarded_for`: every `X-Forwarded-For` line, in order).
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let mut client = canonical(peer);
    if !is_trusted(client) {
        return client;
    }
    let hops = forwarded_for.iter().flat_map(|line| line.split(',')).collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        let Some(ip) = parse_hop(hop) else { return client };
        client = ip;
        if !is_trusted(ip) {
            return client;
        }
    }
    client
}

/// The scheme a trusted proxy says it received (`X-Forwarded-Proto`, every
/// line): its last value, the one the proxy next to the server wrote;
/// `http` unless that is `https`.
pub fn forwarded_scheme(lines: &[&str]) -> &'static str {
    match lines.iter().flat_map(|l| l.split(',')).next_back().map(str::trim) {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    }
}

/// One `X-Forwarded-For` hop: an address, with or without a port.
pub fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = if let Some(rest) = hop.strip_prefix('[') {
        rest.split_once(']')?.0.parse().ok()?
    } else if let Ok(ip) = hop.parse::<IpAddr>() {
        ip
    } else {
        let (host, port) = hop.rsplit_once(':')?;
        port.parse::<u16>().ok()?;
        IpAddr::V4(host.parse().ok()?)
    };
    Some(canonical(ip))
}

/// An IPv4-mapped IPv6 address as IPv4; any other as it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// What per-address limits count `ip` under: IPv4 as it is (mapped or
/// not), IPv6 per /64.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forwarded_scheme_is_the_last_one_written_and_http_unless_https() {
        assert_eq!(forwarded_scheme(&["https"]), "https");
        assert_eq!(forwarded_scheme(&["http, https"]), "https");
        assert_eq!(forwarded_scheme(&["https", "http"]), "http", "the nearest proxy's line");
        assert_eq!(forwarded_scheme(&["HTTPS "]), "https");
        assert_eq!(forwarded_scheme(&["wss"]), "http");
        assert_eq!(forwarded_scheme(&[]), "http");
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_contain_their_addresses_only() {
        let block: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(block.contains(ip("10.1.255.3")));
        assert!(!block.contains(ip("10.2.0.1")));
        assert!(!block.contains(ip("::1")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        assert!("127.0.0.1".parse::<Cidr>().unwrap().contains(ip("::ffff:127.0.0.1")));
        assert!("fd00::/8".parse::<Cidr>().unwrap().contains(ip("fd12::1")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err() && "nope".parse::<Cidr>().is_err());
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(client_ip(ip("203.0.113.9"), &["1.2.3.4"], &trusted), ip("203.0.113.9"), "untrusted peer");
        assert_eq!(client_ip(ip("10.0.0.2"), &["1.2.3.4"], &trusted), ip("1.2.3.4"));
        assert_eq!(
            client_ip(ip("10.0.0.2"), &["6.6.6.6, 1.2.3.4, 10.0.0.7"], &trusted),
            ip("1.2.3.4"),
            "rightmost untrusted"
        );
        assert_eq!(client_ip(ip("10.0.0.2"), &[], &trusted), ip("10.0.0.2"));
        assert_eq!(client_ip(ip("10.0.0.2"), &["garbage"], &trusted), ip("10.0.0.2"));
        assert_eq!(client_ip(ip("10.0.0.2"), &["1.2.3.4"], &[]), ip("10.0.0.2"), "no proxies trusted");
    }

    /// Issue 17, problem 4: the client's own leftmost value never wins.
    #[test]
    fn a_client_cannot_pass_as_another_address_through_a_trusted_proxy() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let peer = ip("10.0.0.2");
        // The client's own header is the first line; the proxy appended a second.
        assert_eq!(client_ip(peer, &["6.6.6.6", "1.2.3.4"], &trusted), ip("1.2.3.4"), "every line is read");
        // The proxy wrote the client's address with a port.
        assert_eq!(client_ip(peer, &["6.6.6.6, 1.2.3.4:51234"], &trusted), ip("1.2.3.4"));
        assert_eq!(client_ip(peer, &["6.6.6.6, [2001:db8::7]:443"], &trusted), ip("2001:db8::7"));
        // A hop that cannot be read stops the walk at the proxy that wrote it.
        assert_eq!(client_ip(peer, &["6.6.6.6, unknown"], &trusted), ip("10.0.0.2"));
        assert_eq!(client_ip(peer, &["6.6.6.6, unknown, 10.0.0.9"], &trusted), ip("10.0.0.9"));
        // v4-mapped hops and peers are their IPv4 address.
        assert_eq!(client_ip(peer, &["::ffff:1.2.3.4"], &trusted), ip("1.2.3.4"));
        assert_eq!(client_ip(ip("::ffff:10.0.0.2"), &["1.2.3.4"], &trusted), ip("1.2.3.4"));
    }

    #[test]
    fn limits_count_ipv6_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), limit_key(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(limit_key(ip("2001:db8:1:2::1")), limit_key(ip("2001:db8:1:3::1")));
        assert_eq!(limit_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(limit_key(ip("192.0.2.1")), ip("192.0.2.1"));
    }
}
