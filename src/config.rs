//! Configuration: one typed struct, read once from flags, environment, `.env` and
//! `corridor.toml`, validated before anything starts.
//!
//! Precedence: flags > environment > `.env` > `corridor.toml` > defaults. A bad value stops
//! start-up with a message naming the variable, never echoing a secret.

use secrecy::{ExposeSecret, SecretString};
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::domain::CorridorTable;
use crate::domain::corridor::CorridorSpec;

/// A duration written with a unit: `250ms`, `5s`, `15m`, `2h`, `30d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("`{s}` needs a unit (ms, s, m, h or d)"))?;
        let (num, unit) = s.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a duration like 5s"))?;
        let ms = match unit {
            "ms" => Some(n),
            "s" => n.checked_mul(1_000),
            "m" => n.checked_mul(60_000),
            "h" => n.checked_mul(3_600_000),
            "d" => n.checked_mul(86_400_000),
            _ => return Err(format!("`{s}`: unit must be ms, s, m, h or d")),
        }
        .ok_or_else(|| format!("`{s}` is too long"))?;
        Ok(Dur(Duration::from_millis(ms)))
    }
}

/// A uniform range of durations: `2s..5s` (a single value means a fixed delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurRange {
    /// Shortest delay.
    pub min: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl FromStr for DurRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s.split_once("..").unwrap_or((s, s));
        let (min, max) = (a.parse::<Dur>()?.0, b.parse::<Dur>()?.0);
        if min > max {
            return Err(format!("`{s}`: the range's start is after its end"));
        }
        Ok(DurRange { min, max })
    }
}

/// A probability between 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probability(pub f64);

impl FromStr for Probability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().parse::<f64>() {
            Ok(p) if (0.0..=1.0).contains(&p) => Ok(Probability(p)),
            _ => Err(format!("`{s}` is not a probability between 0 and 1")),
        }
    }
}

/// A retry schedule: comma-separated durations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule(pub Vec<Duration>);

impl FromStr for Schedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v = s
            .split(',')
            .map(|p| p.parse::<Dur>().map(|d| d.0))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Schedule(v))
    }
}

/// A request rate: `N/s` or `N/m`; `0` disables the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per period (0 = unlimited).
    pub requests: u32,
    /// The period.
    pub per: Duration,
}

impl FromStr for RateLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "0" {
            return Ok(RateLimit {
                requests: 0,
                per: Duration::from_secs(1),
            });
        }
        let (n, unit) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not a rate like 100/s"))?;
        let requests: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a rate like 100/s"))?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            _ => return Err(format!("`{s}`: the period must be s or m")),
        };
        Ok(RateLimit { requests, per })
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (default for `serve`).
    Json,
    /// Human-readable lines.
    Text,
}

/// Where the market's rates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RateSourceKind {
    /// The built-in mid table, fixed.
    Static,
    /// Each direction's mid walks randomly from the table's, one step a second.
    Simulated,
}

/// Which parts of Corridor a `serve` process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// HTTP API and workers.
    All,
    /// HTTP API only.
    Api,
    /// Workers only (HTTP for health and metrics).
    Worker,
}

/// Everything a Corridor process is configured with.
/// Parses a secret setting into a type whose `Debug` never shows it.
fn secret(s: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(s.to_owned()))
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to serve on (port 0 picks a free port).
    #[arg(long, env = "CORRIDOR_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// `sqlite://PATH` (embedded) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://corridor.db")]
    pub database_url: String,
    /// Admin API key; generated and printed once on first start when unset.
    #[arg(long, env = "CORRIDOR_ADMIN_KEY", hide_env_values = true, value_parser = secret)]
    pub admin_key: Option<SecretString>,
    /// How long a quote's rate is locked (whole seconds, at least 1 s).
    #[arg(long, env = "CORRIDOR_QUOTE_TTL", default_value = "60s")]
    pub quote_ttl: Dur,
    /// First settlement poll delay (then backoff).
    #[arg(long, env = "CORRIDOR_POLL_INTERVAL", default_value = "5s")]
    pub poll_interval: Dur,
    /// Simulated onramp settlement time, uniform in the range.
    #[arg(long, env = "CORRIDOR_SIM_ONRAMP_DELAY", default_value = "2s..5s")]
    pub sim_onramp_delay: DurRange,
    /// Simulated offramp settlement time, uniform in the range.
    #[arg(long, env = "CORRIDOR_SIM_OFFRAMP_DELAY", default_value = "2s..5s")]
    pub sim_offramp_delay: DurRange,
    /// How long after it settles a simulated payout to `sim_return_offramp` comes back.
    #[arg(long, env = "CORRIDOR_SIM_RETURN_DELAY", default_value = "10s")]
    pub sim_return_delay: Dur,
    /// How long after a payout settles Corridor asks the offramp once more whether it came
    /// back (the beneficiary's bank returned it). Default: `30s` with the in-process
    /// simulator, off (`0s`) with an HTTP offramp, which reports returns by webhook
    /// (`offramp.returned`).
    #[arg(long, env = "CORRIDOR_RETURN_CHECK_AFTER")]
    pub return_check_after: Option<Dur>,
    /// Probability that a simulated leg fails.
    #[arg(long, env = "CORRIDOR_SIM_FAILURE_RATE", default_value = "0")]
    pub sim_failure_rate: Probability,
    /// Merchant webhook retry schedule.
    #[arg(
        long,
        env = "CORRIDOR_WEBHOOK_RETRY",
        default_value = "5s,5m,30m,2h,5h,10h"
    )]
    pub webhook_retry: Schedule,
    /// Allow `http` webhook URLs and private addresses (development only).
    #[arg(long, env = "CORRIDOR_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub webhook_allow_private: bool,
    /// How long one webhook delivery may take.
    #[arg(long, env = "CORRIDOR_WEBHOOK_TIMEOUT", default_value = "10s")]
    pub webhook_timeout: Dur,
    /// Onramp provider speaking the provider protocol; unset = in-process simulator.
    #[arg(long, env = "CORRIDOR_ONRAMP_URL")]
    pub onramp_url: Option<String>,
    /// Offramp provider speaking the provider protocol; unset = in-process simulator.
    #[arg(long, env = "CORRIDOR_OFFRAMP_URL")]
    pub offramp_url: Option<String>,
    /// Name of the HTTP onramp on legs and in webhook URLs (used with `CORRIDOR_ONRAMP_URL`).
    #[arg(long, env = "CORRIDOR_ONRAMP_NAME", default_value = "http-onramp")]
    pub onramp_name: String,
    /// Name of the HTTP offramp on legs and in webhook URLs (used with `CORRIDOR_OFFRAMP_URL`).
    #[arg(long, env = "CORRIDOR_OFFRAMP_NAME", default_value = "http-offramp")]
    pub offramp_name: String,
    /// Secret the onramp signs its webhooks with (`whsec_…`); unset: its webhooks are
    /// refused (polling still settles its legs). Never stored in the database.
    #[arg(long, env = "CORRIDOR_ONRAMP_WEBHOOK_SECRET", hide_env_values = true, value_parser = secret)]
    pub onramp_webhook_secret: Option<SecretString>,
    /// Secret the offramp signs its webhooks with (`whsec_…`), likewise.
    #[arg(long, env = "CORRIDOR_OFFRAMP_WEBHOOK_SECRET", hide_env_values = true, value_parser = secret)]
    pub offramp_webhook_secret: Option<SecretString>,
    /// Timeout of one provider call (the job lease must exceed it).
    #[arg(long, env = "CORRIDOR_PROVIDER_TIMEOUT", default_value = "10s")]
    pub provider_timeout: Dur,
    /// A request's head must arrive within this (and an idle HTTP/1 keep-alive connection is
    /// closed after it): half-sent requests cannot hold connections open.
    #[arg(long, env = "CORRIDOR_HEADER_READ_TIMEOUT", default_value = "10s")]
    pub header_read_timeout: Dur,
    /// A connection that moves no byte either way for this long is closed (after finishing
    /// a request in flight). Must exceed `CORRIDOR_REQUEST_TIMEOUT`.
    #[arg(long, env = "CORRIDOR_IDLE_TIMEOUT", default_value = "60s")]
    pub idle_timeout: Dur,
    /// Open connections at most; past it a new one is answered 503 and closed. Keep it
    /// below the process's file descriptor limit (`ulimit -n`, often 1024).
    #[arg(long, env = "CORRIDOR_MAX_CONNECTIONS", default_value_t = 768)]
    pub max_connections: usize,
    /// Open connections one client address may hold; past it a new one is answered 429 and
    /// closed. `CORRIDOR_TRUSTED_PROXIES` are exempt.
    #[arg(
        long,
        env = "CORRIDOR_MAX_CONNECTIONS_PER_CLIENT",
        default_value_t = 128
    )]
    pub max_connections_per_client: usize,
    /// An API request still running after this answers 503.
    #[arg(long, env = "CORRIDOR_REQUEST_TIMEOUT", default_value = "10s")]
    pub request_timeout: Dur,
    /// URL new alerts are POSTed to.
    #[arg(long, env = "CORRIDOR_ALERT_WEBHOOK")]
    pub alert_webhook: Option<String>,
    /// `whsec_…` secret alerts POSTed to `CORRIDOR_ALERT_WEBHOOK` are signed with.
    #[arg(long, env = "CORRIDOR_ALERT_WEBHOOK_SECRET", hide_env_values = true, value_parser = secret)]
    pub alert_webhook_secret: Option<SecretString>,
    /// A payment this long in one non-terminal state raises an alert.
    #[arg(long, env = "CORRIDOR_STUCK_AFTER", default_value = "15m")]
    pub stuck_after: Dur,
    /// Requests per API key and process (`N/s`, `N/m`, `0` = no limit).
    #[arg(long, env = "CORRIDOR_RATE_LIMIT", default_value = "100/s")]
    pub rate_limit: RateLimit,
    /// Unknown API keys one client address may present (`N/s`, `N/m`, `0` = no limit);
    /// past it the client gets 429 until the window passes, whatever key it sends.
    #[arg(long, env = "CORRIDOR_AUTH_FAILURE_LIMIT", default_value = "30/m")]
    pub auth_failure_limit: RateLimit,
    /// Proxies (addresses or CIDR blocks, comma-separated) whose `X-Forwarded-For` names the
    /// client; from anyone else the header is ignored. Empty: the TCP peer is the client.
    #[arg(long, env = "CORRIDOR_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: crate::api::client::TrustedProxies,
    /// How long a claimed job is held before another worker may take it.
    #[arg(long, env = "CORRIDOR_JOB_LEASE", default_value = "30s")]
    pub job_lease: Dur,
    /// Concurrent job handlers in this process (0: none). Handlers are tasks, not threads:
    /// most of a step is waiting for its commit, and the more steps wait together, the more
    /// units each commit carries (64 drained a creation burst 1.8× faster than 16).
    #[arg(long, env = "CORRIDOR_WORKERS", default_value_t = 64)]
    pub workers: usize,
    /// Concurrent webhook deliveries in this process, a budget apart from
    /// `CORRIDOR_WORKERS` (one merchant gets at most half of it, at least 3).
    #[arg(long, env = "CORRIDOR_WEBHOOK_WORKERS", default_value_t = 8)]
    pub webhook_workers: usize,
    /// How long events, webhook delivery attempts and cleared alerts are kept (the
    /// housekeeping job purges older ones every 10 minutes). At least 1 day.
    #[arg(long, env = "CORRIDOR_HISTORY_RETENTION", default_value = "30d")]
    pub history_retention: Dur,
    /// How often a reconciliation of the ledger against the providers' statements runs,
    /// over the period since the previous one (`0s`: only when an operator asks).
    #[arg(long, env = "CORRIDOR_RECONCILE_EVERY", default_value = "1h")]
    pub reconcile_every: Dur,
    /// Log filter (tracing syntax).
    #[arg(long, env = "CORRIDOR_LOG", default_value = "info")]
    pub log: String,
    /// Log format.
    #[arg(long, env = "CORRIDOR_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// Spread applied to mid rates, in basis points.
    #[arg(long, env = "CORRIDOR_SPREAD_BPS", default_value_t = 50)]
    pub spread_bps: u32,
    /// Where mid rates come from: `static` (the built-in table) or `simulated` (a seeded
    /// random walk from the table's rates; quotes lock the customer rate as ever, and a
    /// payout executes at the walk's mid when it settles — the difference is the platform's
    /// FX gain or loss).
    #[arg(
        long,
        env = "CORRIDOR_RATE_SOURCE",
        value_enum,
        default_value = "static"
    )]
    pub rate_source: RateSourceKind,
    /// The simulated market's volatility: how far a mid moves per second, as a fraction of
    /// itself (one standard deviation). Between 0 and 0.01.
    #[arg(long, env = "CORRIDOR_MARKET_VOLATILITY", default_value = "0.0001")]
    pub market_volatility: rust_decimal::Decimal,
    /// The simulated market's seed: the same seed and clock give the same rates.
    #[arg(long, env = "CORRIDOR_MARKET_SEED", default_value_t = 1)]
    pub market_seed: u64,
    /// How long a job failing transiently (provider or database unavailable) is retried,
    /// backing off to every 5 minutes, before it is dead-lettered (once it has also failed
    /// `CORRIDOR_JOB_MAX_ATTEMPTS` times). `0s`: attempts alone decide.
    #[arg(long, env = "CORRIDOR_JOB_RETRY_FOR", default_value = "24h")]
    pub job_retry_for: Dur,
    /// Attempts before a failing job may be dead-lettered (a refused one is at once).
    #[arg(long, env = "CORRIDOR_JOB_MAX_ATTEMPTS", default_value_t = 8)]
    pub job_max_attempts: u32,
    /// Database connections per process (PostgreSQL; SQLite uses one writer plus this many
    /// readers). Keep nodes × pool under the server's `max_connections`.
    #[arg(long, env = "CORRIDOR_DB_POOL", default_value_t = 8)]
    pub db_pool: u32,
    /// Commit the units of work that arrive together in one transaction: on SQLite through
    /// one writer thread (one fsync a batch), on PostgreSQL through writer tasks (half the
    /// pool) that each commit what queued up. `false` commits each unit alone (for comparison).
    #[arg(long, env = "CORRIDOR_GROUP_COMMIT", default_value_t = true, action = clap::ArgAction::Set)]
    pub group_commit: bool,
    /// PostgreSQL: the server ends a session idle inside a transaction this long (a client
    /// whose link died mid-transaction would otherwise hold its row locks for hours).
    #[arg(
        long,
        env = "CORRIDOR_PG_IDLE_IN_TRANSACTION_TIMEOUT",
        default_value = "30s"
    )]
    pub pg_idle_in_transaction_timeout: Dur,
    /// Which parts this process runs.
    #[arg(long, env = "CORRIDOR_ROLE", value_enum, default_value = "all")]
    pub role: Role,
    /// Corridor table override from `corridor.toml` (`[[corridors]]`); not a flag.
    #[arg(skip)]
    pub corridors: Option<Vec<CorridorSpec>>,
}

impl Config {
    /// Cross-field rules clap cannot express. Messages name the variable.
    pub fn validate(&self) -> Result<(), String> {
        let ttl = self.quote_ttl.0;
        if ttl < Duration::from_secs(1) || ttl.subsec_millis() != 0 {
            return Err("CORRIDOR_QUOTE_TTL must be whole seconds, at least 1s".into());
        }
        if self.poll_interval.0.is_zero() {
            return Err("CORRIDOR_POLL_INTERVAL must be greater than 0".into());
        }
        if self.job_lease.0 <= self.provider_timeout.0 {
            return Err(
                "CORRIDOR_JOB_LEASE must be longer than CORRIDOR_PROVIDER_TIMEOUT, or two workers could run one job at once"
                    .into(),
            );
        }
        if self.request_timeout.0.is_zero() {
            return Err("CORRIDOR_REQUEST_TIMEOUT must be greater than 0".into());
        }
        if self.header_read_timeout.0.is_zero() {
            return Err("CORRIDOR_HEADER_READ_TIMEOUT must be greater than 0".into());
        }
        if self.idle_timeout.0 <= self.request_timeout.0 {
            return Err(
                "CORRIDOR_IDLE_TIMEOUT must be longer than CORRIDOR_REQUEST_TIMEOUT, or a slow request's connection could be closed under it"
                    .into(),
            );
        }
        if self.max_connections == 0 || self.max_connections_per_client == 0 {
            return Err(
                "CORRIDOR_MAX_CONNECTIONS and CORRIDOR_MAX_CONNECTIONS_PER_CLIENT must be at least 1"
                    .into(),
            );
        }
        if self.webhook_retry.0.is_empty() {
            return Err("CORRIDOR_WEBHOOK_RETRY needs at least one delay".into());
        }
        if self.market_volatility < rust_decimal::Decimal::ZERO
            || self.market_volatility > rust_decimal::Decimal::new(1, 2)
        {
            return Err("CORRIDOR_MARKET_VOLATILITY must be between 0 and 0.01".into());
        }
        if self.spread_bps >= 10_000 {
            return Err("CORRIDOR_SPREAD_BPS must be below 10000".into());
        }
        if self.history_retention.0 < Duration::from_secs(86_400) {
            return Err("CORRIDOR_HISTORY_RETENTION must be at least 1d".into());
        }
        if self.stuck_after.0.is_zero() {
            return Err("CORRIDOR_STUCK_AFTER must be greater than 0".into());
        }
        if let Some(url) = &self.alert_webhook {
            crate::egress::parse(url, true).map_err(|e| format!("CORRIDOR_ALERT_WEBHOOK: {e}"))?;
            match &self.alert_webhook_secret {
                Some(s) if crate::signing::Secret::parse(s.expose_secret()).is_ok() => {}
                Some(_) => {
                    return Err(
                        "CORRIDOR_ALERT_WEBHOOK_SECRET must look like whsec_<base64>".into(),
                    );
                }
                None => {
                    return Err(
                        "CORRIDOR_ALERT_WEBHOOK_SECRET is required with CORRIDOR_ALERT_WEBHOOK"
                            .into(),
                    );
                }
            }
        }
        if self.db_pool == 0 || self.db_pool > 1_000 {
            return Err("CORRIDOR_DB_POOL must be between 1 and 1000".into());
        }
        if self.job_max_attempts == 0 {
            return Err("CORRIDOR_JOB_MAX_ATTEMPTS must be at least 1".into());
        }
        if !(self.database_url.starts_with("sqlite:") || self.database_url.starts_with("postgres"))
        {
            return Err("DATABASE_URL must start with sqlite:// or postgres://".into());
        }
        for (var, name) in [
            ("CORRIDOR_ONRAMP_NAME", &self.onramp_name),
            ("CORRIDOR_OFFRAMP_NAME", &self.offramp_name),
        ] {
            // The name is a path segment of `/v1/provider-webhooks/{provider}`.
            let ok = (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !ok {
                return Err(format!(
                    "{var} must be 1 to 64 letters, digits, `-`, `_` or `.`"
                ));
            }
        }
        if let Some(k) = &self.admin_key
            && k.expose_secret().len() < 16
        {
            return Err("CORRIDOR_ADMIN_KEY must be at least 16 characters".into());
        }
        self.corridor_table().map(|_| ())
    }

    /// The corridors this deployment offers.
    pub fn corridor_table(&self) -> Result<CorridorTable, String> {
        match &self.corridors {
            Some(specs) => {
                CorridorTable::from_specs(specs).map_err(|e| format!("corridor.toml: {e}"))
            }
            None => Ok(CorridorTable::default_table()),
        }
    }
}

/// Loads `.env` and `corridor.toml` (from the working directory) into the process
/// environment without overriding variables already set, and returns the `[[corridors]]`
/// table if the file has one. Call before clap parses.
pub fn load_files() -> Result<Option<Vec<CorridorSpec>>, String> {
    // `.env` first: real environment wins over it, and it wins over corridor.toml.
    let _ = dotenvy::dotenv();
    load_toml(Path::new("corridor.toml"))
}

fn load_toml(path: &Path) -> Result<Option<Vec<CorridorSpec>>, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    let table: toml::Table = text.parse().map_err(|e| format!("corridor.toml: {e}"))?;
    let mut corridors = None;
    for (key, value) in table {
        if key == "corridors" {
            let specs: Vec<CorridorSpec> = value
                .try_into()
                .map_err(|e| format!("corridor.toml [[corridors]]: {e}"))?;
            corridors = Some(specs);
            continue;
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            _ => {
                return Err(format!(
                    "corridor.toml: `{key}` must be a string, number or boolean"
                ));
            }
        };
        if std::env::var_os(&key).is_none() {
            // SAFETY: called from main before any other thread exists.
            unsafe { std::env::set_var(&key, text) };
        }
    }
    Ok(corridors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_units() {
        assert_eq!(
            "250ms".parse::<Dur>().unwrap().0,
            Duration::from_millis(250)
        );
        assert_eq!("15m".parse::<Dur>().unwrap().0, Duration::from_secs(900));
        assert_eq!("2h".parse::<Dur>().unwrap().0, Duration::from_secs(7200));
        for bad in ["5", "s", "5x", "-5s", "", "1.5s"] {
            assert!(bad.parse::<Dur>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_and_rates_parse() {
        let r: DurRange = "2s..5s".parse().unwrap();
        assert_eq!(
            (r.min, r.max),
            (Duration::from_secs(2), Duration::from_secs(5))
        );
        assert!("5s..2s".parse::<DurRange>().is_err());
        let fixed: DurRange = "0s".parse().unwrap();
        assert_eq!(fixed.min, fixed.max);
        let rl: RateLimit = "100/m".parse().unwrap();
        assert_eq!((rl.requests, rl.per), (100, Duration::from_secs(60)));
        assert_eq!("0".parse::<RateLimit>().unwrap().requests, 0);
        assert!("100/h".parse::<RateLimit>().is_err());
        assert!("1.5".parse::<Probability>().is_err());
        assert_eq!("5s,5m".parse::<Schedule>().unwrap().0.len(), 2);
    }
}

#[derive(clap::Parser)]
struct OnlyConfig {
    #[command(flatten)]
    config: Config,
}

impl Config {
    /// Parses a configuration from flags (and the environment), as `serve` would.
    pub fn from_args<I, T>(args: I) -> Result<Config, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::Parser;
        let argv = std::iter::once(std::ffi::OsString::from("corridor"))
            .chain(args.into_iter().map(Into::into));
        OnlyConfig::try_parse_from(argv).map(|o| o.config)
    }
}
