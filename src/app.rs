//! Start-up: build the store, providers, engine and HTTP server from a [`Config`], and stop
//! them gracefully. Tests spawn an [`Application`] on port 0 exactly as `serve` does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, AppState, Inner};
use crate::clock::SharedClock;
use crate::config::RateSourceKind;
use crate::config::{Config, Role};
use crate::domain::RateTable;
use crate::engine::{Engine, EngineConfig, alerts, janitor};
use crate::keys::{generate_key, hash_key};
use crate::providers::http::{HttpOfframp, HttpOnramp};
use crate::providers::simulator::{self, SimSettings};
use crate::providers::{Offramp, Onramp, Providers};
use crate::service::rates::{SimulatedMarket, StaticTable, WithPins};
use crate::service::{Service, Settings};
use crate::signing::Secret;
use crate::store::unit::Write;
use crate::store::{PoolConfig, Rejected, Store, UnitOfWork, settings};

/// Keys created on the first start against an empty database, to print once.
#[derive(Debug, Clone, Default)]
pub struct Bootstrap {
    /// The generated admin key (`None` when configured).
    pub admin_key: Option<SecretString>,
    /// The demo merchant's id.
    pub merchant_id: String,
    /// The demo merchant's key (`None` when not created by this start).
    pub merchant_key: Option<SecretString>,
}

/// Prepares a database for serving: the one-time bootstrap (admin key, demo merchant) and
/// the recurring jobs. Returns the admin key's hash and what the bootstrap created.
pub async fn prepare(
    store: &Store,
    cfg: &Config,
    clock: &SharedClock,
) -> Result<(String, Option<Bootstrap>), StartError> {
    let boot = bootstrap(store, cfg, clock).await?;
    let mut recurring = UnitOfWork::at(clock.now());
    recurring
        .push(janitor::ensure_scheduled(clock.now()))
        .push(alerts::ensure_scheduled(clock.now()));
    let every = i64::try_from(cfg.reconcile_every.0.as_millis()).unwrap_or(i64::MAX / 4);
    recurring.extend(crate::engine::reconciliations::ensure_scheduled(
        clock.now(),
        every,
    ));
    committed(store.commit(recurring).await?)?;
    Ok(boot)
}

/// One Corridor process's use cases, workers and HTTP state over an open store: what
/// `serve` runs, and what `corridor simulate` builds again after every crash it injects.
pub struct Node {
    /// The use cases.
    pub service: Arc<Service>,
    /// The workers (their loop is started by the caller, if at all).
    pub engine: Arc<Engine>,
    /// What the HTTP handlers run with.
    pub state: AppState,
}

impl Node {
    /// Builds the use cases, the engine (its random choices from `seed`) and the HTTP state
    /// from `cfg`, with `providers` and the admin key's hash.
    pub fn build(
        cfg: &Config,
        store: Store,
        clock: SharedClock,
        seed: u64,
        providers: Providers,
        admin_hash: String,
    ) -> Result<Node, StartError> {
        let corridors = cfg.corridor_table().map_err(StartError::Config)?;
        let shared = clock;

        let service = Arc::new(Service {
            store: store.clone(),
            clock: shared.clone(),
            corridors,
            rates: {
                let table = StaticTable {
                    table: RateTable::static_default(),
                    spread_bps: cfg.spread_bps,
                };
                match cfg.rate_source {
                    RateSourceKind::Static => Arc::new(WithPins {
                        market: table,
                        store: store.clone(),
                    }),
                    RateSourceKind::Simulated => Arc::new(WithPins {
                        market: SimulatedMarket::new(
                            table,
                            cfg.market_volatility,
                            cfg.market_seed,
                            shared.clone(),
                        ),
                        store: store.clone(),
                    }),
                }
            },
            providers,
            settings: Settings {
                quote_ttl_ms: i64::try_from(cfg.quote_ttl.0.as_millis()).unwrap_or(60_000),
                job_max_attempts: i64::from(cfg.job_max_attempts),
                poll_interval_ms: i64::try_from(cfg.poll_interval.0.as_millis())
                    .unwrap_or(i64::MAX),
                provider_timeout: cfg.provider_timeout.0,
                return_check_ms: cfg
                    .return_check_after
                    .as_ref()
                    .map(|d| d.0)
                    .unwrap_or(if cfg.offramp_url.is_none() {
                        Duration::from_secs(30)
                    } else {
                        Duration::ZERO
                    })
                    .as_millis()
                    .try_into()
                    .unwrap_or(i64::MAX),
            },
        });
        // Built in every role; its worker loop runs only where workers are configured.
        let engine = Engine::new(
            service.clone(),
            EngineConfig {
                workers: cfg.workers,
                webhook_workers: cfg.webhook_workers,
                lease: cfg.job_lease.0,
                idle_poll: Duration::from_millis(250),
                webhook_retry: cfg.webhook_retry.0.clone(),
                webhook_timeout: cfg.webhook_timeout.0,
                webhook_allow_private: cfg.webhook_allow_private,
                stuck_after: cfg.stuck_after.0,
                retry_for: cfg.job_retry_for.0,
                history_retention: cfg.history_retention.0,
                reconcile_every: cfg.reconcile_every.0,
                alert_sink: match (&cfg.alert_webhook, &cfg.alert_webhook_secret) {
                    (Some(url), Some(secret)) => Some(crate::engine::alerts::AlertSink {
                        url: url.clone(),
                        secret: Secret::parse(secret.expose_secret()).map_err(|_| {
                            StartError::Config(
                                "CORRIDOR_ALERT_WEBHOOK_SECRET must look like whsec_<base64>"
                                    .into(),
                            )
                        })?,
                    }),
                    _ => None,
                },
            },
            seed,
        );
        let provider_secrets = provider_secrets(cfg)?;
        let state = AppState::new(Inner {
            service: service.clone(),
            admin_hash,
            prometheus: api::metrics::handle(),
            simulated: cfg.onramp_url.is_none() && cfg.offramp_url.is_none(),
            request_timeout: cfg.request_timeout.0,
            webhook_allow_private: cfg.webhook_allow_private,
            provider_secrets,
            rate_limiter: api::rate_limit::Limiter::new(cfg.rate_limit),
            trusted_proxies: cfg.trusted_proxies.clone(),
            auth_failures: api::client::FailureLimiter::new(
                cfg.auth_failure_limit.requests as usize,
                cfg.auth_failure_limit.per,
            ),
        });
        Ok(Node {
            service,
            engine,
            state,
        })
    }
}

/// A running Corridor: HTTP server and workers.
pub struct Application {
    addr: SocketAddr,
    store: Store,
    bootstrap: Option<Bootstrap>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    engine: Arc<Engine>,
    worker_loop: Option<JoinHandle<()>>,
}

/// Why start-up failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Configuration is invalid.
    #[error("{0}")]
    Config(String),
    /// Database unreachable or migrations failed.
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    /// Could not bind the listen address.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

const ADMIN_HASH_KEY: &str = "admin_key_hash";

/// Each provider's webhook secret, from configuration only: the receiver needs the secret
/// itself (an HMAC key cannot be checked against a hash), so it is never written to the
/// database. A provider without one has its webhooks refused; polling still settles its legs.
fn provider_secrets(cfg: &Config) -> Result<api::ProviderSecrets, StartError> {
    let parse = |var: &str, s: &Option<SecretString>| {
        s.as_ref()
            .map(|s| {
                Secret::parse(s.expose_secret())
                    .map_err(|_| StartError::Config(format!("{var} must look like whsec_<base64>")))
            })
            .transpose()
    };
    let onramp = parse("CORRIDOR_ONRAMP_WEBHOOK_SECRET", &cfg.onramp_webhook_secret)?;
    let offramp = parse(
        "CORRIDOR_OFFRAMP_WEBHOOK_SECRET",
        &cfg.offramp_webhook_secret,
    )?;
    if let (Some(a), Some(b)) = (&cfg.onramp_webhook_secret, &cfg.offramp_webhook_secret)
        && a.expose_secret() == b.expose_secret()
    {
        tracing::warn!(
            "the onramp and offramp share a webhook secret: either one can then forge the other's webhooks"
        );
    }
    Ok(api::ProviderSecrets { onramp, offramp })
}

fn committed(r: Result<(), Rejected>) -> Result<(), StartError> {
    r.map_err(|r| StartError::Config(format!("start-up write rejected: {r}")))
}

/// Creates the admin key (when not configured) and a demo merchant, exactly once per
/// database: the process whose insert of the bootstrap marker wins does it.
async fn bootstrap(
    store: &Store,
    cfg: &Config,
    clock: &SharedClock,
) -> Result<(String, Option<Bootstrap>), StartError> {
    let now = clock.now();
    let candidate = cfg.admin_key.is_none().then(|| generate_key("ck_admin_"));
    let admin_write = candidate.as_ref().map(|key| Write::InsertSetting {
        key: ADMIN_HASH_KEY.into(),
        value: hash_key(key),
        required: false,
    });
    // One unit: the marker, the admin key and the demo merchant commit together, so a crash
    // cannot leave a bootstrapped database without them. The marker's insert decides which
    // of several processes starting at once does it.
    let mut first = UnitOfWork::at(now);
    first.push(Write::InsertSetting {
        key: "bootstrapped_at".into(),
        value: now.millis().to_string(),
        required: true,
    });
    first.extend(admin_write.clone());
    let (demo, writes) = crate::service::operators::merchant_writes("demo", "bootstrap", now);
    first.extend(writes);
    let demo = match store.commit(first).await? {
        Ok(()) => Some(demo),
        Err(Rejected::Exists) => {
            // Bootstrapped before: only make sure an admin key exists.
            let mut unit = UnitOfWork::at(now);
            unit.extend(admin_write);
            if !unit.is_empty() {
                committed(store.commit(unit).await?)?;
            }
            None
        }
        Err(other) => {
            committed(Err(other))?;
            None
        }
    };
    let admin_hash = match &cfg.admin_key {
        Some(k) => hash_key(k.expose_secret()),
        None => settings::get(store, ADMIN_HASH_KEY)
            .await?
            .ok_or_else(|| StartError::Config("admin key hash missing after bootstrap".into()))?,
    };
    // Exactly one process's key wins, even when several start at once: ours if the stored
    // hash is its hash.
    let generated = candidate.filter(|k| hash_key(k) == admin_hash);
    let boot = match (demo, generated) {
        (None, None) => None,
        (demo, admin_key) => {
            let (merchant_id, merchant_key) = match demo {
                Some(d) => (d.merchant_id, Some(d.api_key)),
                None => (String::new(), None),
            };
            Some(Bootstrap {
                admin_key: admin_key.map(SecretString::from),
                merchant_id,
                merchant_key,
            })
        }
    };
    Ok((admin_hash, boot))
}

/// A node over its store, ready to serve or run jobs, and what its first start created.
pub struct Opened {
    /// Use cases, engine, HTTP state.
    pub node: Node,
    /// Its store.
    pub store: Store,
    /// Keys created by this start, if it was the first against the database.
    pub bootstrap: Option<Bootstrap>,
}

/// Opens the database (migrating it), prepares it (bootstrap, recurring jobs), builds the
/// providers — refusing a configuration that no longer provides a provider named on a leg in
/// flight — and the node. What `serve` starts from, and what each serverless function
/// (`corridor lambda …`) builds once per cold start, with `wakeups` its SQS queue.
pub async fn open(
    cfg: &Config,
    clock: SharedClock,
    seed: u64,
    wakeups: Option<Arc<dyn crate::store::WakeupSink>>,
) -> Result<Opened, StartError> {
    let shared: SharedClock = clock;
    let pool = PoolConfig {
        max_connections: cfg.db_pool,
        // Well below the request timeout, so an outage answers 503 before the request times out.
        acquire_timeout: (cfg.request_timeout.0 / 2).min(Duration::from_secs(3)),
        group_commit: cfg.group_commit,
        inline_writer: false,
        idle_in_transaction_timeout: cfg.pg_idle_in_transaction_timeout.0,
    };
    let mut store = Store::connect(&cfg.database_url, pool).await?;
    if let Some(sink) = wakeups {
        store = store.with_wakeup_sink(sink);
    }
    store.migrate().await?;
    let (admin_hash, boot) = prepare(&store, cfg, &shared).await?;

    let (onramp, offramp) = simulator::pair(
        store.clone(),
        shared.clone(),
        SimSettings {
            onramp_delay: (cfg.sim_onramp_delay.min, cfg.sim_onramp_delay.max),
            offramp_delay: (cfg.sim_offramp_delay.min, cfg.sim_offramp_delay.max),
            failure_rate: cfg.sim_failure_rate.0,
            return_delay: cfg.sim_return_delay.0,
        },
        None,
    );
    // Each side independently: a configured URL means a provider speaking the provider
    // protocol, otherwise the in-process simulator.
    let onramp: Arc<dyn Onramp> = match &cfg.onramp_url {
        Some(url) => Arc::new(
            HttpOnramp::new(&cfg.onramp_name, url, cfg.provider_timeout.0)
                .map_err(|e| StartError::Config(format!("CORRIDOR_ONRAMP_URL: {e}")))?,
        ),
        None => onramp,
    };
    let offramp: Arc<dyn Offramp> = match &cfg.offramp_url {
        Some(url) => Arc::new(
            HttpOfframp::new(&cfg.offramp_name, url, cfg.provider_timeout.0)
                .map_err(|e| StartError::Config(format!("CORRIDOR_OFFRAMP_URL: {e}")))?,
        ),
        None => offramp,
    };
    // A leg is settled by the provider that started it: starting with a provider
    // configuration that no longer names one of them would strand those payments.
    let names = [onramp.name().to_owned(), offramp.name().to_owned()];
    let stranded: Vec<String> = crate::store::payments::providers_in_flight(&store)
        .await?
        .into_iter()
        .filter(|(p, _)| !p.is_empty() && !names.contains(p))
        .map(|(p, n)| format!("{p} ({n} payments)"))
        .collect();
    if !stranded.is_empty() {
        return Err(StartError::Config(format!(
            "payments in flight have legs with {}, which this configuration does not provide (onramp `{}`, offramp `{}`); \
                 start with the provider configuration those legs were started with until they finish",
            stranded.join(", "),
            names[0],
            names[1]
        )));
    }
    let providers = Providers { onramp, offramp };
    let node = Node::build(
        cfg,
        store.clone(),
        shared.clone(),
        seed,
        providers,
        admin_hash,
    )?;
    Ok(Opened {
        node,
        store,
        bootstrap: boot,
    })
}

impl Application {
    /// Builds everything and starts serving; returns once the listener is bound. Time comes
    /// from `clock` and the engine's random choices (jitter, worker id) from `seed`, so tests
    /// and the simulator can drive both.
    pub async fn start(
        cfg: Config,
        clock: SharedClock,
        seed: u64,
    ) -> Result<Application, StartError> {
        cfg.validate().map_err(StartError::Config)?;
        // One TLS provider for every outbound HTTPS client (webhooks, providers).
        crate::tls::init();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let Opened {
            node: Node { engine, state, .. },
            store,
            bootstrap: boot,
        } = open(&cfg, clock, seed, None).await?;
        let worker_loop = (cfg.role != Role::Api && cfg.workers > 0)
            .then(|| tokio::spawn(engine.clone().run(shutdown_rx.clone())));
        let router = match cfg.role {
            Role::Worker => api::ops_router(state),
            Role::All | Role::Api => api::router(state),
        };
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| StartError::Bind(cfg.listen, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Bind(cfg.listen, e))?;
        let limits = crate::server::Limits {
            header_read_timeout: cfg.header_read_timeout.0,
            idle_timeout: cfg.idle_timeout.0,
            max_connections: cfg.max_connections,
            max_connections_per_client: cfg.max_connections_per_client,
            trusted_proxies: cfg.trusted_proxies.clone(),
        };
        let server = tokio::spawn(crate::server::serve(listener, router, limits, shutdown_rx));
        tracing::info!(%addr, role = ?cfg.role, "corridor listening");
        Ok(Application {
            addr,
            store,
            bootstrap: boot,
            shutdown,
            server,
            engine,
            worker_loop,
        })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Keys created by this start, if it was the first against the database.
    pub fn bootstrap(&self) -> Option<&Bootstrap> {
        self.bootstrap.as_ref()
    }

    /// The store (tests inspect invariants through it).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs every job due now, once each (and those they make due at once), without
    /// waiting on timers; returns how many ran. For tests and tools driving a node whose
    /// worker loop is off (`CORRIDOR_WORKERS=0`).
    pub async fn run_due_jobs(&self, limit: usize) -> Result<usize, crate::store::StoreError> {
        self.engine.run_due(limit).await
    }

    /// Asks everything to stop: the server stops accepting and drains, workers finish their
    /// current jobs and hand back leases.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Waits until the server and workers have stopped, then closes the database.
    pub async fn wait(self) {
        let _ = self.server.await;
        if let Some(e) = self.worker_loop {
            let _ = e.await;
        }
        self.store.close().await;
    }
}
