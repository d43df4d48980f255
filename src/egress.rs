//! Where Corridor may send webhooks: `https` URLs whose host resolves only to public
//! addresses, so a merchant cannot point Corridor at its own network (SSRF). Checked when an
//! endpoint is created and again before every delivery, and the delivery connects to the
//! address that was checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{Ipv4Net, Ipv6Net};

/// Longest accepted webhook URL.
pub const MAX_URL_LEN: usize = 2048;

/// Why a URL may not receive webhooks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// Not an absolute http(s) URL with a host, or too long.
    #[error("{0}")]
    Invalid(String),
    /// Resolves (also) to a loopback, private or otherwise non-public address.
    #[error("the URL's host must resolve only to public addresses")]
    NotPublic,
    /// The host does not resolve.
    #[error("the URL's host does not resolve")]
    Unresolvable,
}

/// IPv4 blocks of IANA's special-purpose address registry (and multicast), none of which a
/// webhook may reach. Refused whole, including the few entries the registry marks globally
/// reachable (AS112, AMT, 192.0.0.9/10): no merchant's webhook receiver lives there.
const SPECIAL_V4: &[Ipv4Net] = &[
    v4(Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network"
    v4(Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    v4(Ipv4Addr::new(100, 64, 0, 0), 10),   // shared address space (CGNAT)
    v4(Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    v4(Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local (cloud metadata)
    v4(Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    v4(Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    v4(Ipv4Addr::new(192, 0, 2, 0), 24),    // TEST-NET-1
    v4(Ipv4Addr::new(192, 31, 196, 0), 24), // AS112-v4
    v4(Ipv4Addr::new(192, 52, 193, 0), 24), // AMT
    v4(Ipv4Addr::new(192, 88, 99, 0), 24),  // deprecated 6to4 relay anycast
    v4(Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    v4(Ipv4Addr::new(192, 175, 48, 0), 24), // AS112 direct delegation
    v4(Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    v4(Ipv4Addr::new(198, 51, 100, 0), 24), // TEST-NET-2
    v4(Ipv4Addr::new(203, 0, 113, 0), 24),  // TEST-NET-3
    v4(Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    v4(Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, and broadcast
];

/// IPv6 blocks inside global unicast (`2000::/3`) that IANA's special-purpose registry sets
/// aside; everything outside `2000::/3` (loopback, `::/96` IPv4-compatible, `64:ff9b::/96`
/// NAT64, discard, unique-local, link-local, multicast, SRv6) is refused by that rule alone.
const SPECIAL_V6: &[Ipv6Net] = &[
    v6(Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23), // IETF protocol assignments (Teredo, ORCHID, …)
    v6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    v6(Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16), // 6to4: embeds an IPv4 address
    v6(Ipv6Addr::new(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0), 48), // AS112 direct delegation
    v6(Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation
];

const fn v4(addr: Ipv4Addr, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(addr, len)
}

const fn v6(addr: Ipv6Addr, len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(addr, len)
}

/// Global unicast, the only IPv6 space a public host can be in.
const GLOBAL_V6: Ipv6Net = v6(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);

/// Whether an address is publicly routable: outside every special-purpose block of IANA's
/// IPv4 and IPv6 registries. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is judged as
/// the IPv4 address it is; every other form that embeds IPv4 is refused.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            GLOBAL_V6.contains(&v6) && !SPECIAL_V6.iter().any(|b| b.contains(&v6))
        }
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    !SPECIAL_V4.iter().any(|b| b.contains(&v4))
}

/// A URL that passed the checks, with the address to connect to.
#[derive(Debug, Clone)]
pub struct Target {
    /// The parsed URL.
    pub url: reqwest::Url,
    /// Host name as written (for `resolve` pinning).
    pub host: String,
    /// The checked address the request must go to.
    pub addr: SocketAddr,
}

/// Parses and checks a webhook URL without resolving it (format only).
pub fn parse(url: &str, allow_private: bool) -> Result<reqwest::Url, EgressError> {
    if url.len() > MAX_URL_LEN {
        return Err(EgressError::Invalid(format!(
            "url must be at most {MAX_URL_LEN} characters"
        )));
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|_| EgressError::Invalid("url is not a valid absolute URL".into()))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(EgressError::Invalid("url must use https".into())),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(EgressError::Invalid("url must have a host".into()));
    }
    if parsed.port() == Some(0) {
        return Err(EgressError::Invalid("url must not use port 0".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(EgressError::Invalid(
            "url must not carry credentials".into(),
        ));
    }
    Ok(parsed)
}

/// Parses, resolves and checks a URL; every resolved address must be public (unless
/// `allow_private`). Returns the first address, which the request is then pinned to.
pub async fn resolve(url: &str, allow_private: bool) -> Result<Target, EgressError> {
    let parsed = parse(url, allow_private)?;
    let host = parsed
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_owned();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|_| EgressError::Unresolvable)?
            .collect(),
    };
    let first = *addrs.first().ok_or(EgressError::Unresolvable)?;
    if !allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
        return Err(EgressError::NotPublic);
    }
    Ok(Target {
        url: parsed,
        host,
        addr: first,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "255.255.255.255",
            "224.0.0.1",
            // Forms that embed IPv4, and the rest of the special-purpose registries.
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2001::1",
            "2001:db8::1",
            "3fff::1",
            "100::1",
            "5f00::1",
            "ff02::1",
            "198.18.0.1",
            "198.19.255.255",
            "192.0.0.1",
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.1",
            "192.88.99.1",
            "240.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "198.20.0.1",
            "192.0.1.1",
            "2a00:1450:4001::1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_must_be_https_to_public_hosts() {
        assert!(matches!(
            resolve("http://1.1.1.1/x", false).await,
            Err(EgressError::Invalid(_))
        ));
        assert!(matches!(
            resolve("ftp://1.1.1.1/x", true).await,
            Err(EgressError::Invalid(_))
        ));
        assert_eq!(
            resolve("https://127.0.0.1/x", false).await.unwrap_err(),
            EgressError::NotPublic
        );
        assert_eq!(
            resolve("https://[::ffff:10.0.0.1]/x", false)
                .await
                .unwrap_err(),
            EgressError::NotPublic
        );
        assert!(resolve("https://1.1.1.1/hook", false).await.is_ok());
        assert!(matches!(
            resolve("https://1.1.1.1:0/hook", false).await,
            Err(EgressError::Invalid(_))
        ));
        assert!(resolve("http://127.0.0.1:9/hook", true).await.is_ok());
        assert!(matches!(
            resolve("https://user:pw@1.1.1.1/", false).await,
            Err(EgressError::Invalid(_))
        ));
        let long = format!("https://1.1.1.1/{}", "a".repeat(MAX_URL_LEN));
        assert!(matches!(
            resolve(&long, false).await,
            Err(EgressError::Invalid(_))
        ));
    }
}
