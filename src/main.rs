//! The `siaga` binary: `siaga run` starts the service, `siaga check-config` validates a
//! configuration. Exit codes: 0 success, 1 start-up failure (e.g. the address is in use),
//! 2 invalid configuration.

use clap::{Parser, Subcommand};
use rand::SeedableRng;
use rand::rngs::StdRng;
use siaga::config::{self, Config};
use siaga::engine::Engine;
use siaga::runtime;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// Backend of a city's 112 emergency call centre.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start siaga (stops gracefully on SIGINT or SIGTERM).
    Run {
        /// The configuration file.
        #[arg(long, value_name = "PATH", default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Validate a configuration (with the environment's overrides) and exit: 0 if valid,
    /// 2 if not, naming the key and the problem.
    CheckConfig {
        /// The configuration file.
        #[arg(long, value_name = "PATH", default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
}

/// Exit code for an invalid configuration.
const EXIT_BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => match load(&config) {
            Ok(c) => {
                println!("config OK: {}", c.summary());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run { config } => match load(&config) {
            Ok(c) => run(&c),
            Err(code) => code,
        },
    }
}

/// Loads the configuration, or prints the error naming key and problem and returns exit
/// code 2.
fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|error| {
        match error {
            config::ConfigError::Read { .. } => eprintln!("config error: {error}"),
            _ => eprintln!("config error: {error}\n  (config file: {})", path.display()),
        }
        ExitCode::from(EXIT_BAD_CONFIG)
    })
}

fn run(config: &Config) -> ExitCode {
    init_logging(&config.log.level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the tokio runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let sockets = match runtime::bind(config).await {
            Ok(sockets) => sockets,
            Err(error) => {
                tracing::error!(%error, listen = %config.sip.listen, "cannot bind sip.listen");
                return ExitCode::FAILURE;
            }
        };
        tracing::debug!(config = %config.summary(), "configuration");
        warn_about(config);
        siaga::engine::call::set_show_personal_data(config.log.show_personal_data);
        let engine = Engine::new(config.engine_config(), StdRng::from_os_rng());
        let options = runtime::RunOptions::from_config(config);
        match runtime::run(sockets, engine, options, runtime::shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "siaga failed");
                ExitCode::FAILURE
            }
        }
    })
}

/// Start-up warnings about settings that work but should not stay as they are.
fn warn_about(config: &Config) {
    let plain = config.operators_with_plain_passwords();
    if !plain.is_empty() {
        tracing::warn!(
            operators = %plain.join(", "),
            "operators configured with a plain password: prefer operators[].ha1 (see config/siaga.toml)"
        );
    }
    if config.operators.is_empty() {
        tracing::warn!("no [[operators]] configured: emergency calls will wait in the queue");
    }
    if config.trunk.other_sources == config::OtherSources::Accept {
        tracing::warn!("trunk.other_sources = \"accept\": emergency calls are taken from any source");
    }
    if config.log.show_personal_data {
        tracing::warn!("log.show_personal_data = true: caller numbers are logged in full");
    }
}

/// Logs to stderr, filtered by `RUST_LOG` when set, else by `log.level` (already
/// validated).
fn init_logging(level: &str) {
    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(error) => {
            if std::env::var_os(EnvFilter::DEFAULT_ENV).is_some() {
                eprintln!("RUST_LOG ignored ({error}); using log.level {level:?}");
            }
            EnvFilter::builder()
                .parse(level)
                .unwrap_or_else(|_| EnvFilter::new("info"))
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
