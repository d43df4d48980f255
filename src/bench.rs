//! `corridor bench`: the project's load generator and the one place where speed is measured.
//!
//! Tests assert behaviour and never timing: timing assertions are flaky on shared machines and
//! say nothing about a real deployment. Throughput and latency are instead measured here, from
//! the outside, over real HTTP against a running Corridor, along the path a merchant actually
//! takes: quote → payment → poll until the payment is terminal.
//!
//! The bench creates its own merchant through the admin API (so it never needs a merchant key
//! and never touches existing merchants' data), then runs `--concurrency` clients in a loop
//! until `--duration` has elapsed or `--count` payments have been created. It reports, per
//! endpoint, successful requests, throughput and nearest-rank latency percentiles; the
//! end-to-end time from "payment accepted" to "terminal state seen"; terminal outcomes; and
//! every error by endpoint and status, as a table on stdout and optionally as JSON.
//!
//! Run Corridor with `CORRIDOR_RATE_LIMIT=0` and zero simulated settlement delays
//! (`CORRIDOR_SIM_ONRAMP_DELAY=0s`, `CORRIDOR_SIM_OFFRAMP_DELAY=0s`), otherwise the figures
//! measure the rate limiter and the simulator's sleeps rather than Corridor.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use serde_json::{Map, Value, json};

/// How often a created payment is polled until it is terminal.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// A payment not terminal after this long is counted as "not seen terminal" and left alone.
const POLL_CAP: Duration = Duration::from_secs(60);
/// Per-request ceiling, so a hung server cannot hang the bench.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// After this many payment attempts in a row fail (across all clients), the run stops: the
/// server is down or misconfigured, and hammering it further measures nothing.
const MAX_CONSECUTIVE_FAILURES: u64 = 1000;
/// Longest pause honoured from a `429`'s `Retry-After`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);
/// How often a progress line goes to stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Payment states after which nothing moves (API.md, "States").
const TERMINAL_STATES: [&str; 4] = ["COMPLETED", "FAILED", "CANCELLED", "REFUNDED"];

/// Options of `corridor bench`. Defaults give a short, meaningful run against a local server.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Base URL of a running Corridor
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,

    /// Admin key (used once to create a bench merchant via POST /v1/admin/merchants)
    #[arg(long, env = "CORRIDOR_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: String,

    /// Number of concurrent clients, each running quote → payment → poll in a loop
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,

    /// Run for this long (e.g. 30s, 500ms, 2m); ignored when --count is given
    #[arg(long, default_value = "20s")]
    pub duration: String,

    /// Or stop after this many payments
    #[arg(long)]
    pub count: Option<u64>,

    /// Also write the figures as a JSON object to this file
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Payout currency (the source is always USD, the only default corridor source)
    #[arg(long, default_value = "EUR")]
    pub to: String,

    /// Skip polling to terminal (measure the create path only)
    #[arg(long)]
    pub no_poll: bool,
    /// Fixed-rate mode: start this many payments per second in total, evenly paced across
    /// the clients (a client whose payment takes longer than its slot skips the missed
    /// slots), instead of each client starting the next payment as soon as one ends. For
    /// latency at a steady load, e.g. `--rate 333` ≈ 1,000 requests/s of quote → pay → get.
    #[arg(long)]
    pub rate: Option<f64>,
}

/// Runs the benchmark described by `args`, prints the report, and writes the JSON file if
/// asked. Fails (after reporting what it measured) when the run had to be aborted because
/// the server kept failing, so scripts notice a broken run.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if args.count == Some(0) {
        bail!("--count must be at least 1");
    }
    let run_for = match args.count {
        Some(_) => None,
        None => Some(parse_duration(&args.duration)?),
    };
    let base = base_url(&args.url)?;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")?;

    let merchant = create_merchant(&client, &base, &args.admin_key).await?;
    let mut auth = HeaderValue::from_str(&format!("Bearer {}", merchant.api_key))
        .context("the bench merchant's api_key is not a valid header value")?;
    auth.set_sensitive(true);

    let mode = match run_for {
        Some(d) => format!("for {}", fmt_duration(d)),
        None => format!(
            "until {} payments are created",
            args.count.unwrap_or_default()
        ),
    };
    eprintln!(
        "bench: merchant {} ({}), {} clients, {mode}, {} against {base}",
        merchant.merchant_id,
        merchant.name,
        args.concurrency,
        if args.no_poll {
            "create path only"
        } else {
            "polling to terminal"
        },
    );

    let started = Instant::now();
    // The FX report covers what completed from here on (minus a second of clock skew).
    let run_began = std::time::SystemTime::now() - Duration::from_secs(1);
    let shared = Arc::new(Shared {
        client: client.clone(),
        base: base.clone(),
        auth,
        to: args.to.clone(),
        poll: !args.no_poll,
        run_id: format!("{:016x}", rand::random::<u64>()),
        deadline: run_for.map(|d| started + d),
        pace: match args.rate {
            Some(r) if r > 0.0 && r.is_finite() => {
                Some(Duration::from_secs_f64(args.concurrency as f64 / r))
            }
            Some(_) => anyhow::bail!("--rate must be a positive number of payments per second"),
            None => None,
        },
        count: args.count,
        concurrency: args.concurrency,
        claimed: AtomicU64::new(0),
        created: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        consecutive_failures: AtomicU64::new(0),
        interrupted: AtomicBool::new(false),
        aborted: AtomicBool::new(false),
    });

    let interrupt = tokio::spawn({
        let shared = Arc::clone(&shared);
        async move {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            shared.interrupted.store(true, Ordering::SeqCst);
            eprintln!("bench: interrupted, finishing in-flight requests (Ctrl-C again to quit)");
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let progress = tokio::spawn({
        let shared = Arc::clone(&shared);
        async move {
            let mut tick = tokio::time::interval(PROGRESS_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!(
                    "bench: {:>6.1}s  created {}  errors {}",
                    started.elapsed().as_secs_f64(),
                    shared.created.load(Ordering::Relaxed),
                    shared.errors.load(Ordering::Relaxed),
                );
            }
        }
    });

    let workers: Vec<_> = (0..args.concurrency)
        .map(|task| tokio::spawn(worker(Arc::clone(&shared), task)))
        .collect();
    let mut samples = Samples::default();
    let mut join_error = None;
    for handle in workers {
        match handle.await {
            Ok(s) => samples.merge(s),
            Err(e) => join_error = Some(e),
        }
    }
    let wall = started.elapsed();
    progress.abort();
    interrupt.abort();
    if let Some(e) = join_error {
        return Err(anyhow::Error::new(e).context("a bench client task failed"));
    }

    let report = Report {
        args: &args,
        base: &base,
        wall,
        samples,
        interrupted: shared.interrupted.load(Ordering::SeqCst),
        aborted: shared.aborted.load(Ordering::SeqCst),
    };
    print!("{}", report.table());
    match fx_report(&client, &base, &args.admin_key, run_began).await {
        Ok(table) => print!("{table}"),
        Err(e) => eprintln!("bench: no FX report: {e:#}"),
    }
    if let Some(path) = &args.json {
        let mut text =
            serde_json::to_string_pretty(&report.json()).context("serialising the JSON report")?;
        text.push('\n');
        std::fs::write(path, text)
            .with_context(|| format!("writing the JSON report to {}", path.display()))?;
        eprintln!("bench: JSON report written to {}", path.display());
    }
    if report.aborted {
        bail!(
            "run aborted: {MAX_CONSECUTIVE_FAILURES} payment attempts in a row failed \
             (see the errors above)"
        );
    }
    Ok(())
}

/// The three endpoints the bench drives; their labels are route templates, as in `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Endpoint {
    Quotes,
    CreatePayment,
    GetPayment,
}

impl Endpoint {
    const ALL: [Endpoint; 3] = [
        Endpoint::Quotes,
        Endpoint::CreatePayment,
        Endpoint::GetPayment,
    ];

    fn label(self) -> &'static str {
        match self {
            Endpoint::Quotes => "POST /v1/quotes",
            Endpoint::CreatePayment => "POST /v1/payments",
            Endpoint::GetPayment => "GET /v1/payments/{id}",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One kind of error (endpoint and status) seen during the run.
#[derive(Debug, Clone)]
struct ErrorStat {
    count: u64,
    /// The first such error's code and message, so the report says *why*, not just how often.
    example: String,
}

/// What one client task measured; tasks record locally (no locks on the hot path) and the
/// samples are merged once at the end.
#[derive(Debug, Default)]
struct Samples {
    /// Latency of successful requests, indexed by [`Endpoint::index`].
    latency: [Vec<Duration>; 3],
    /// Payment accepted (202 received) → terminal state seen.
    end_to_end: Vec<Duration>,
    outcomes: BTreeMap<String, u64>,
    /// Payments whose terminal state was never seen (poll cap, poll abandoned, interrupted).
    not_terminal: u64,
    errors: BTreeMap<(Endpoint, String), ErrorStat>,
    created: u64,
}

impl Samples {
    fn merge(&mut self, other: Samples) {
        for (mine, theirs) in self.latency.iter_mut().zip(other.latency) {
            mine.extend(theirs);
        }
        self.end_to_end.extend(other.end_to_end);
        for (status, n) in other.outcomes {
            *self.outcomes.entry(status).or_default() += n;
        }
        self.not_terminal += other.not_terminal;
        for (key, stat) in other.errors {
            self.errors
                .entry(key)
                .and_modify(|e| e.count += stat.count)
                .or_insert(stat);
        }
        self.created += other.created;
    }

    fn error_count(&self, endpoint: Endpoint) -> u64 {
        self.errors
            .iter()
            .filter(|((ep, _), _)| *ep == endpoint)
            .map(|(_, e)| e.count)
            .sum()
    }
}

/// State every client task shares.
struct Shared {
    client: reqwest::Client,
    base: String,
    auth: HeaderValue,
    to: String,
    poll: bool,
    /// Makes Idempotency-Keys unique across runs against the same database.
    run_id: String,
    deadline: Option<Instant>,
    count: Option<u64>,
    /// Fixed-rate mode: the interval between one client's payment starts.
    pace: Option<Duration>,
    /// Clients.
    concurrency: usize,
    /// Count mode: payments created plus attempts in flight, so clients never overshoot.
    claimed: AtomicU64,
    created: AtomicU64,
    errors: AtomicU64,
    consecutive_failures: AtomicU64,
    interrupted: AtomicBool,
    aborted: AtomicBool,
}

/// Whether a client may start another payment attempt.
enum Claim {
    Go,
    /// Count mode: the remaining slots are all in flight; one may still fail and free up.
    Wait,
    Done,
}

/// Why a request did not yield the expected JSON.
enum Failure {
    Status(StatusCode),
    Transport,
    BadBody,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
            || self.aborted.load(Ordering::SeqCst)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Sleeps for `pause`, cut short when the run ends, so a `Retry-After` never stretches
    /// the wall time the throughput figures are divided by.
    async fn pause(&self, pause: Duration) {
        let until = Instant::now() + pause;
        let until = self.deadline.map_or(until, |d| d.min(until));
        while !self.interrupted.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now >= until {
                break;
            }
            tokio::time::sleep((until - now).min(Duration::from_millis(50))).await;
        }
    }

    fn claim(&self) -> Claim {
        let Some(limit) = self.count else {
            return Claim::Go;
        };
        if self.created.load(Ordering::SeqCst) >= limit {
            return Claim::Done;
        }
        match self
            .claimed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                (c < limit).then_some(c + 1)
            }) {
            Ok(_) => Claim::Go,
            Err(_) => Claim::Wait,
        }
    }

    fn record_error(
        &self,
        samples: &mut Samples,
        endpoint: Endpoint,
        status: String,
        example: String,
    ) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        samples
            .errors
            .entry((endpoint, status))
            .and_modify(|e| e.count += 1)
            .or_insert(ErrorStat { count: 1, example });
    }

    /// Sends one request and returns its JSON body when the status is `expect`. Anything else
    /// is recorded as an error; a `429` also pauses this client for its `Retry-After`.
    /// Latency (send → whole body read) is recorded for successes only.
    async fn call(
        &self,
        samples: &mut Samples,
        endpoint: Endpoint,
        request: reqwest::RequestBuilder,
        expect: StatusCode,
    ) -> Result<Value, Failure> {
        let started = Instant::now();
        let response = match request
            .header(AUTHORIZATION, self.auth.clone())
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                self.record_error(samples, endpoint, transport_label(&e), error_chain(&e));
                return Err(Failure::Transport);
            }
        };
        let status = response.status();
        let retry_after = (status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| retry_after(response.headers().get(RETRY_AFTER)));
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                self.record_error(samples, endpoint, transport_label(&e), error_chain(&e));
                return Err(Failure::Transport);
            }
        };
        let elapsed = started.elapsed();
        if status != expect {
            self.record_error(
                samples,
                endpoint,
                status.as_u16().to_string(),
                describe_body(&body),
            );
            if let Some(pause) = retry_after {
                self.pause(pause).await;
            }
            return Err(Failure::Status(status));
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(value) => {
                samples.latency[endpoint.index()].push(elapsed);
                Ok(value)
            }
            Err(e) => {
                self.record_error(
                    samples,
                    endpoint,
                    format!("{} (bad body)", status.as_u16()),
                    format!("response is not JSON: {e}"),
                );
                Err(Failure::BadBody)
            }
        }
    }

    /// Reads a string field the contract promises; its absence is recorded as an error.
    fn field<'v>(
        &self,
        samples: &mut Samples,
        endpoint: Endpoint,
        status: StatusCode,
        body: &'v Value,
        name: &str,
    ) -> Option<&'v str> {
        let value = body.get(name).and_then(Value::as_str);
        if value.is_none() {
            self.record_error(
                samples,
                endpoint,
                format!("{} (bad body)", status.as_u16()),
                format!("response has no string \"{name}\""),
            );
        }
        value
    }

    /// One quote → payment (→ poll) cycle. Returns whether a payment was created.
    async fn one_payment(&self, samples: &mut Samples, task: usize, seq: u64) -> bool {
        let quote_request = self
            .client
            .post(format!("{}/v1/quotes", self.base))
            .json(&json!({"from_currency": "USD", "to_currency": self.to, "amount": 100000}));
        let Ok(quote) = self
            .call(samples, Endpoint::Quotes, quote_request, StatusCode::OK)
            .await
        else {
            return false;
        };
        let Some(quote_id) = self.field(
            samples,
            Endpoint::Quotes,
            StatusCode::OK,
            &quote,
            "quote_id",
        ) else {
            return false;
        };

        let payment_request = self
            .client
            .post(format!("{}/v1/payments", self.base))
            .header(
                "Idempotency-Key",
                format!("bench-{}-{task}-{seq}", self.run_id),
            )
            .json(&json!({
                "quote_id": quote_id,
                "source_account": "bench-src",
                "destination_account": "bench-dst",
            }));
        let Ok(payment) = self
            .call(
                samples,
                Endpoint::CreatePayment,
                payment_request,
                StatusCode::ACCEPTED,
            )
            .await
        else {
            return false;
        };
        let accepted_at = Instant::now();
        let Some(payment_id) = self.field(
            samples,
            Endpoint::CreatePayment,
            StatusCode::ACCEPTED,
            &payment,
            "payment_id",
        ) else {
            return false;
        };
        samples.created += 1;
        self.created.fetch_add(1, Ordering::SeqCst);

        if self.poll {
            if is_path_safe(payment_id) {
                self.poll_to_terminal(samples, payment_id, accepted_at)
                    .await;
            } else {
                self.record_error(
                    samples,
                    Endpoint::CreatePayment,
                    "202 (bad body)".to_owned(),
                    format!("payment_id {payment_id:?} is not a plain identifier"),
                );
                samples.not_terminal += 1;
            }
        }
        true
    }

    /// Polls a payment every [`POLL_INTERVAL`] until it is terminal, [`POLL_CAP`] passes, the
    /// server answers in a way that retrying cannot fix, or the run is interrupted or aborted.
    async fn poll_to_terminal(
        &self,
        samples: &mut Samples,
        payment_id: &str,
        accepted_at: Instant,
    ) {
        let url = format!("{}/v1/payments/{payment_id}", self.base);
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.interrupted.load(Ordering::SeqCst)
                || self.aborted.load(Ordering::SeqCst)
                || accepted_at.elapsed() >= POLL_CAP
            {
                samples.not_terminal += 1;
                return;
            }
            let request = self.client.get(&url);
            match self
                .call(samples, Endpoint::GetPayment, request, StatusCode::OK)
                .await
            {
                Ok(body) => {
                    let Some(status) = self.field(
                        samples,
                        Endpoint::GetPayment,
                        StatusCode::OK,
                        &body,
                        "status",
                    ) else {
                        samples.not_terminal += 1;
                        return;
                    };
                    if TERMINAL_STATES.contains(&status) {
                        samples.end_to_end.push(accepted_at.elapsed());
                        *samples.outcomes.entry(status.to_owned()).or_default() += 1;
                        return;
                    }
                }
                Err(Failure::Status(s))
                    if s.is_client_error() && s != StatusCode::TOO_MANY_REQUESTS =>
                {
                    samples.not_terminal += 1;
                    return;
                }
                Err(Failure::BadBody) => {
                    samples.not_terminal += 1;
                    return;
                }
                Err(Failure::Status(_) | Failure::Transport) => {}
            }
        }
    }
}

/// One client: payment attempts back to back until the run ends.
async fn worker(shared: Arc<Shared>, task: usize) -> Samples {
    let mut samples = Samples::default();
    let mut seq: u64 = 0;
    // Fixed-rate mode: each client owns every n-th slot, staggered so the load is even.
    let mut slots = shared.pace.map(|pace| {
        let offset = pace.mul_f64(task as f64 / shared.concurrency.max(1) as f64);
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + offset, pace);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        t
    });
    while !shared.stopping() {
        if let Some(slots) = &mut slots {
            slots.tick().await;
            if shared.stopping() {
                break;
            }
        }
        match shared.claim() {
            Claim::Done => break,
            Claim::Wait => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            Claim::Go => {}
        }
        seq += 1;
        if shared.one_payment(&mut samples, task, seq).await {
            shared.consecutive_failures.store(0, Ordering::SeqCst);
        } else {
            if shared.count.is_some() {
                shared.claimed.fetch_sub(1, Ordering::SeqCst);
            }
            let failures = shared.consecutive_failures.fetch_add(1, Ordering::SeqCst) + 1;
            if failures >= MAX_CONSECUTIVE_FAILURES {
                shared.aborted.store(true, Ordering::SeqCst);
            }
        }
    }
    samples
}

/// The bench merchant's credentials, as `POST /v1/admin/merchants` answers them.
struct Merchant {
    merchant_id: String,
    name: String,
    api_key: String,
}

/// Creates a fresh merchant so the bench runs on its own tenant (the admin key itself may not
/// call merchant routes).
async fn create_merchant(
    client: &reqwest::Client,
    base: &str,
    admin_key: &str,
) -> anyhow::Result<Merchant> {
    let name = format!("bench-{:016x}", rand::random::<u64>());
    let response = client
        .post(format!("{base}/v1/admin/merchants"))
        .bearer_auth(admin_key)
        .json(&json!({ "name": name }))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", error_chain(&e)))
        .with_context(|| format!("cannot reach Corridor at {base} (is it running?)"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .context("reading the create-merchant response")?;
    if status != StatusCode::CREATED {
        let hint = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                " (check --admin-key / CORRIDOR_ADMIN_KEY)"
            }
            _ => "",
        };
        bail!(
            "creating the bench merchant failed: HTTP {status}: {}{hint}",
            describe_body(&body)
        );
    }
    let value: Value =
        serde_json::from_slice(&body).context("the create-merchant response is not JSON")?;
    let text = |field: &str| {
        value
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("the create-merchant response has no string \"{field}\""))
    };
    Ok(Merchant {
        merchant_id: text("merchant_id")?,
        name: text("name")?,
        api_key: text("api_key")?,
    })
}

/// Everything measured, plus the run's parameters, ready to print or serialise.
struct Report<'a> {
    args: &'a BenchArgs,
    base: &'a str,
    wall: Duration,
    samples: Samples,
    interrupted: bool,
    aborted: bool,
}

/// Latency percentiles of one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Summary {
    count: usize,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

impl Summary {
    /// `None` for an empty series.
    fn of(durations: &[Duration]) -> Option<Summary> {
        let mut sorted = durations.to_vec();
        sorted.sort_unstable();
        Some(Summary {
            count: sorted.len(),
            p50: percentile(&sorted, 50)?,
            p90: percentile(&sorted, 90)?,
            p99: percentile(&sorted, 99)?,
            max: *sorted.last()?,
        })
    }

    fn json(self) -> Value {
        json!({
            "p50": ms_rounded(self.p50),
            "p90": ms_rounded(self.p90),
            "p99": ms_rounded(self.p99),
            "max": ms_rounded(self.max),
        })
    }
}

impl Report<'_> {
    fn wall_secs(&self) -> f64 {
        self.wall.as_secs_f64().max(f64::EPSILON)
    }

    fn per_sec(&self, n: u64) -> f64 {
        n as f64 / self.wall_secs()
    }

    fn rate_limited(&self) -> bool {
        self.samples
            .errors
            .keys()
            .any(|(_, status)| status == "429")
    }

    fn table(&self) -> String {
        let s = &self.samples;
        let mut out = String::new();
        let status = match (self.aborted, self.interrupted) {
            (true, _) => ", ABORTED",
            (false, true) => ", interrupted",
            _ => "",
        };
        let _ = writeln!(
            out,
            "\nCorridor bench: {}, {} clients, {:.3} s wall{}{status}",
            self.base,
            self.args.concurrency,
            self.wall.as_secs_f64(),
            if self.args.no_poll { ", --no-poll" } else { "" },
        );
        let _ = writeln!(
            out,
            "\n{:<24} {:>9} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "endpoint", "ok", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        for endpoint in Endpoint::ALL {
            let latencies = &s.latency[endpoint.index()];
            let _ = write!(
                out,
                "{:<24} {:>9} {:>7} {:>10.2}",
                endpoint.label(),
                latencies.len(),
                s.error_count(endpoint),
                self.per_sec(latencies.len() as u64),
            );
            write_percentiles(&mut out, Summary::of(latencies));
        }
        let _ = write!(
            out,
            "{:<24} {:>9} {:>7} {:>10}",
            "end-to-end (to terminal)",
            s.end_to_end.len(),
            "",
            ""
        );
        if self.args.no_poll {
            let _ = writeln!(out, " {:>10}", "skipped (--no-poll)");
        } else {
            write_percentiles(&mut out, Summary::of(&s.end_to_end));
        }

        let _ = writeln!(
            out,
            "\npayments created: {} ({:.2}/s)",
            s.created,
            self.per_sec(s.created)
        );
        if !self.args.no_poll {
            let mut outcomes: Vec<String> = s
                .outcomes
                .iter()
                .map(|(status, n)| format!("{status} {n}"))
                .collect();
            if s.not_terminal > 0 {
                outcomes.push(format!("not seen terminal {}", s.not_terminal));
            }
            if outcomes.is_empty() {
                outcomes.push("none".to_owned());
            }
            let _ = writeln!(out, "terminal outcomes: {}", outcomes.join(", "));
        }
        if s.errors.is_empty() {
            let _ = writeln!(out, "errors: none");
        } else {
            let _ = writeln!(out, "errors:");
            for ((endpoint, status), e) in &s.errors {
                let _ = writeln!(
                    out,
                    "  {:<24} {:<14} {:>9}  e.g. {}",
                    endpoint.label(),
                    status,
                    e.count,
                    e.example
                );
            }
        }
        if self.rate_limited() {
            let _ = writeln!(
                out,
                "note: Corridor rate-limited the bench (429); run it with CORRIDOR_RATE_LIMIT=0 \
                 for figures that measure Corridor rather than the limiter"
            );
        }
        out
    }

    fn json(&self) -> Value {
        let s = &self.samples;
        let mut endpoints = Map::new();
        for endpoint in Endpoint::ALL {
            let latencies = &s.latency[endpoint.index()];
            endpoints.insert(
                endpoint.label().to_owned(),
                json!({
                    "ok": latencies.len(),
                    "errors": s.error_count(endpoint),
                    "throughput_rps": round3(self.per_sec(latencies.len() as u64)),
                    "latency_ms": Summary::of(latencies).map(Summary::json),
                }),
            );
        }
        let end_to_end = (!self.args.no_poll).then(|| {
            json!({
                "count": s.end_to_end.len(),
                "latency_ms": Summary::of(&s.end_to_end).map(Summary::json),
            })
        });
        let errors: Vec<Value> = s
            .errors
            .iter()
            .map(|((endpoint, status), e)| {
                json!({
                    "endpoint": endpoint.label(),
                    "status": status,
                    "count": e.count,
                    "example": e.example,
                })
            })
            .collect();
        json!({
            "url": self.base,
            "concurrency": self.args.concurrency,
            "duration": if self.args.count.is_none() { Some(&self.args.duration) } else { None },
            "count": self.args.count,
            "to_currency": self.args.to,
            "poll": !self.args.no_poll,
            "rate": self.args.rate,
            "wall_seconds": round3(self.wall.as_secs_f64()),
            "interrupted": self.interrupted,
            "aborted": self.aborted,
            "endpoints": endpoints,
            "end_to_end": end_to_end,
            "payments_created": s.created,
            "payments_created_per_sec": round3(self.per_sec(s.created)),
            "outcomes": s.outcomes,
            "not_seen_terminal": s.not_terminal,
            "errors": errors,
        })
    }
}

fn write_percentiles(out: &mut String, summary: Option<Summary>) {
    let _ = match summary {
        Some(p) => writeln!(
            out,
            " {:>10.3} {:>10.3} {:>10.3} {:>10.3}",
            ms(p.p50),
            ms(p.p90),
            ms(p.p99),
            ms(p.max)
        ),
        None => writeln!(out, " {:>10} {:>10} {:>10} {:>10}", "-", "-", "-", "-"),
    };
}

/// Nearest-rank percentile of an ascending series: the smallest sample such that at least
/// `pct`% of the samples are ≤ it. Integer arithmetic, so p50 of 10 samples is exactly the 5th.
fn percentile(sorted: &[Duration], pct: u32) -> Option<Duration> {
    if sorted.is_empty() || pct > 100 {
        return None;
    }
    let rank = (pct as usize * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Parses `--duration`: a whole number with a unit `ms`, `s`, `m` or `h`, like Corridor's own
/// duration settings.
fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let usage = || {
        format!("--duration {text:?}: expected a whole number with a unit ms, s, m or h (e.g. 30s)")
    };
    let n: u64 = number.parse().with_context(usage)?;
    let secs = |factor: u64| n.checked_mul(factor).map(Duration::from_secs);
    let duration = match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        _ => bail!(usage()),
    }
    .with_context(|| format!("--duration {text:?} is too long"))?;
    if duration.is_zero() {
        bail!("--duration must be longer than zero");
    }
    Ok(duration)
}

/// Validates `--url` and strips a trailing slash, so paths can be appended.
fn base_url(url: &str) -> anyhow::Result<String> {
    let parsed =
        reqwest::Url::parse(url).with_context(|| format!("--url {url:?} is not a valid URL"))?;
    match parsed.scheme() {
        "http" => {}
        "https" => bail!("--url {url:?}: this build speaks plain http only (no TLS)"),
        other => bail!("--url {url:?}: unsupported scheme {other:?}"),
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// `Retry-After` in whole seconds (the contract's form), at least 1 s and at most
/// [`MAX_RETRY_AFTER`].
fn retry_after(header: Option<&HeaderValue>) -> Duration {
    let secs = header
        .and_then(|h| h.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1)
        .max(1);
    Duration::from_secs(secs).min(MAX_RETRY_AFTER)
}

/// Error-table status for a request that got no HTTP response.
fn transport_label(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timeout".to_owned()
    } else {
        "conn".to_owned()
    }
}

/// A transport error with its causes ("connection refused" sits a few sources deep).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// An error response in one line: `CODE: message` for the contract's error format, else the
/// start of the body.
fn describe_body(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body)
        && let Some(code) = value.get("error").and_then(Value::as_str)
    {
        let message = value.get("message").and_then(Value::as_str).unwrap_or("");
        return format!("{code}: {message}");
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    let mut short: String = text.chars().take(200).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

/// Guards the GET path against an id that would change the URL's shape.
fn is_path_safe(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn ms_rounded(d: Duration) -> f64 {
    round3(ms(d))
}

fn fmt_duration(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// Serves `POST /v1/payments` that parses the JSON body like Corridor's handler does and
/// answers `202` with a small JSON body, and nothing else: the ceiling a real endpoint is
/// compared against in the same run.
/// The server's FX report over the payments that completed since `since`, as a table: what
/// the rate lock protected the run's customers from, and what it cost or earned the platform.
async fn fx_report(
    client: &reqwest::Client,
    base: &str,
    admin_key: &str,
    since: std::time::SystemTime,
) -> anyhow::Result<String> {
    let from = crate::domain::Timestamp(
        since
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0),
    );
    let response = client
        // An RFC 3339 instant in UTC needs no escaping in a query string (digits, `-`, `:`,
        // `T`, `Z`).
        .get(format!(
            "{base}/v1/admin/reports/fx?from={}",
            from.to_rfc3339()
        ))
        .bearer_auth(admin_key)
        .send()
        .await
        .context("asking for the FX report")?;
    let status = response.status();
    let body: Value = response.json().await.context("reading the FX report")?;
    if !status.is_success() {
        bail!("{status}: {body}");
    }
    let amount = |v: &Value| -> String {
        let minor = v["amount"].as_i64().unwrap_or_default();
        let code = v["currency"].as_str().unwrap_or("?");
        let exponent = code
            .parse::<crate::domain::Currency>()
            .map(|c| c.exponent())
            .unwrap_or(0);
        format!("{} {code}", rust_decimal::Decimal::new(minor, exponent))
    };
    let mut out = String::from(
        "\nFX report (payments completed during the run; the lock's market move is what it spared customers)\n",
    );
    out.push_str(&format!(
        "{:<10} {:>8} {:>20} {:>16} {:>16} {:>16} {:>16} {:>16}\n",
        "corridor",
        "payments",
        "volume",
        "fees",
        "spread",
        "fx result",
        "market move",
        "worst payment"
    ));
    for r in body["data"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<10} {:>8} {:>20} {:>16} {:>16} {:>16} {:>16} {:>16}\n",
            r["corridor"].as_str().unwrap_or("?"),
            r["payments"],
            amount(&r["volume"]),
            amount(&r["fees"]),
            amount(&r["spread_revenue"]),
            amount(&r["fx_gain_loss"]),
            amount(&r["market_move"]),
            amount(&r["worst_payment"]["fx_gain_loss"]),
        ));
    }
    Ok(out)
}

pub async fn ceiling(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    use axum::Json;
    use axum::routing::post;
    async fn accept(
        Json(body): Json<serde_json::Value>,
    ) -> (axum::http::StatusCode, Json<serde_json::Value>) {
        let id = body.get("source_account").cloned().unwrap_or_default();
        (
            axum::http::StatusCode::ACCEPTED,
            Json(serde_json::json!({"payment_id": id, "status": "PENDING"})),
        )
    }
    let app = axum::Router::new().route("/v1/payments", post(accept));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("ceiling listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_series(values: impl IntoIterator<Item = u64>) -> Vec<Duration> {
        values.into_iter().map(Duration::from_millis).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let sorted = ms_series(1..=10);
        assert_eq!(percentile(&sorted, 50), Some(Duration::from_millis(5)));
        assert_eq!(percentile(&sorted, 90), Some(Duration::from_millis(9)));
        assert_eq!(percentile(&sorted, 99), Some(Duration::from_millis(10)));
        assert_eq!(percentile(&sorted, 100), Some(Duration::from_millis(10)));
        assert_eq!(percentile(&sorted, 0), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&sorted, 101), None);
        assert_eq!(percentile(&[], 50), None);

        let hundred = ms_series(1..=100);
        assert_eq!(percentile(&hundred, 99), Some(Duration::from_millis(99)));
        let single = ms_series([7]);
        assert_eq!(percentile(&single, 1), Some(Duration::from_millis(7)));
    }

    #[test]
    fn summary_sorts_its_input() {
        let summary = Summary::of(&ms_series([30, 10, 20, 40])).expect("non-empty");
        assert_eq!(summary.count, 4);
        assert_eq!(summary.p50, Duration::from_millis(20));
        assert_eq!(summary.p90, Duration::from_millis(40));
        assert_eq!(summary.max, Duration::from_millis(40));
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("30s").ok(), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_duration("250ms").ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_duration("2m").ok(), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h").ok(), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration(" 5s ").ok(), Some(Duration::from_secs(5)));
        for bad in [
            "",
            "s",
            "10",
            "10x",
            "1.5s",
            "-1s",
            "0s",
            "0ms",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn describes_error_bodies() {
        assert_eq!(
            describe_body(br#"{"error":"RATE_LIMITED","message":"slow down"}"#),
            "RATE_LIMITED: slow down"
        );
        assert_eq!(describe_body(b"oops"), "oops");
        assert_eq!(describe_body(b""), "(empty body)");
    }

    #[test]
    fn retry_after_is_bounded() {
        assert_eq!(retry_after(None), Duration::from_secs(1));
        let header = HeaderValue::from_static("3");
        assert_eq!(retry_after(Some(&header)), Duration::from_secs(3));
        let header = HeaderValue::from_static("3600");
        assert_eq!(retry_after(Some(&header)), MAX_RETRY_AFTER);
    }
}
