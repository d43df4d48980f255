//! `corridor sim-provider`: the database-backed [`Simulator`] served over the provider
//! protocol (`docs/provider-protocol.md`), so Corridor's HTTP adapters — and anyone writing a
//! real provider integration — can be exercised end to end with the same delays, failure
//! rate, magic accounts and idempotency as the in-process simulator.
//!
//! Both sides share one process and one database of their own: the onramp under `/onramp`,
//! the offramp under `/offramp`. When given Corridor's URL and the provider webhook secret, a
//! background loop pushes one signed status webhook per transfer once it settles, retrying on
//! a schedule and recording in `sim_transfers.notified_at` when it is done; polling remains
//! Corridor's safety net, so a receiver that is down or answers 404 costs nothing but logs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use reqwest::Url;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::http::{
    self, ErrorBody, IDEMPOTENCY_HEADER, InitiateBody, ProviderWebhook, TransferBody, WireStatus,
};
use super::simulator::{self, SimSettings, Simulator};
use super::{LegRequest, Offramp, Onramp, ProviderError, TransferStatus};
use crate::clock::{SharedClock, SystemClock};
use crate::config::{DurRange, Probability};
use crate::signing::{self, Secret};
use crate::store::sim::{self, SimTransfer};
use crate::store::{PoolConfig, Store};

/// Options of `corridor sim-provider`. The simulator settings read the same variables as
/// `serve`, so one `.env` describes the simulated world whichever process simulates it.
#[derive(Debug, Clone, clap::Args)]
pub struct SimProviderArgs {
    /// Address to serve on (port 0 picks a free port, printed at start).
    #[arg(long)]
    pub listen: SocketAddr,
    /// The simulator's own database (never Corridor's): `sqlite://PATH` or `postgres://…`.
    #[arg(
        long,
        env = "CORRIDOR_SIM_DATABASE_URL",
        default_value = "sqlite://sim.db"
    )]
    pub database_url: String,
    /// Corridor's base URL; with a webhook secret, settled transfers are pushed to
    /// `{corridor-url}/v1/provider-webhooks/{provider}`.
    #[arg(long)]
    pub corridor_url: Option<String>,
    /// `whsec_…` secret the onramp's status webhooks are signed with (Corridor's
    /// `CORRIDOR_ONRAMP_WEBHOOK_SECRET`).
    #[arg(long, env = "CORRIDOR_ONRAMP_WEBHOOK_SECRET", hide_env_values = true)]
    pub onramp_webhook_secret: Option<String>,
    /// `whsec_…` secret the offramp's status webhooks are signed with (Corridor's
    /// `CORRIDOR_OFFRAMP_WEBHOOK_SECRET`).
    #[arg(long, env = "CORRIDOR_OFFRAMP_WEBHOOK_SECRET", hide_env_values = true)]
    pub offramp_webhook_secret: Option<String>,
    /// Provider name of the onramp side in webhook URLs (must match Corridor's).
    #[arg(long, env = "CORRIDOR_ONRAMP_NAME", default_value = http::ONRAMP_NAME)]
    pub onramp_name: String,
    /// Provider name of the offramp side in webhook URLs (must match Corridor's).
    #[arg(long, env = "CORRIDOR_OFFRAMP_NAME", default_value = http::OFFRAMP_NAME)]
    pub offramp_name: String,
    /// Onramp settlement time, uniform in the range.
    #[arg(long, env = "CORRIDOR_SIM_ONRAMP_DELAY", default_value = "2s..5s")]
    pub sim_onramp_delay: DurRange,
    /// Offramp settlement time, uniform in the range.
    #[arg(long, env = "CORRIDOR_SIM_OFFRAMP_DELAY", default_value = "2s..5s")]
    pub sim_offramp_delay: DurRange,
    /// How long after it settles a payout to `sim_return_offramp` comes back.
    #[arg(long, env = "CORRIDOR_SIM_RETURN_DELAY", default_value = "10s")]
    pub sim_return_delay: crate::config::Dur,
    /// Probability that a leg fails at settlement.
    #[arg(long, env = "CORRIDOR_SIM_FAILURE_RATE", default_value = "0")]
    pub sim_failure_rate: Probability,
    /// Log filter (tracing syntax).
    #[arg(long, env = "CORRIDOR_LOG", default_value = "info")]
    pub log: String,
}

/// How often settled transfers are looked for.
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// Transfers looked at per sweep.
const SWEEP_BATCH: i64 = 200;
/// Deliveries in flight at once.
const DELIVERY_CONCURRENCY: usize = 8;
/// How long one delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Wait before each attempt; after the last one fails the transfer counts as notified (given
/// up), since Corridor's polling settles the payment anyway.
const RETRY_SCHEDULE: [Duration; 5] = [
    Duration::ZERO,
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
];

/// Which side of the simulated provider a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Onramp,
    Offramp,
}

#[derive(Clone)]
struct ServerState {
    onramp: Arc<Simulator>,
    offramp: Arc<Simulator>,
}

impl ServerState {
    fn simulator(&self, side: Side) -> &Simulator {
        match side {
            Side::Onramp => &self.onramp,
            Side::Offramp => &self.offramp,
        }
    }
}

/// A rejection in the protocol's error format: status, code, message.
#[derive(Debug)]
struct Reject(StatusCode, &'static str, String);

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.1.to_owned(),
            message: self.2,
        };
        (self.0, Json(body)).into_response()
    }
}

fn invalid(message: impl Into<String>) -> Reject {
    Reject(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message.into())
}

fn unavailable(e: impl std::fmt::Display) -> Reject {
    tracing::warn!(error = %e, "simulated provider storage failed");
    Reject(
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
        "the simulated provider cannot reach its database; retry with the same key".into(),
    )
}

/// Reads the `Idempotency-Key`: 1–255 printable ASCII characters, as Corridor's own API.
fn idempotency_key(headers: &HeaderMap) -> Result<String, Reject> {
    let key = headers
        .get(IDEMPOTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(invalid(
            "the Idempotency-Key header is required: 1 to 255 printable ASCII characters",
        ));
    }
    Ok(key.to_owned())
}

/// The simulator's verdict on a stored transfer, in wire form.
async fn wire_transfer(sim: &Simulator, t: &SimTransfer) -> Result<TransferBody, ProviderError> {
    let sent = super::Sent {
        reference: t.reference.clone(),
        amount: t.amount,
        currency: t.currency.clone(),
    };
    let (status, failure_reason) = match Onramp::status(sim, &sent).await? {
        TransferStatus::Pending => (WireStatus::Pending, None),
        TransferStatus::Completed => (WireStatus::Completed, None),
        TransferStatus::Failed(reason) => (WireStatus::Failed, Some(reason)),
        TransferStatus::Returned(reason) => (WireStatus::Returned, Some(reason)),
    };
    Ok(TransferBody {
        reference: t.reference.clone(),
        payment_id: t.payment_id.clone(),
        leg: t.leg.clone(),
        amount: t.amount,
        currency: t.currency.clone(),
        status,
        failure_reason,
    })
}

async fn find(sim: &Simulator, reference: &str) -> Result<Option<SimTransfer>, Reject> {
    sim::find(sim.store(), Onramp::name(sim), reference)
        .await
        .map_err(unavailable)
}

async fn initiate(
    side: Side,
    st: ServerState,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Reject> {
    let key = idempotency_key(&headers)?;
    let req: InitiateBody = serde_json::from_slice(&body)
        .map_err(|e| invalid(format!("malformed transfer request: {e}")))?;
    if req.payment_id.is_empty() || req.currency.is_empty() || req.account.is_empty() {
        return Err(invalid(
            "payment_id, currency and account must not be empty",
        ));
    }
    if req.amount <= 0 {
        return Err(invalid("amount must be a positive integer in minor units"));
    }
    // The simulator stores one transfer per (payment, leg). Corridor's keys are exactly
    // `{payment_id}:{leg}`; insisting on it makes "same key" and "same payment and leg" one
    // notion, so this server never answers differently from the protocol.
    if key != format!("{}:{}", req.payment_id, req.leg) {
        return Err(invalid(
            "this simulator keys transfers by payment and leg: the Idempotency-Key must be `{payment_id}:{leg}`",
        ));
    }
    let sim = st.simulator(side);
    let leg = LegRequest {
        payment_id: req.payment_id.clone(),
        idempotency_key: key,
        amount: req.amount,
        currency: req.currency.clone(),
        account: req.account.clone(),
    };
    let started = match (side, req.leg.as_str()) {
        (Side::Onramp, "onramp") => Onramp::buy(sim, &leg).await,
        (Side::Onramp, "reversal") => Onramp::reverse(sim, &leg).await,
        (Side::Offramp, "offramp") => Offramp::pay_out(sim, &leg).await,
        (Side::Onramp, _) => return Err(invalid("the onramp moves legs `onramp` and `reversal`")),
        (Side::Offramp, _) => return Err(invalid("the offramp moves leg `offramp` only")),
    };
    let reference = started.map_err(|e| match e {
        ProviderError::Refused(m) => Reject(StatusCode::UNPROCESSABLE_ENTITY, "REFUSED", m),
        ProviderError::Transient(m) | ProviderError::NotSent(m) => unavailable(m),
    })?;
    let t = find(sim, &reference)
        .await?
        .ok_or_else(|| unavailable(format!("transfer {reference} vanished")))?;
    if t.amount != req.amount || t.currency != req.currency {
        return Err(Reject(
            StatusCode::UNPROCESSABLE_ENTITY,
            "IDEMPOTENCY_KEY_REUSED",
            "this key was first used for a different amount or currency".into(),
        ));
    }
    let body = wire_transfer(sim, &t).await.map_err(unavailable)?;
    // 201 for the first ask, 200 for a repeat: the same transfer either way.
    let status = if t.initiate_calls == 1 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(body)).into_response())
}

async fn status(side: Side, st: ServerState, reference: String) -> Result<Response, Reject> {
    let sim = st.simulator(side);
    let t = find(sim, &reference).await?.ok_or_else(|| {
        Reject(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no transfer {reference} on this side"),
        )
    })?;
    let body = wire_transfer(sim, &t).await.map_err(unavailable)?;
    Ok(Json(body).into_response())
}

/// `GET /transfers?from=&to=` (Unix milliseconds): this side's statement.
#[derive(Debug, serde::Deserialize)]
struct Window {
    from: i64,
    to: i64,
}

async fn statement(side: Side, st: ServerState, w: Window) -> Result<Response, Reject> {
    let sim = st.simulator(side);
    let rows = sim::statement(
        sim.store(),
        Onramp::name(sim),
        crate::domain::Timestamp(w.from),
        crate::domain::Timestamp(w.to),
    )
    .await
    .map_err(unavailable)?;
    let mut data = Vec::with_capacity(rows.len());
    for t in &rows {
        data.push(wire_transfer(sim, t).await.map_err(unavailable)?);
    }
    Ok(Json(super::http::StatementBody { data }).into_response())
}

fn router(state: ServerState) -> Router {
    let side = |s: Side| {
        Router::new()
            .route(
                "/transfers",
                post(
                    move |State(st): State<ServerState>, h: HeaderMap, b: Bytes| {
                        initiate(s, st, h, b)
                    },
                )
                .get(
                    move |State(st): State<ServerState>,
                          w: Result<
                        axum::extract::Query<Window>,
                        axum::extract::rejection::QueryRejection,
                    >| async move {
                        match w {
                            Ok(axum::extract::Query(w)) => statement(s, st, w).await,
                            Err(_) => Err(invalid("from and to are required: Unix milliseconds")),
                        }
                    },
                ),
            )
            .route(
                "/transfers/{reference}",
                get(move |State(st): State<ServerState>, Path(r): Path<String>| status(s, st, r)),
            )
    };
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .nest("/onramp", side(Side::Onramp))
        .nest("/offramp", side(Side::Offramp))
        .fallback(|| async { Reject(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route".into()) })
        .with_state(state)
}

/// Where and how settled transfers are announced.
struct Notifier {
    store: Store,
    clock: SharedClock,
    http: reqwest::Client,
    corridor: Url,
    /// Each side signs with its own secret, as two real providers would.
    onramp_secret: Secret,
    offramp_secret: Secret,
    onramp_name: String,
    offramp_name: String,
    /// Failed attempts so far and when the next may go, per reference. In memory: a restart
    /// simply starts the schedule again.
    retries: HashMap<String, (usize, crate::domain::Timestamp)>,
}

/// One message, ready to send.
struct Delivery {
    /// `offramp` or `onramp`: which secret signs it.
    side: &'static str,
    reference: String,
    id: String,
    url: Url,
    body: String,
}

impl Notifier {
    /// The provider name and event side a transfer is announced under: reversals belong to
    /// the onramp.
    fn side_of<'a>(&'a self, t: &SimTransfer) -> (&'a str, &'static str) {
        if t.leg == "offramp" {
            (&self.offramp_name, "offramp")
        } else {
            (&self.onramp_name, "onramp")
        }
    }

    fn delivery(&self, t: &SimTransfer) -> Delivery {
        let (provider, side) = self.side_of(t);
        let outcome = if t.outcome == "FAILED" {
            "failed"
        } else {
            "completed"
        };
        let body = ProviderWebhook {
            event_type: format!("{side}.{outcome}"),
            reference: t.reference.clone(),
            payment_id: t.payment_id.clone(),
        };
        let mut url = self.corridor.clone();
        url.path_segments_mut()
            .expect("parse_base_url accepts only URLs that can be a base")
            .pop_if_empty()
            .extend(["v1", "provider-webhooks", provider]);
        Delivery {
            side,
            reference: t.reference.clone(),
            // Stable per transfer, so every attempt carries the same id and receivers dedupe.
            id: format!("msg_{}", t.reference),
            url,
            body: serde_json::to_string(&body).expect("a struct of strings serialises"),
        }
    }

    async fn send(&self, d: &Delivery) -> Result<(), String> {
        let resp = signing::signed_post(
            &self.http,
            d.url.as_str(),
            &[if d.side == "offramp" {
                &self.offramp_secret
            } else {
                &self.onramp_secret
            }],
            &d.id,
            self.clock.now(),
            d.body.clone(),
        )
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", resp.status()))
        }
    }

    /// Sends what is due; returns how many transfers were settled for good this round.
    async fn sweep(&mut self) -> Result<usize, crate::store::StoreError> {
        let now = self.clock.now();
        let due = sim::due_notifications(&self.store, now, SWEEP_BATCH).await?;
        let ready: Vec<Delivery> = due
            .iter()
            .filter(|t| {
                self.retries
                    .get(&t.reference)
                    .is_none_or(|(_, at)| *at <= now)
            })
            .map(|t| self.delivery(t))
            .collect();
        let this = &*self;
        let results: Vec<(String, Result<(), String>)> = futures::stream::iter(ready)
            .map(|d| async move {
                let r = this.send(&d).await;
                (d.reference, r)
            })
            .buffer_unordered(DELIVERY_CONCURRENCY)
            .collect()
            .await;
        let mut done = 0;
        for (reference, result) in results {
            let failed = self.retries.get(&reference).map_or(0, |(n, _)| *n);
            let finished = match result {
                Ok(()) => true,
                Err(e) if failed + 1 >= RETRY_SCHEDULE.len() => {
                    tracing::warn!(%reference, error = %e, "giving up on the status webhook; Corridor's polling settles the payment");
                    true
                }
                Err(e) => {
                    tracing::debug!(%reference, error = %e, attempt = failed + 1, "status webhook not accepted; will retry");
                    let wait = RETRY_SCHEDULE[failed + 1];
                    let next = now.plus_millis(i64::try_from(wait.as_millis()).unwrap_or(0));
                    self.retries.insert(reference.clone(), (failed + 1, next));
                    false
                }
            };
            if finished {
                self.retries.remove(&reference);
                sim::mark_notified(&self.store, &reference, self.clock.now()).await?;
                done += 1;
            }
        }
        Ok(done)
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.sweep().await {
                tracing::warn!(error = %e, "webhook sweep failed; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(SWEEP_EVERY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// A running simulated provider: HTTP server and, when configured, the webhook loop.
pub struct SimProvider {
    addr: SocketAddr,
    store: Store,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    notifier: Option<JoinHandle<()>>,
}

impl SimProvider {
    /// Opens and migrates the simulator's database, binds, and starts serving.
    pub async fn start(args: SimProviderArgs) -> anyhow::Result<SimProvider> {
        let webhooks = match (
            &args.corridor_url,
            &args.onramp_webhook_secret,
            &args.offramp_webhook_secret,
        ) {
            (Some(url), Some(on), Some(off)) => Some((
                http::parse_base_url(url).map_err(|e| anyhow::anyhow!("--corridor-url: {e}"))?,
                Secret::parse(on).map_err(|e| anyhow::anyhow!("--onramp-webhook-secret: {e}"))?,
                Secret::parse(off).map_err(|e| anyhow::anyhow!("--offramp-webhook-secret: {e}"))?,
            )),
            (Some(_), _, _) => anyhow::bail!(
                "--corridor-url needs --onramp-webhook-secret and --offramp-webhook-secret (or CORRIDOR_ONRAMP_WEBHOOK_SECRET and CORRIDOR_OFFRAMP_WEBHOOK_SECRET) to sign webhooks"
            ),
            (None, _, _) => None,
        };
        for name in [&args.onramp_name, &args.offramp_name] {
            if name.is_empty() || name.contains('/') {
                anyhow::bail!("provider name `{name}` must be a non-empty path segment");
            }
        }
        let clock: SharedClock = SystemClock::new();
        let store = Store::connect(&args.database_url, PoolConfig::default()).await?;
        store.migrate().await?;
        let (onramp, offramp) = simulator::pair(
            store.clone(),
            clock.clone(),
            SimSettings {
                onramp_delay: (args.sim_onramp_delay.min, args.sim_onramp_delay.max),
                offramp_delay: (args.sim_offramp_delay.min, args.sim_offramp_delay.max),
                failure_rate: args.sim_failure_rate.0,
                return_delay: args.sim_return_delay.0,
            },
            None,
        );
        let (shutdown, stop) = watch::channel(false);
        let notifier = match webhooks {
            Some((corridor, onramp_secret, offramp_secret)) => {
                let http = http::client(DELIVERY_TIMEOUT).map_err(anyhow::Error::msg)?;
                let n = Notifier {
                    store: store.clone(),
                    clock: clock.clone(),
                    http,
                    corridor,
                    onramp_secret,
                    offramp_secret,
                    onramp_name: args.onramp_name.clone(),
                    offramp_name: args.offramp_name.clone(),
                    retries: HashMap::new(),
                };
                Some(tokio::spawn(n.run(stop.clone())))
            }
            None => None,
        };
        let listener = TcpListener::bind(args.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
        let addr = listener.local_addr()?;
        let app = router(ServerState { onramp, offramp });
        let mut rx = stop;
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await
        });
        tracing::info!(%addr, webhooks = notifier.is_some(), "sim-provider listening");
        Ok(SimProvider {
            addr,
            store,
            shutdown,
            server,
            notifier,
        })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Asks the server and the webhook loop to stop.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Waits until both have stopped, then closes the database.
    pub async fn wait(self) {
        let _ = self.server.await;
        if let Some(n) = self.notifier {
            let _ = n.await;
        }
        self.store.close().await;
    }
}
