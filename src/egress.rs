//! Where Corridor may send webhooks: `https` URLs whose host resolves only to public
//! addresses, so a merchant cannot point Corridor at its own network (SSRF). Checked when an
//! endpoint is created and again before every delivery, and the delivery connects to the
//! address that was checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

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

/// Whether an address is publicly routable (not loopback, private, link-local, CGNAT,
/// unique-local, unspecified, multicast, or an IPv4-mapped form of those).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let seg0 = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg0 & 0xffc0) == 0xfe80 // link-local fe80::/10
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0))
        }
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    !(a == 0 // 0.0.0.0/8
        || v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a >= 240)
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
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
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
