//! The three Lambda functions over one node.
//!
//! - **api**: the axum router behind API Gateway's HTTP API (`lambda_http`); the client
//!   address a request counts against is API Gateway's `sourceIp`.
//! - **worker**: started by SQS with a batch of wake-ups. Those due run every due job (up to
//!   `CORRIDOR_WORKERS` at a time) until none is due or the run's time is up; one that came
//!   early (a wait past SQS's 15-minute cap) is sent again for the rest of the wait. The
//!   answer is SQS's partial batch response: only a message that could not be handled (not a
//!   wake-up, the database unreachable) is redelivered, and after the queue's receive limit it
//!   goes to the dead-letter queue.
//! - **sweeper**: started by an EventBridge schedule. Runs what is due — the recurring jobs
//!   (alert sweep, housekeeping, the reconciliation schedule), which send no wake-ups, and any
//!   job whose wake-up was lost — then records each dead-lettered message as a dead job, so
//!   the `DEAD_JOB` alert and the operator's dead-job list show it.
//!
//! A job's outcome never depends on its wake-up: claims are leased, steps are idempotent and
//! guarded by compare-and-set, so a wake-up delivered twice finds the job done or held.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use axum::extract::ConnectInfo;
use lambda_http::request::RequestContext;
use lambda_http::{LambdaEvent, RequestExt};

use super::sqs::{Queue, SqsWakeups, Wakeup};
use crate::app::{self, Node, Opened, StartError};
use crate::clock::SharedClock;
use crate::config::{Config, Dur};
use crate::domain::Timestamp;
use crate::domain::task::Task;
use crate::store::UnitOfWork;
use crate::store::jobs::NewJob;
use crate::store::unit::Write;

/// Which function a process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Function {
    /// The HTTP API (API Gateway).
    Api,
    /// Runs due jobs when SQS wakes it.
    Worker,
    /// Runs on a schedule: recurring jobs, lost wake-ups, dead letters.
    Sweeper,
}

/// `corridor lambda <function>`: the settings of `serve`, plus the queues.
#[derive(Debug, clap::Args)]
pub struct LambdaArgs {
    /// Which function this process is.
    #[arg(value_enum)]
    pub function: Function,
    /// The wake-up queue.
    #[arg(long, env = "CORRIDOR_SQS_QUEUE_URL")]
    pub queue_url: String,
    /// Its dead-letter queue (read by the sweeper).
    #[arg(long, env = "CORRIDOR_SQS_DEAD_LETTER_URL")]
    pub dead_letter_url: Option<String>,
    /// A Secrets Manager secret (ARN or name) holding the secret settings as a JSON object.
    #[arg(long, env = "CORRIDOR_SECRET_ID")]
    pub secret_id: Option<String>,
    /// Longest a worker or sweeper run claims jobs for (further capped by the invocation's
    /// own deadline, less the provider timeout and 5 s).
    #[arg(long, env = "CORRIDOR_LAMBDA_RUN_FOR", default_value = "60s")]
    pub run_for: Dur,
    /// Everything else, as for `serve`.
    #[command(flatten)]
    pub config: Config,
}

/// What one sweeper run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Sweep {
    /// Jobs run.
    pub ran: usize,
    /// Whether it stopped at its deadline with jobs possibly still due.
    pub cut_short: bool,
    /// Dead-lettered wake-ups recorded as dead jobs.
    pub dead_letters: usize,
}

/// One node and its queues: what a function builds at a cold start and keeps warm.
pub struct Functions {
    /// Use cases, engine, HTTP state (and through the use cases, the store).
    pub node: Node,
    queue: Arc<Queue>,
    dead_letters: Option<Queue>,
    concurrency: usize,
    run_for: Duration,
    margin: Duration,
}

impl Functions {
    /// Opens the node as `serve` does (migrating the database), its committed units sending
    /// their wake-ups to `queue_url`.
    pub async fn open(
        cfg: &Config,
        sdk: &aws_config::SdkConfig,
        queue_url: &str,
        dead_letter_url: Option<&str>,
        run_for: Duration,
        clock: SharedClock,
        seed: u64,
    ) -> Result<Functions, StartError> {
        cfg.validate().map_err(StartError::Config)?;
        if run_for < Duration::from_secs(1) {
            return Err(StartError::Config(
                "CORRIDOR_LAMBDA_RUN_FOR must be at least 1s".into(),
            ));
        }
        if !cfg.database_url.starts_with("postgres") {
            return Err(StartError::Config(
                "a Lambda function needs PostgreSQL (DATABASE_URL=postgres://…): its local disk is its own and is lost with it".into(),
            ));
        }
        if cfg.admin_key.is_none() {
            return Err(StartError::Config(
                "a Lambda function needs CORRIDOR_ADMIN_KEY (in its secret): a generated key would be printed to no one".into(),
            ));
        }
        crate::tls::init();
        let queue = Arc::new(Queue::new(sdk, queue_url));
        let Opened { node, .. } =
            app::open(cfg, clock, seed, Some(Arc::new(SqsWakeups(queue.clone())))).await?;
        Ok(Functions {
            node,
            queue,
            dead_letters: dead_letter_url.map(|u| Queue::new(sdk, u)),
            concurrency: cfg.workers.max(1),
            run_for,
            margin: cfg.provider_timeout.0 + Duration::from_secs(5),
        })
    }

    fn now(&self) -> Timestamp {
        self.node.service.clock.now()
    }

    /// When a run started with `context` stops claiming: after `CORRIDOR_LAMBDA_RUN_FOR`,
    /// or early enough before the invocation's deadline to finish the jobs it holds.
    pub fn deadline(&self, context: &lambda_http::Context) -> Instant {
        let epoch_ms = u64::try_from(self.now().millis()).unwrap_or(0);
        // A deadline already past at the start is no deadline (Lambda always sends one in
        // the future; a local emulator may not): the run's own limit applies.
        let window = if context.deadline > epoch_ms {
            let remaining = Duration::from_millis(context.deadline - epoch_ms);
            claim_window(remaining, self.margin, self.run_for)
        } else {
            self.run_for
        };
        tracing::debug!(
            deadline_ms = context.deadline,
            window_ms = window.as_millis(),
            "invocation"
        );
        Instant::now() + window
    }

    /// The API function's service: the public router, with API Gateway's `sourceIp` as the
    /// client address (rate limits and failure limits count per client).
    pub fn router(&self) -> axum::Router {
        crate::api::router(self.node.state.clone()).layer(axum::middleware::from_fn(with_source_ip))
    }

    /// The worker: handles a batch of wake-ups (see the module's doc).
    pub async fn on_messages(&self, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
        let now = self.now();
        let mut failed = Vec::new();
        let mut due = Vec::new();
        let mut latest = now;
        for m in event.records {
            let id = m.message_id.clone().unwrap_or_default();
            let Some(w) = m.body.as_deref().and_then(Wakeup::parse) else {
                tracing::warn!(message_id = %id, "not a wake-up; left for the dead-letter queue");
                failed.push(id);
                continue;
            };
            let at = Timestamp(w.due_at_ms);
            if at.millis() > now.millis() + 1_000 {
                // Early: its wait was longer than SQS delays. Send it on for the rest.
                if let Err(e) = self.queue.send(&[at], now).await {
                    tracing::warn!(error = %e, "could not send an early wake-up on");
                    failed.push(id);
                }
                continue;
            }
            latest = latest.max(at);
            due.push(id);
        }
        if !due.is_empty() {
            // Less than a second early (delays are whole seconds): wait for it.
            let wait = latest.millis().saturating_sub(self.now().millis());
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())).await;
            }
            match self
                .node
                .engine
                .run_due_until(deadline, self.concurrency)
                .await
            {
                Ok((ran, cut_short)) => {
                    tracing::info!(ran, cut_short, wakeups = due.len(), "worker run");
                    // Out of time with work left: one fresh wake-up carries on at once.
                    if cut_short && self.queue.send(&[self.now()], self.now()).await.is_err() {
                        failed.extend(due.pop());
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "worker could not claim jobs; the wake-ups come back");
                    failed.append(&mut due);
                }
            }
        }
        let mut out = SqsBatchResponse::default();
        out.batch_item_failures = failed
            .into_iter()
            .map(|item_identifier| {
                let mut f = BatchItemFailure::default();
                f.item_identifier = item_identifier;
                f
            })
            .collect();
        out
    }

    /// The sweeper: runs what is due, then records dead-lettered wake-ups as dead jobs.
    pub async fn on_schedule(&self, deadline: Instant) -> Result<Sweep, String> {
        let (ran, cut_short) = self
            .node
            .engine
            .run_due_until(deadline, self.concurrency)
            .await
            .map_err(|e| e.to_string())?;
        let mut sweep = Sweep {
            ran,
            cut_short,
            dead_letters: 0,
        };
        let Some(dlq) = &self.dead_letters else {
            return Ok(sweep);
        };
        while Instant::now() < deadline {
            let batch = dlq.receive().await?;
            if batch.is_empty() {
                break;
            }
            for m in batch {
                let now = self.now();
                // The message's own id keeps the record single when SQS hands it out again
                // before the delete lands.
                let id = uuid::Uuid::parse_str(&m.message_id)
                    .map(|u| u.to_string())
                    .unwrap_or_else(|_| crate::idgen::v7().to_string());
                let mut unit = UnitOfWork::at(now);
                unit.push(Write::RecordDead {
                    job: NewJob {
                        id,
                        task: Task::DeadLetter {
                            message_id: m.message_id.clone(),
                            receives: m.receives,
                            body: m.body.chars().take(1_000).collect(),
                        },
                        payment_id: None,
                        run_at: now,
                        max_attempts: i64::from(m.receives.max(1)),
                    },
                    error: format!(
                        "SQS gave up on this wake-up after {} deliveries; the jobs it would have woken run from the database",
                        m.receives
                    ),
                });
                match self.node.service.store.commit(unit).await {
                    Ok(Ok(())) => {
                        dlq.delete(&m.receipt_handle).await?;
                        sweep.dead_letters += 1;
                    }
                    Ok(Err(r)) => return Err(format!("recording a dead letter: {r}")),
                    Err(e) => return Err(format!("recording a dead letter: {e}")),
                }
            }
        }
        Ok(sweep)
    }
}

/// How long an invocation with `remaining` time claims jobs: until `margin` (a provider
/// call and some) before its end so the jobs it holds finish inside it, but never less than
/// half of what it has — a function configured with a timeout shorter than the margin must
/// still make progress — and at most `run_for`.
pub fn claim_window(remaining: Duration, margin: Duration, run_for: Duration) -> Duration {
    remaining
        .saturating_sub(margin)
        .max(remaining / 2)
        .min(run_for)
}

/// Takes API Gateway's `sourceIp` as the request's peer: API Gateway is the TCP peer the
/// function never sees, and it sets this field itself.
async fn with_source_ip(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let ip = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c
            .http
            .source_ip
            .as_deref()
            .and_then(|s| s.parse::<IpAddr>().ok()),
        _ => None,
    };
    if let Some(ip) = ip {
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(ip, 0)));
    }
    next.run(req).await
}

/// `corridor lambda <function>`: reads the secret settings, opens the node and serves
/// invocations until the Lambda runtime stops the process.
pub async fn run(args: LambdaArgs) -> Result<(), lambda_http::Error> {
    let LambdaArgs {
        function,
        queue_url,
        dead_letter_url,
        secret_id,
        run_for,
        mut config,
    } = args;
    crate::telemetry::init(&config.log, config.log_format);
    let sdk = super::sdk_config().await;
    if let Some(id) = &secret_id {
        super::secrets::apply(&mut config, super::secrets::load(&sdk, id).await?);
    }
    let seed = rand::random();
    let functions = Arc::new(
        Functions::open(
            &config,
            &sdk,
            &queue_url,
            dead_letter_url.as_deref(),
            run_for.0,
            crate::clock::SystemClock::new(),
            seed,
        )
        .await?,
    );
    tracing::info!(?function, "lambda function ready");
    match function {
        Function::Api => lambda_http::run(functions.router()).await,
        Function::Worker => {
            lambda_http::lambda_runtime::run(lambda_http::service_fn(
                move |ev: LambdaEvent<SqsEvent>| {
                    let f = functions.clone();
                    async move {
                        let deadline = f.deadline(&ev.context);
                        Ok::<_, lambda_http::Error>(f.on_messages(ev.payload, deadline).await)
                    }
                },
            ))
            .await
        }
        Function::Sweeper => {
            lambda_http::lambda_runtime::run(lambda_http::service_fn(
                move |ev: LambdaEvent<serde_json::Value>| {
                    let f = functions.clone();
                    async move {
                        let deadline = f.deadline(&ev.context);
                        let sweep = f.on_schedule(deadline).await?;
                        tracing::info!(?sweep, "sweeper run");
                        Ok::<_, lambda_http::Error>(sweep)
                    }
                },
            ))
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::claim_window;
    use std::time::Duration;

    #[test]
    fn a_run_stops_claiming_in_time_to_finish_but_always_claims() {
        let s = Duration::from_secs;
        // 120 s invocation, 15 s margin, 60 s run: the run's own limit.
        assert_eq!(claim_window(s(120), s(15), s(60)), s(60));
        // 40 s left: stop 15 s before the end.
        assert_eq!(claim_window(s(40), s(15), s(60)), s(25));
        // A timeout shorter than the margin (30 s vs a 30 s provider timeout + 5 s): half.
        assert_eq!(claim_window(s(30), s(35), s(60)), s(15));
        assert_eq!(claim_window(Duration::ZERO, s(35), s(60)), Duration::ZERO);
    }
}
