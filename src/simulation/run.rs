//! One simulated run: the event queue, the merchant, the operator, and the process that
//! crashes and restarts.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use super::world::{Race, Racer, World};
use super::{Ctx, EPOCH_MS, Faults, Options, PlantedBug, SimClock, Summary, invariants};
use crate::app::Node;
use crate::clock::{Clock, SharedClock};
use crate::config::Config;
use crate::engine::Engine;
use crate::service::Service;
use crate::service::settle::{LegReport, WebhookOutcome};
use crate::store::{PoolConfig, Store, jobs};

/// The payout currencies merchants send to (every corridor of the default table).
const PAYOUTS: [&str; 8] = ["EUR", "GBP", "INR", "NGN", "PHP", "MXN", "BRL", "JPY"];
/// How long a quote is locked (the run's configuration).
const QUOTE_TTL_MS: i64 = 60_000;
/// How long a job's lease lasts (the run's configuration).
const LEASE_MS: i64 = 30_000;
/// The operator looks at dead jobs this often.
const OPERATOR_EVERY_MS: i64 = 600_000;
/// A merchant request still unanswered after this many attempts is a broken invariant (a
/// deterministic 5xx would otherwise be retried for ever).
const MAX_ATTEMPTS: u32 = 50;
/// Share of payments made by the merchant with a webhook endpoint.
const SUBSCRIBED_SHARE: f64 = 0.25;
/// Past the last arrival, payments have this long to finish.
const DRAIN_HORIZON_MS: i64 = 3 * 24 * 3_600_000;

/// Runs `opts`; when an invariant breaks on a payment, runs the seed again tracing that
/// payment and returns the first run's summary with the replay's trail.
pub fn run(opts: Options) -> anyhow::Result<Summary> {
    let mut first = run_once(opts.clone())?;
    if let Some(v) = first.violation.clone()
        && !v.payment_id.is_empty()
        && opts.trace.is_none()
    {
        let mut again = opts;
        again.trace = Some(v.payment_id.clone());
        let replay = run_once(again)?;
        first.trail = replay.trail;
        if replay.violation.as_ref() != Some(&v) {
            first.trail.push(format!(
                "(the replay did not break the same way — the run is not deterministic: {:?})",
                replay.violation
            ));
        }
    }
    Ok(first)
}

/// Turns a planted bug on for the length of a run.
struct Planted(Option<PlantedBug>);

impl Planted {
    fn switch(bug: PlantedBug) -> &'static std::sync::atomic::AtomicBool {
        use crate::service::planted;
        match bug {
            PlantedBug::SkipOnrampClaim => &planted::SKIP_ONRAMP_CLAIM,
            PlantedBug::KeyPerAttempt => &planted::KEY_PER_ATTEMPT,
        }
    }

    fn on(bug: Option<PlantedBug>) -> Planted {
        if let Some(b) = bug {
            Self::switch(b).store(true, Ordering::Relaxed);
        }
        Planted(bug)
    }
}

impl Drop for Planted {
    fn drop(&mut self) {
        if let Some(b) = self.0 {
            Self::switch(b).store(false, Ordering::Relaxed);
        }
    }
}

fn cpu_secs() -> f64 {
    // utime and stime, fields 14 and 15 of /proc/self/stat, in clock ticks (100 per second).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(0.0)
}

fn run_once(opts: Options) -> anyhow::Result<Summary> {
    // Webhook deliveries build HTTP clients, which need the TLS provider.
    crate::tls::init();
    let clock = SimClock::new();
    // Ids from the seed and the simulated clock; held for the whole run (one at a time).
    let _ids = crate::idgen::deterministic(opts.seed ^ 0x1d5_1d5, clock.clone());
    let _planted = Planted::on(opts.plant);
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!(
        "corridor-sim-{}-{}.db",
        std::process::id(),
        opts.seed
    ));
    let remove = |p: &std::path::Path| {
        for suffix in ["", "-wal", "-shm"] {
            let mut f = p.as_os_str().to_owned();
            f.push(suffix);
            let _ = std::fs::remove_file(f);
        }
    };
    remove(&path);
    let started = std::time::Instant::now();
    let cpu0 = cpu_secs();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let mut sim = Sim::start(opts, clock, &path).await?;
        sim.drive().await?;
        let summary = sim.finish().await;
        sim.store.close().await;
        summary
    });
    drop(rt);
    remove(&path);
    let mut summary = result?;
    summary.wall_secs = started.elapsed().as_secs_f64();
    summary.cpu_secs = cpu_secs() - cpu0;
    Ok(summary)
}

/// What the merchant tries, and what it was told.
#[derive(Debug, Clone)]
pub(super) struct Order {
    pub(super) payout_currency: &'static str,
    pub(super) amount: i64,
    /// The quote: id, guaranteed payout, expiry (ms).
    pub(super) quote: Option<(String, i64, i64)>,
    /// The payout the 202 promised.
    pub(super) promised: Option<i64>,
    /// The first definitive answer: status and a hash of the body.
    pub(super) answer: Option<(u16, [u8; 32])>,
    pub(super) payment_id: Option<String>,
    /// Made by the merchant with a webhook endpoint.
    pub(super) subscribed: bool,
    pub(super) cancel: bool,
    pub(super) replay: bool,
    pub(super) operator_retry: bool,
    /// Refused at creation (no payment).
    pub(super) refused: bool,
    pub(super) attempts: u32,
}

#[derive(Debug)]
enum Ev {
    Arrive(u32),
    Quote(u32),
    Pay(u32),
    Cancel(u32, u32),
    Webhook(LegReport, u32),
    OperatorRetry(u32),
    Operator,
}

struct Queued {
    at: i64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// The subscribed merchant's webhook endpoint: answers 200 to everything and remembers the
/// event ids it received. It is the one thing in a run reached over a socket (Corridor's
/// delivery path is real HTTP, on loopback): it answers at once and always the same, so only
/// a failure of the loopback socket itself could change a run.
struct Sink {
    addr: std::net::SocketAddr,
    seen: Arc<std::sync::Mutex<HashSet<String>>>,
}

impl Sink {
    async fn start() -> anyhow::Result<Arc<Sink>> {
        let seen: Arc<std::sync::Mutex<HashSet<String>>> = Arc::default();
        let record = seen.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let record = record.clone();
                async move {
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
                        && let Some(id) = v["id"].as_str()
                    {
                        record
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(id.to_owned());
                    }
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Arc::new(Sink { addr, seen }))
    }

    fn delivered(&self, id: &str) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }
}

/// One running Corridor process: its router, use cases and two workers (the second takes
/// jobs over when a lease runs out under the first).
struct Process {
    router: axum::Router,
    service: Arc<Service>,
    engine: Arc<Engine>,
    thief: Arc<Engine>,
    /// API keys: the merchant without a webhook endpoint, and the one with.
    keys: [String; 2],
    ctx: Arc<Ctx>,
    clock: Arc<SimClock>,
    requests: std::sync::atomic::AtomicU64,
}

impl Process {
    /// Sends one request through the router as a client would. `None`: the process died
    /// while handling it, so the answer never reached the client.
    async fn request(
        &self,
        merchant: usize,
        method: &str,
        path: &str,
        idem_key: Option<&str>,
        body: Option<String>,
    ) -> Option<(u16, axum::body::Bytes)> {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.keys[merchant]))
            .header("x-request-id", format!("req_sim_{n}"));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        if let Some(k) = idem_key {
            req = req.header("idempotency-key", k);
        }
        let mut req = req.body(body.map_or_else(Body::empty, Body::from)).ok()?;
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                40_000,
            ))));
        let resp = self.router.clone().oneshot(req).await.ok()?;
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .ok()?;
        if self.ctx.is_down() {
            return None;
        }
        Some((status, bytes))
    }

    /// Cancels as the merchant would; a race does not know whose payment it is, so it asks
    /// as one merchant and then the other (a foreign payment is a 404).
    async fn cancel(&self, merchants: &[usize], payment_id: &str) -> Option<u16> {
        let path = format!("/v1/payments/{payment_id}/cancel");
        self.ctx.tried_cancel(payment_id);
        let mut status = 404;
        for &m in merchants {
            status = self.request(m, "POST", &path, None, None).await?.0;
            if status != 404 {
                break;
            }
        }
        match status {
            200 => {
                self.ctx.won_cancel(payment_id);
                self.ctx.count(|s| s.cancels_won += 1);
            }
            409 => self.ctx.count(|s| s.cancels_refused += 1),
            _ => {}
        }
        self.ctx
            .trace(payment_id, format!("merchant cancel → {status}"));
        Some(status)
    }

    async fn webhook(&self, report: LegReport) -> Option<bool> {
        let id = report.payment_id.clone();
        let what = format!(
            "webhook {} {:?} for {}",
            report.webhook_id, report.status, report.reference
        );
        let r = self.service.settle_from_webhook(report).await;
        if self.ctx.is_down() {
            return None;
        }
        let done = match r {
            Ok(WebhookOutcome::Applied) => {
                self.ctx.count(|s| s.webhooks_applied += 1);
                true
            }
            Ok(WebhookOutcome::AlreadyApplied) => {
                self.ctx.count(|s| s.webhooks_already_applied += 1);
                true
            }
            Ok(WebhookOutcome::Duplicate) => {
                self.ctx.count(|s| s.webhooks_duplicate += 1);
                true
            }
            // Not on a payment yet (the worker has not recorded the reference), or the
            // database is unavailable: a provider delivers again later.
            Err(_) => false,
        };
        self.ctx.trace(
            &id,
            format!(
                "{what} → {}",
                if done {
                    "taken"
                } else {
                    "not taken, redelivered later"
                }
            ),
        );
        Some(done)
    }

    /// A second worker takes over once the first's lease has run out: it runs everything
    /// then due, the job in flight included (its `run_at` is its lease's end).
    async fn steal(&self) {
        self.clock.advance(LEASE_MS + 1);
        if let Ok(n) = self.thief.run_due(64).await {
            self.ctx.count(|s| s.jobs_run += n as u64);
        }
    }
}

pub(super) struct Sim {
    ctx: Arc<Ctx>,
    clock: Arc<SimClock>,
    cfg: Config,
    pub(super) store: Store,
    admin_hash: String,
    keys: [String; 2],
    sink: Arc<Sink>,
    world: Arc<World>,
    process: Arc<Process>,
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    pub(super) orders: Vec<Order>,
    arrivals_done: bool,
    last_arrival: i64,
    idle_claims: u32,
}

impl Sim {
    async fn start(
        opts: Options,
        clock: Arc<SimClock>,
        path: &std::path::Path,
    ) -> anyhow::Result<Sim> {
        let url = format!("sqlite://{}", path.display());
        // Every setting a decision depends on is given here, so no environment changes a run.
        let (volatility, market_seed) = (opts.market_volatility.to_string(), opts.seed.to_string());
        let cfg = Config::from_args([
            "--database-url",
            &url,
            "--rate-source",
            "simulated",
            // The simulated providers keep no statement: reconciliation is tested apart.
            "--reconcile-every",
            "0s",
            // The simulated providers never return a payout: no look after settlement.
            "--return-check-after",
            "0s",
            "--market-volatility",
            &volatility,
            "--market-seed",
            &market_seed,
            "--rate-limit",
            "0",
            "--quote-ttl",
            "60s",
            "--poll-interval",
            "5s",
            "--job-lease",
            "30s",
            // Short, so provider outages dead-letter jobs and the operator redrives them.
            "--job-retry-for",
            "10m",
            "--job-max-attempts",
            "8",
            "--provider-timeout",
            "10s",
            "--request-timeout",
            "30s",
            "--spread-bps",
            "50",
            "--stuck-after",
            "15m",
            "--history-retention",
            "30d",
            "--webhook-allow-private",
            "true",
            "--webhook-timeout",
            "10s",
            "--webhook-retry",
            "5s,1m,5m,30m,2h",
        ])
        .context("simulation configuration")?;
        let ctx = Ctx::new(opts, clock.clone());
        let store = Store::connect(
            &url,
            PoolConfig {
                max_connections: 2,
                inline_writer: true,
                ..PoolConfig::default()
            },
        )
        .await?;
        store.migrate().await?;
        let store = store.with_faults(Arc::new(Faults(ctx.clone())));
        let shared: SharedClock = clock.clone();
        let (admin_hash, boot) = crate::app::prepare(&store, &cfg, &shared).await?;
        let plain = boot
            .and_then(|b| b.merchant_key)
            .map(|k| k.expose_secret().to_owned())
            .context("the simulation's database should be new")?;
        let subscribed =
            crate::service::operators::create_merchant(&store, clock.now(), "subscribed", "sim")
                .await?;
        let keys = [plain, subscribed.api_key.expose_secret().to_owned()];
        let sink = Sink::start().await?;
        let world = World::new(ctx.clone());
        let process = Self::process(&ctx, &clock, &cfg, &store, &world, &admin_hash, &keys)?;
        let endpoint = serde_json::json!({ "url": format!("http://{}/hook", sink.addr) });
        match process
            .request(
                1,
                "POST",
                "/v1/webhook-endpoints",
                None,
                Some(endpoint.to_string()),
            )
            .await
        {
            Some((201 | 200, _)) => {}
            other => anyhow::bail!("could not subscribe the simulation's endpoint: {other:?}"),
        }
        let mut sim = Sim {
            ctx,
            clock,
            cfg,
            store,
            admin_hash,
            keys,
            sink,
            world,
            process,
            queue: BinaryHeap::new(),
            seq: 0,
            orders: Vec::new(),
            arrivals_done: false,
            last_arrival: EPOCH_MS,
            idle_claims: 0,
        };
        sim.ctx.armed.store(true, Ordering::SeqCst);
        sim.push(EPOCH_MS, Ev::Arrive(0));
        sim.push(EPOCH_MS + OPERATOR_EVERY_MS, Ev::Operator);
        Ok(sim)
    }

    /// Builds a process over the store (at start and after every crash), and installs its
    /// racer in the world.
    fn process(
        ctx: &Arc<Ctx>,
        clock: &Arc<SimClock>,
        cfg: &Config,
        store: &Store,
        world: &Arc<World>,
        admin_hash: &str,
        keys: &[String; 2],
    ) -> anyhow::Result<Arc<Process>> {
        let shared: SharedClock = clock.clone();
        let node = Node::build(
            cfg,
            store.clone(),
            shared.clone(),
            ctx.seed(),
            world.providers(),
            admin_hash.to_owned(),
        )?;
        let thief = Node::build(
            cfg,
            store.clone(),
            shared,
            ctx.seed(),
            world.providers(),
            admin_hash.to_owned(),
        )?
        .engine;
        let process = Arc::new(Process {
            router: crate::api::router(node.state.clone()),
            service: node.service,
            engine: node.engine,
            thief,
            keys: keys.clone(),
            ctx: ctx.clone(),
            clock: clock.clone(),
            requests: std::sync::atomic::AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&process);
        let racer: Racer = Arc::new(move |race| {
            let p = weak.upgrade();
            Box::pin(async move {
                let Some(p) = p else { return };
                match race {
                    Race::Cancel(id) => {
                        let _ = p.cancel(&[0, 1], &id).await;
                    }
                    Race::Steal => p.steal().await,
                    Race::Webhook(report) => {
                        let _ = p.webhook(report).await;
                    }
                }
            })
        });
        world.set_racer(Some(racer));
        Ok(process)
    }

    fn push(&mut self, at: i64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at,
            seq: self.seq,
            ev,
        }));
    }

    fn now(&self) -> i64 {
        self.clock.ms()
    }

    /// The dead process is replaced: what it held in memory is gone, its leases run out.
    async fn restart(&mut self) -> anyhow::Result<()> {
        // A start does what `serve` does before serving (on this database: nothing to
        // bootstrap, the recurring jobs already there) — and may itself crash.
        let shared: SharedClock = self.clock.clone();
        loop {
            self.ctx.down.store(false, Ordering::SeqCst);
            self.ctx.count(|s| s.restarts += 1);
            self.clock.advance(self.ctx.between(500, 5_000));
            self.store.forget_caches();
            match crate::app::prepare(&self.store, &self.cfg, &shared).await {
                Ok(_) => break,
                Err(_) if self.ctx.is_down() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        self.process = Self::process(
            &self.ctx,
            &self.clock,
            &self.cfg,
            &self.store,
            &self.world,
            &self.admin_hash,
            &self.keys,
        )?;
        Ok(())
    }

    async fn drive(&mut self) -> anyhow::Result<()> {
        loop {
            if self.ctx.violation().is_some() {
                return Ok(());
            }
            for o in self.world.take_outbox() {
                self.push(o.at, Ev::Webhook(o.report, 0));
            }
            if self.ctx.is_down() {
                self.restart().await?;
            }
            if self.arrivals_done && self.now() > self.last_arrival + DRAIN_HORIZON_MS {
                // The end-of-run checks report what did not finish.
                return Ok(());
            }
            let next_job = jobs::next_due(&self.store).await?.map(|t| t.millis());
            let next_ev = self.queue.peek().map(|Reverse(q)| q.at);
            let Some(ev_at) = next_ev else { return Ok(()) };
            // A tie between a due job and an event goes either way: both orders happen.
            match next_job {
                Some(j) if j < ev_at || (j == ev_at && self.ctx.below(2) == 0) => {
                    self.clock.set(j);
                    let ran = self.process.engine.run_due(1).await.unwrap_or(0);
                    self.ctx.count(|s| s.jobs_run += ran as u64);
                    if ran == 0 && !self.ctx.is_down() && j <= self.now() {
                        self.idle_claims += 1;
                        if self.idle_claims > 3 {
                            self.ctx.violate(
                                "a due job is claimable",
                                "",
                                format!("a job due at {j} could not be claimed at {}", self.now()),
                            );
                        }
                    } else {
                        self.idle_claims = 0;
                    }
                }
                _ => {
                    let Some(Reverse(q)) = self.queue.pop() else {
                        return Ok(());
                    };
                    self.clock.set(q.at);
                    self.handle(q.ev).await?;
                }
            }
        }
    }

    async fn handle(&mut self, ev: Ev) -> anyhow::Result<()> {
        match ev {
            Ev::Arrive(i) => self.arrive(i).await?,
            Ev::Quote(i) => self.quote(i).await?,
            Ev::Pay(i) => self.pay(i).await?,
            Ev::Cancel(i, tries) => {
                let o = &self.orders[i as usize];
                let Some(id) = o.payment_id.clone() else {
                    return Ok(());
                };
                let merchant = usize::from(o.subscribed);
                let p = self.process.clone();
                match p.cancel(&[merchant], &id).await {
                    None | Some(500..) if tries < 10 => {
                        let at = self.now() + self.ctx.between(1_000, 10_000);
                        self.push(at, Ev::Cancel(i, tries + 1));
                    }
                    _ => {}
                }
            }
            Ev::Webhook(report, tries) => {
                let p = self.process.clone();
                if p.webhook(report.clone()).await != Some(true) && tries < 20 {
                    self.ctx.count(|s| s.webhooks_redelivered += 1);
                    let at = self.now() + self.ctx.between(5_000, 60_000) * i64::from(tries + 1);
                    self.push(at, Ev::Webhook(report, tries + 1));
                }
            }
            Ev::OperatorRetry(i) => {
                if let Some(id) = self.orders[i as usize].payment_id.clone() {
                    let r = self
                        .process
                        .service
                        .retry_payment(&id, "sim-operator")
                        .await;
                    self.ctx.count(|s| s.operator_retries += 1);
                    self.ctx.trace(
                        &id,
                        format!(
                            "operator retry → {}",
                            match r {
                                Ok(state) => format!("re-ran {state}"),
                                Err(e) => e.to_string(),
                            }
                        ),
                    );
                }
            }
            Ev::Operator => self.operator().await?,
        }
        Ok(())
    }

    async fn arrive(&mut self, i: u32) -> anyhow::Result<()> {
        let ctx = self.ctx.clone();
        let payout_currency = PAYOUTS[ctx.below(PAYOUTS.len() as u64) as usize];
        // Log-uniform over the corridors' range, and now and then outside it.
        let amount = match ctx.below(40) {
            0 => ctx.between(1, 999),
            1 => ctx.between(100_000_001, 1_000_000_000),
            _ => {
                let exp = ctx.between(300, 800) as f64 / 100.0;
                10f64.powf(exp) as i64
            }
        };
        let quoted = ctx.chance(ctx.opts.quote_rate);
        self.orders.push(Order {
            payout_currency,
            amount,
            quote: None,
            promised: None,
            answer: None,
            payment_id: None,
            subscribed: ctx.chance(SUBSCRIBED_SHARE),
            cancel: ctx.chance(ctx.opts.cancel_rate),
            replay: ctx.chance(ctx.opts.client_retry_rate),
            operator_retry: ctx.chance(ctx.opts.operator_retry_rate),
            refused: false,
            attempts: 0,
        });
        self.last_arrival = self.now();
        if u64::from(i) + 1 < ctx.opts.payments {
            // Exponential inter-arrival times (a Poisson process).
            let u = (ctx.between(1, 1_000_000) as f64) / 1_000_000.0;
            let gap = (-u.ln() / ctx.opts.arrival_rate * 1000.0) as i64;
            self.push(self.now() + gap, Ev::Arrive(i + 1));
        } else {
            self.arrivals_done = true;
        }
        if quoted {
            self.quote(i).await
        } else {
            self.pay(i).await
        }
    }

    async fn quote(&mut self, i: u32) -> anyhow::Result<()> {
        let o = &self.orders[i as usize];
        let body = serde_json::json!({
            "from_currency": "USD",
            "to_currency": o.payout_currency,
            "amount": o.amount,
        })
        .to_string();
        let p = self.process.clone();
        let merchant = usize::from(o.subscribed);
        let answer = p
            .request(merchant, "POST", "/v1/quotes", None, Some(body))
            .await;
        let now = self.now();
        match answer {
            Some((201 | 200, body)) => {
                let v: serde_json::Value = serde_json::from_slice(&body)?;
                let id = v["quote_id"].as_str().context("quote_id")?.to_owned();
                let payout = v["guaranteed_payout"]
                    .as_i64()
                    .context("guaranteed_payout")?;
                let expires = now + QUOTE_TTL_MS;
                self.ctx.count(|s| s.quotes += 1);
                let at = if self.ctx.chance(self.ctx.opts.expiry_boundary_rate) {
                    self.ctx.count(|s| s.quotes_paid_at_expiry += 1);
                    expires + self.ctx.between(-1, 1)
                } else {
                    now + self.ctx.between(0, 5_000)
                };
                self.orders[i as usize].quote = Some((id, payout, expires));
                self.push(at, Ev::Pay(i));
            }
            Some((status, _)) if status < 500 => {
                // Refused (out of range): the merchant does not pay.
                self.orders[i as usize].refused = true;
                self.ctx.count(|s| s.payments_refused += 1);
            }
            _ => {
                self.ctx.count(|s| s.requests_lost += 1);
                let at = now + self.ctx.between(1_000, 10_000);
                self.push(at, Ev::Quote(i));
            }
        }
        Ok(())
    }

    fn pay_body(&self, i: u32) -> String {
        let o = &self.orders[i as usize];
        let mut body = serde_json::json!({
            "source_account": format!("acct_src_{i}"),
            "destination_account": format!("acct_dst_{i}"),
        });
        match &o.quote {
            Some((id, _, _)) => body["quote_id"] = id.clone().into(),
            None => {
                body["amount"] = o.amount.into();
                body["currency"] = "USD".into();
                body["payout_currency"] = o.payout_currency.into();
            }
        }
        body.to_string()
    }

    async fn pay(&mut self, i: u32) -> anyhow::Result<()> {
        let body = self.pay_body(i);
        let key = format!("order-{i}");
        let p = self.process.clone();
        let merchant = usize::from(self.orders[i as usize].subscribed);
        let answer = p
            .request(merchant, "POST", "/v1/payments", Some(&key), Some(body))
            .await;
        let now = self.now();
        let ctx = self.ctx.clone();
        let order = &mut self.orders[i as usize];
        order.attempts += 1;
        let (status, bytes) = match answer {
            None => {
                ctx.count(|s| s.requests_lost += 1);
                let at = now + ctx.between(1_000, 10_000);
                self.push(at, Ev::Pay(i));
                return Ok(());
            }
            Some((status, bytes)) => (status, bytes),
        };
        let code = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default();
        if status >= 500 || status == 429 || code == "IDEMPOTENCY_KEY_IN_USE" {
            ctx.count(|s| s.requests_unavailable += 1);
            if order.attempts > MAX_ATTEMPTS {
                ctx.violate(
                    "requests are answered",
                    "",
                    format!("order-{i}: still {status} {code} after {MAX_ATTEMPTS} attempts"),
                );
                return Ok(());
            }
            let at = now + ctx.between(1_000, 10_000);
            self.push(at, Ev::Pay(i));
            return Ok(());
        }
        let hash: [u8; 32] = Sha256::new()
            .chain_update(status.to_be_bytes())
            .chain_update(&bytes)
            .finalize()
            .into();
        if let Some(first) = order.answer {
            ctx.count(|s| s.client_replays += 1);
            if first != (status, hash) {
                ctx.violate(
                    "replays are byte-identical",
                    order.payment_id.as_deref().unwrap_or(""),
                    format!(
                        "order-{i} was answered {} first and {status} ({}) on a replay",
                        first.0,
                        String::from_utf8_lossy(&bytes)
                            .chars()
                            .take(300)
                            .collect::<String>()
                    ),
                );
            }
            return Ok(());
        }
        order.answer = Some((status, hash));
        if status == StatusCode::ACCEPTED.as_u16() {
            let v: serde_json::Value = serde_json::from_slice(&bytes)?;
            let id = v["payment_id"].as_str().context("payment_id")?.to_owned();
            let payout = v["guaranteed_payout"].as_i64().with_context(|| {
                format!(
                    "no guaranteed_payout in {}",
                    String::from_utf8_lossy(&bytes)
                )
            })?;
            ctx.count(|s| s.payments_accepted += 1);
            ctx.trace(
                &id,
                format!(
                    "order-{i} accepted on attempt {} (payout {payout})",
                    order.attempts
                ),
            );
            if let Some((_, guaranteed, _)) = &order.quote
                && payout != *guaranteed
            {
                ctx.violate(
                    "a quoted payment pays its guarantee",
                    &id,
                    format!("quoted {guaranteed}, accepted with payout {payout}"),
                );
            }
            order.promised = Some(payout);
            order.payment_id = Some(id);
            let (cancel, replay, retry) = (order.cancel, order.replay, order.operator_retry);
            if cancel {
                // Half at once (racing the worker's first run), half a little later.
                let at = now + ctx.below(2) as i64 * ctx.between(0, 3_000);
                self.push(at, Ev::Cancel(i, 0));
            }
            if replay {
                let at = now + ctx.between(0, 60_000);
                self.push(at, Ev::Pay(i));
            }
            if retry {
                let at = now + ctx.between(0, 30_000);
                self.push(at, Ev::OperatorRetry(i));
            }
        } else {
            order.refused = true;
            ctx.count(|s| s.payments_refused += 1);
            if code == "QUOTE_EXPIRED"
                && let Some((_, _, expires)) = &order.quote
                && now < *expires
            {
                ctx.violate(
                    "a quote is honoured until it expires",
                    "",
                    format!(
                        "order-{i}: refused as expired {} ms before its expiry",
                        expires - now
                    ),
                );
            }
        }
        Ok(())
    }

    /// The operator's round: redrive dead jobs, and decide whether the run is over.
    async fn operator(&mut self) -> anyhow::Result<()> {
        let dead = jobs::dead(&self.store, None, 100).await?;
        for job in dead {
            if self
                .process
                .service
                .redrive_job(&job.id, "sim-operator")
                .await
                .is_ok()
            {
                self.ctx.count(|s| s.operator_redrives += 1);
            }
            if self.ctx.is_down() {
                // The process died under the operator: they come back on their next round.
                self.push(self.now() + OPERATOR_EVERY_MS, Ev::Operator);
                return Ok(());
            }
        }
        let only_me = self.queue.is_empty();
        if self.arrivals_done && only_me {
            let open = crate::store::payments::count_in_flight(&self.store)
                .await?
                .into_iter()
                .map(|(_, n)| n)
                .sum::<i64>();
            let pending = crate::store::census::pending_work(&self.store).await?;
            if (open == 0 && pending == 0) || self.now() > self.last_arrival + DRAIN_HORIZON_MS {
                return Ok(());
            }
        }
        self.push(self.now() + OPERATOR_EVERY_MS, Ev::Operator);
        Ok(())
    }

    async fn finish(&mut self) -> anyhow::Result<Summary> {
        let checked = invariants::at_the_end(self).await?;
        let mut trail = self
            .ctx
            .trail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(id) = &self.ctx.opts.trace
            && let Ok(history) = crate::store::payments::history(&self.store, id).await
        {
            trail.push("history as committed:".into());
            for h in history {
                trail.push(format!(
                    "{:>10.3}s  {} → {} ({})",
                    (h.at.millis() - EPOCH_MS) as f64 / 1000.0,
                    h.from.map_or("-".to_owned(), |s| s.to_string()),
                    h.to,
                    h.reason
                ));
            }
        }
        Ok(Summary {
            opts: self.ctx.opts.clone(),
            by_state: checked.by_state,
            simulated_ms: self.now() - EPOCH_MS,
            stats: self.ctx.stats(),
            checks: checked.checks,
            payments_checked: checked.payments,
            arrived: self.orders.len() as u64,
            digest: checked.digest,
            violation: self.ctx.violation(),
            trail,
            wall_secs: 0.0,
            cpu_secs: 0.0,
        })
    }

    pub(super) fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    pub(super) fn world(&self) -> &Arc<World> {
        &self.world
    }

    /// Whether the endpoint received the event `id`.
    pub(super) fn delivered(&self, id: &str) -> bool {
        self.sink.delivered(id)
    }

    /// Payment ids a merchant's cancel was answered 200 for.
    pub(super) fn cancels_won(&self) -> HashSet<String> {
        self.ctx.cancels_won()
    }

    /// Payment ids a merchant sent a cancel for.
    pub(super) fn cancels_tried(&self) -> HashSet<String> {
        self.ctx.cancels_tried()
    }
}
