//! The `corridor` command: `serve`, `migrate`, `merchant create`, `bench`, `sim-provider`.

use secrecy::ExposeSecret;
use std::error::Error as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use corridor::app::Application;
use corridor::clock::{Clock, SystemClock};
use corridor::config::{self, Config, LogFormat};
use corridor::store::{PoolConfig, Store};

/// Corridor: cross-border payments on stablecoin rails.
#[derive(Debug, Parser)]
#[command(name = "corridor", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API and run the workers (embedded SQLite by default).
    Serve(Box<Config>),
    /// Apply database migrations and exit.
    Migrate {
        /// Database to migrate.
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite://corridor.db")]
        database_url: String,
    },
    /// Manage merchants.
    Merchant {
        #[command(subcommand)]
        action: MerchantAction,
    },
    /// Load-test a running Corridor and print latency and throughput figures.
    Bench(corridor::bench::BenchArgs),
    /// Serve a trivial axum JSON POST endpoint: the machine's ceiling, measured beside
    /// Corridor by `scripts/bench` so results are ratios, not noisy absolutes.
    Ceiling {
        /// Address to serve on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: std::net::SocketAddr,
    },
    /// Serve the simulated onramp and offramp over the provider protocol, in their own
    /// process and database (point `CORRIDOR_ONRAMP_URL`/`CORRIDOR_OFFRAMP_URL` at it).
    SimProvider(corridor::providers::sim_server::SimProviderArgs),
    /// Run the whole engine under a deterministic simulation (simulated time, providers,
    /// crashes) and check its invariants; the same seed replays the same run.
    Simulate(corridor::simulation::SimulateArgs),
    /// Run as one of the serverless functions on AWS Lambda (API Gateway, SQS worker,
    /// scheduled sweeper); see deploy/aws/.
    #[cfg(feature = "aws")]
    Lambda(Box<corridor::aws::lambda::LambdaArgs>),
}

#[derive(Debug, Subcommand)]
enum MerchantAction {
    /// Create a merchant and print its API key once.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Database to write to.
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite://corridor.db")]
        database_url: String,
    },
}

fn main() -> ExitCode {
    let corridors = match config::load_files() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("corridor: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::try_parse_from(arguments()) {
        Ok(cli) => cli,
        Err(e) => return config_error(e),
    };
    if let Command::Simulate(args) = &cli.command {
        return simulate(args);
    }
    corridor::tls::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("corridor: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(mut cfg) => {
                cfg.corridors = corridors;
                serve(*cfg).await
            }
            Command::Migrate { database_url } => {
                corridor::telemetry::init("info", LogFormat::Text);
                let store = Store::connect(&database_url, PoolConfig::default()).await?;
                store.migrate().await?;
                println!("migrations applied");
                Ok(())
            }
            Command::Merchant {
                action: MerchantAction::Create { name, database_url },
            } => {
                let store = open_existing(&database_url).await?;
                let m = corridor::service::operators::create_merchant(
                    &store,
                    SystemClock::new().now(),
                    &name,
                    "cli",
                )
                .await?;
                println!(
                    "merchant_id: {}\napi_key: {}\ndatabase: {}",
                    m.merchant_id,
                    m.api_key.expose_secret(),
                    describe(&database_url)
                );
                Ok(())
            }
            Command::Bench(args) => corridor::bench::run(args).await,
            Command::Ceiling { listen } => corridor::bench::ceiling(listen).await,
            Command::SimProvider(args) => sim_provider(args).await,
            Command::Simulate(_) => unreachable!("run before the runtime is built"),
            #[cfg(feature = "aws")]
            Command::Lambda(mut args) => {
                args.config.corridors = corridors;
                corridor::aws::lambda::run(*args)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corridor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The command line, or — in a Lambda custom runtime, which starts the binary as `bootstrap`
/// with no arguments and the function's handler setting in `_HANDLER` — `corridor lambda
/// <handler>`, so one zip serves the three functions (their handlers: api, worker, sweeper).
fn arguments() -> Vec<std::ffi::OsString> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if cfg!(feature = "aws")
        && args.len() == 1
        && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
        && let Some(handler) = std::env::var_os("_HANDLER")
    {
        return vec!["corridor".into(), "lambda".into(), handler];
    }
    args
}

/// `corridor simulate`: runs each seed on its own single-threaded runtime (so nothing but
/// the seed decides), prints its summary, and exits 1 at the first seed that breaks an
/// invariant.
fn simulate(args: &corridor::simulation::SimulateArgs) -> ExitCode {
    if let Err(e) = args.validate() {
        eprintln!("corridor simulate: {e}");
        return ExitCode::from(2);
    }
    let first = args.options.seed;
    for seed in first..first.saturating_add(args.seeds) {
        match corridor::simulation::run(args.options(seed)) {
            Ok(summary) => {
                println!("{summary}");
                if !summary.passed() {
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("corridor simulate: seed {seed}: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// Prints a command-line or environment error naming the environment variable behind the
/// flag, since most deployments set `CORRIDOR_*` variables rather than flags.
fn config_error(e: clap::Error) -> ExitCode {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        e.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        // Help, version and usage errors keep clap's own output and exit code.
        e.exit();
    }
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(a)) => a.split_whitespace().next().unwrap_or_default().to_owned(),
        _ => String::new(),
    };
    let cmd = Cli::command();
    let env = cmd
        .get_subcommands()
        .flat_map(|sc| sc.get_arguments())
        .find(|a| a.get_long().is_some_and(|l| format!("--{l}") == arg))
        .and_then(|a| a.get_env())
        .map(|v| v.to_string_lossy().into_owned());
    let reason = e
        .source()
        .map(ToString::to_string)
        .unwrap_or_else(|| e.kind().to_string());
    match env {
        Some(var) => eprintln!("corridor: invalid {var} ({arg}): {reason}"),
        None => eprintln!("corridor: invalid {arg}: {reason}"),
    }
    ExitCode::from(2)
}

/// The SQLite file a `sqlite:` URL names, absolute.
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    let path = std::path::Path::new(path);
    Some(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()))
}

/// The database a URL names, for messages (a PostgreSQL URL without its password).
fn describe(url: &str) -> String {
    match sqlite_path(url) {
        Some(p) => p.display().to_string(),
        None => match url.split_once('@') {
            Some((_, host)) => format!("postgres://…@{host}"),
            None => url.to_owned(),
        },
    }
}

/// Opens a database an administrative command works on: it must exist and have been
/// started once (an admin command never creates one — a key written to a new, empty file in
/// the wrong directory would be a key the running server has never heard of).
async fn open_existing(url: &str) -> anyhow::Result<Store> {
    if let Some(path) = sqlite_path(url)
        && !path.exists()
    {
        anyhow::bail!(
            "no Corridor database at {}: run this where `corridor serve` keeps its database, or pass --database-url (DATABASE_URL)",
            path.display()
        );
    }
    let store = Store::connect(url, PoolConfig::default()).await?;
    if !corridor::store::settings::get(&store, "bootstrapped_at")
        .await
        .is_ok_and(|v| v.is_some())
    {
        anyhow::bail!(
            "{} is not a Corridor database that has been started: start `corridor serve` on it first",
            describe(url)
        );
    }
    store.migrate().await?;
    Ok(store)
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    corridor::telemetry::init(&cfg.log, cfg.log_format);
    if let Err(e) = cfg.validate() {
        anyhow::bail!("invalid configuration: {e}");
    }
    // The engine's random choices come from one seed, drawn here from the OS.
    let app = Application::start(cfg, SystemClock::new(), rand::random()).await?;
    if let Some(b) = app.bootstrap() {
        // Keys go to standard output once, never through the log.
        println!("Corridor first start: keys are shown once, store them now.");
        if let Some(admin) = &b.admin_key {
            println!("  admin key:          {}", admin.expose_secret());
        }
        if let Some(key) = &b.merchant_key {
            println!("  demo merchant:      {}", b.merchant_id);
            println!("  demo merchant key:  {}", key.expose_secret());
        }
    }
    println!("Corridor listening on http://{}", app.addr());
    shutdown_signal().await;
    tracing::info!("shutting down: draining requests and jobs");
    app.stop();
    app.wait().await;
    Ok(())
}

async fn sim_provider(
    args: corridor::providers::sim_server::SimProviderArgs,
) -> anyhow::Result<()> {
    corridor::telemetry::init(&args.log, LogFormat::Text);
    let sim = corridor::providers::sim_server::SimProvider::start(args).await?;
    // Tests and scripts read the address from this line (port 0 picks a free one).
    println!("sim-provider listening on http://{}", sim.addr());
    shutdown_signal().await;
    sim.stop();
    sim.wait().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
