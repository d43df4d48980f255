//! Who is calling: the client address a request is counted against, and the failures counted
//! per client (wrong API keys, wrong dashboard sign-ins).
//!
//! The address is the TCP peer's. `X-Forwarded-For` is believed only when the peer is one of
//! the proxies the operator configured (`CORRIDOR_TRUSTED_PROXIES`): any client can write the
//! header, so believing it from anyone would let an attacker escape its limit and lock out
//! somebody else by naming their address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use ipnet::IpNet;

use super::AppState;

/// The proxies whose `X-Forwarded-For` is believed: addresses or CIDR blocks, comma-separated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{p}` is not an IP address or CIDR block"))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }
}

impl TrustedProxies {
    /// Whether requests from `peer` may name their client in `X-Forwarded-For`.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = canonical(peer);
        self.0.iter().any(|net| net.contains(&peer))
    }
}

/// `::ffff:a.b.c.d` is the IPv4 client `a.b.c.d`.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client a request is counted against. IPv6 clients are counted per /64, the block one
/// subscriber usually holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ClientKey {
    /// Shared by clients whose address is unknown, and by newcomers while the table is full.
    const SHARED: ClientKey = ClientKey(IpAddr::V6(Ipv6Addr::UNSPECIFIED));

    /// The key of address `ip`.
    pub fn of(ip: IpAddr) -> ClientKey {
        match canonical(ip) {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                ClientKey(IpAddr::V6(Ipv6Addr::new(
                    s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                )))
            }
            v4 => ClientKey(v4),
        }
    }

    /// The client of a request: its peer, or — when the peer is a trusted proxy — the
    /// address that proxy appended to `X-Forwarded-For` (the right-most entry; entries to
    /// its left were written by whoever sent the request and prove nothing).
    pub fn from_parts(parts: &Parts, proxies: &TrustedProxies) -> ClientKey {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return ClientKey::SHARED;
        };
        let forwarded = proxies
            .trusts(peer.ip())
            .then(|| {
                parts
                    .headers
                    .get_all("x-forwarded-for")
                    .iter()
                    .next_back()
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.rsplit(',').next())
                    .and_then(|ip| ip.trim().parse::<IpAddr>().ok())
            })
            .flatten();
        ClientKey::of(forwarded.unwrap_or(peer.ip()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientKey
where
    AppState: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientKey::from_parts(
            parts,
            &AppState::from_ref(state).trusted_proxies,
        ))
    }
}

/// Recent failures per client, in this process.
#[derive(Debug)]
pub struct FailureLimiter {
    failures: Mutex<HashMap<ClientKey, Vec<Instant>>>,
    max: usize,
    window: Duration,
}

/// Clients tracked at most; past it, new clients share one bucket, so an attacker with many
/// addresses cannot grow memory without bound nor escape the limit.
const MAX_CLIENTS: usize = 100_000;

impl FailureLimiter {
    /// At most `max` failures per client within `window` (`max` 0: no limit).
    pub fn new(max: usize, window: Duration) -> FailureLimiter {
        FailureLimiter {
            failures: Mutex::new(HashMap::new()),
            max,
            window,
        }
    }

    /// How long `client` must wait before trying again, if it has used up its failures.
    pub fn blocked_for(&self, client: ClientKey, now: Instant) -> Option<Duration> {
        if self.max == 0 {
            return None;
        }
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let recent: Vec<&Instant> = map
            .get(&client)?
            .iter()
            .filter(|t| now.duration_since(**t) < self.window)
            .collect();
        if recent.len() < self.max {
            return None;
        }
        let oldest = recent.into_iter().min()?;
        Some(self.window.saturating_sub(now.duration_since(*oldest)))
    }

    /// Counts a failure.
    pub fn record_failure(&self, client: ClientKey, now: Instant) {
        if self.max == 0 {
            return;
        }
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CLIENTS && !map.contains_key(&client) {
            map.retain(|_, ts| ts.iter().any(|t| now.duration_since(*t) < self.window));
        }
        let key = if map.len() >= MAX_CLIENTS && !map.contains_key(&client) {
            ClientKey::SHARED
        } else {
            client
        };
        let window = self.window;
        let entry = map.entry(key).or_default();
        entry.retain(|t| now.duration_since(*t) < window);
        // Only the newest `max` matter for the decision.
        if entry.len() >= self.max {
            entry.remove(0);
        }
        entry.push(now);
    }

    /// Forgets a client's failures after it succeeded.
    pub fn clear(&self, client: ClientKey) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_blocks_after_max_failures_until_the_window_passes() {
        let l = FailureLimiter::new(3, Duration::from_secs(60));
        let a = ClientKey::of("10.0.0.1".parse().unwrap());
        let b = ClientKey::of("10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(l.blocked_for(a, t0), None);
            l.record_failure(a, t0 + Duration::from_secs(i));
        }
        let wait = l.blocked_for(a, t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(wait, Duration::from_secs(50));
        assert_eq!(l.blocked_for(b, t0 + Duration::from_secs(10)), None);
        assert_eq!(l.blocked_for(a, t0 + Duration::from_secs(61)), None);
        l.clear(a);
        assert_eq!(l.blocked_for(a, t0 + Duration::from_secs(10)), None);
        let off = FailureLimiter::new(0, Duration::from_secs(60));
        for _ in 0..10 {
            off.record_failure(a, t0);
        }
        assert_eq!(off.blocked_for(a, t0), None);
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_block_and_mapped_v4_as_v4() {
        let a = ClientKey::of("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientKey::of("2001:db8:1:2:bbbb::9".parse().unwrap());
        assert_eq!(a, b);
        let m = ClientKey::of("::ffff:192.0.2.1".parse().unwrap());
        assert_eq!(m, ClientKey::of("192.0.2.1".parse().unwrap()));
    }

    fn parts(peer: &str, xff: &[&str]) -> Parts {
        let mut req = axum::http::Request::builder();
        for v in xff {
            req = req.header("x-forwarded-for", *v);
        }
        let (mut parts, ()) = req.body(()).unwrap().into_parts();
        parts
            .extensions
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        parts
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let none = TrustedProxies::default();
        let lb: TrustedProxies = "10.0.0.0/8, 192.0.2.7".parse().unwrap();
        let key = |s: &str| ClientKey::of(s.parse().unwrap());
        // Anyone may write the header; only a configured proxy is believed.
        let spoofed = parts("127.0.0.1:5000", &["203.0.113.9"]);
        assert_eq!(ClientKey::from_parts(&spoofed, &none), key("127.0.0.1"));
        let proxied = parts("10.1.2.3:5000", &["198.51.100.1, 203.0.113.9"]);
        assert_eq!(ClientKey::from_parts(&proxied, &lb), key("203.0.113.9"));
        let proxied = parts("[::ffff:192.0.2.7]:5000", &["6.6.6.6", "203.0.113.9"]);
        assert_eq!(ClientKey::from_parts(&proxied, &lb), key("203.0.113.9"));
        let other = parts("192.0.2.8:5000", &["203.0.113.9"]);
        assert_eq!(ClientKey::from_parts(&other, &lb), key("192.0.2.8"));
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("proxy.local".parse::<TrustedProxies>().is_err());
        assert_eq!("".parse::<TrustedProxies>().unwrap(), none);
    }
}
