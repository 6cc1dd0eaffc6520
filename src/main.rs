//! The `siaga` binary: `siaga run` starts the service, `siaga check-config` validates a
//! configuration, `siaga migrate` creates or updates the database's tables, `siaga calls`
//! searches the call log, `siaga export` writes it as CSV, `siaga stats` prints a
//! period's statistics, `siaga agents` the operators' state changes, `siaga hash-password`
//! an API password's argon2id hash. Exit codes: 0 success,
//! 1 failure (the address is in use, no database yet …), 2 invalid configuration or
//! arguments (clap's, and the values the HTTP API refuses too: a `--limit` outside
//! 1–1000, a time not understood, a period whose end is not after its start; checked by
//! [`store::parse_limit`], [`store::parse_time`], [`store::check_period`]).

use clap::{Parser, Subcommand};
use rand::SeedableRng;
use rand::rngs::StdRng;
use siaga::config::{self, Config};
use siaga::engine::Engine;
use siaga::engine::UtcTime;
use siaga::runtime;
use siaga::store::{self, Store};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;
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
    /// Create or update the configured database's tables (`database.url`, or
    /// SIAGA_DATABASE_URL; SQLite or PostgreSQL) and print each migration applied.
    /// `siaga run` does the same at start; this is for deploying before the nodes start.
    Migrate {
        /// The configuration file.
        #[arg(long, value_name = "PATH", default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Print the call log from the configured database (`database.url`, or
    /// SIAGA_DATABASE_URL), newest first, with each call's incident category and the
    /// agencies it was handed to. Reads only: a missing SQLite file is reported, not
    /// created. When more calls match than were printed, stderr says how to get the next
    /// page (`--after`).
    Calls {
        /// The configuration file.
        #[arg(long, value_name = "PATH", default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// How many calls to print: 1 to 1000 (as the API's `limit`).
        #[arg(long, value_name = "N", default_value = "20")]
        limit: String,
        /// Only calls received at or after TIME: a UTC time (2026-11-29T12:00:00Z,
        /// 2026-11-29 12:00, 2026-11-29), a duration back from now (90m, 2h, 1day), or
        /// `now`.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only calls received before TIME (as --since; after --since when both are given).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        #[command(flatten)]
        filter: FilterArgs,
        /// Start after this call: the cursor the previous page named.
        #[arg(long, value_name = "CURSOR")]
        after: Option<String>,
        /// Print a JSON array of objects keyed by the `calls` columns (times RFC 3339 UTC),
        /// plus incident_id, category, subcategory and agencies, instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write the call log of a period as CSV (a header line, then one line per call,
    /// newest first), to stdout or a file. Reads only, like `calls`.
    Export {
        /// The configuration file.
        #[arg(long, value_name = "PATH", default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// Calls received at or after TIME (as `calls --since`).
        #[arg(long, value_name = "TIME")]
        from: String,
        /// Calls received before TIME (as `calls --since`; after --from).
        #[arg(long, value_name = "TIME", default_value = "now")]
        to: String,
        #[command(flatten)]
        filter: FilterArgs,
        /// Write to FILE (created or replaced) instead of stdout.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print the statistics of the calls received in a period: by category, disposition,
    /// agency and hour (UTC); answered within 10, 15 and 20 s; mean and 90th-percentile
    /// wait; abandoned share; calls and talk time per operator. Reads only, like `calls`.
    Stats {
        /// The configuration file.
        #[arg(long, value_name = "PATH", default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// Calls received at or after TIME (as `calls --since`); default 24 hours before
        /// --to (as the API's `GET /api/stats`).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Calls received before TIME (as `calls --since`; after --from).
        #[arg(long, value_name = "TIME", default_value = "now")]
        to: String,
        /// Print a JSON object instead of text (shares as fractions, durations in ms).
        #[arg(long)]
        json: bool,
    },
    /// Print the operators' state changes (ACD agent events: available, ringing, on call,
    /// wrap-up, not ready with its reason, logged out) from the configured database,
    /// oldest first. Reads only, like `calls`.
    Agents {
        /// The configuration file.
        #[arg(long, value_name = "PATH", default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// Only this operator's (`operators[].id`).
        #[arg(long, value_name = "ID")]
        operator: Option<String>,
        /// Only changes at or after TIME: a UTC time (2026-11-29T12:00:00Z,
        /// 2026-11-29 12:00, 2026-11-29), a duration back from now (90m, 2h, 1day), or
        /// `now`.
        #[arg(long, value_name = "TIME", default_value = "1day")]
        since: String,
        /// Print a JSON array of objects keyed by the `agent_events` columns (times
        /// RFC 3339 UTC) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Read an HTTP API password from stdin (one line) and print its argon2id hash (PHC
    /// string) for `operators[].api_password_hash` or `users[].api_password_hash`.
    HashPassword,
}

/// The call-log filters `siaga calls` and `siaga export` share.
#[derive(Debug, clap::Args)]
struct FilterArgs {
    /// Only calls whose incident has this category (`categories[].id`).
    #[arg(long, value_name = "ID")]
    category: Option<String>,
    /// Only calls with this disposition (answered, abandoned_in_queue …).
    #[arg(long, value_name = "WORD")]
    disposition: Option<String>,
    /// Only calls answered by this operator (`operators[].id`).
    #[arg(long, value_name = "ID")]
    operator: Option<String>,
    /// Only calls from this number, as recorded (+6281234567890).
    #[arg(long, value_name = "NUMBER")]
    caller: Option<String>,
    /// Only calls whose incident was handed off to this agency (`agencies[].id`).
    #[arg(long, value_name = "ID")]
    agency: Option<String>,
    /// Only calls whose incident's notes contain TEXT (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    text: Option<String>,
}

impl FilterArgs {
    /// The store's filter for calls received in [`from`, `to`), each flag checked as the
    /// API checks its query parameter (`siaga::api::call_log::parse_filter`): a category,
    /// agency or disposition that is not configured or recorded, an empty value, a text
    /// over 200 characters.
    ///
    /// Errors: [`Failure::Usage`] naming the flag (and the values allowed).
    fn filter(
        self,
        incidents: &config::IncidentsConfig,
        from: Option<UtcTime>,
        to: Option<UtcTime>,
    ) -> Result<store::CallFilter, Failure> {
        let mut params: std::collections::BTreeMap<String, String> = [
            ("category", self.category),
            ("disposition", self.disposition),
            ("operator", self.operator),
            ("caller", self.caller),
            ("agency", self.agency),
            ("text", self.text),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key.to_owned(), value?)))
        .collect();
        let filter =
            siaga::api::call_log::parse_filter(incidents, &mut params, &[]).map_err(|error| {
                Failure::Usage(match error {
                    siaga::api::error::ApiError::Invalid {
                        field,
                        problem,
                        allowed,
                    } if allowed.is_empty() => format!("--{field} {problem}"),
                    siaga::api::error::ApiError::Invalid {
                        field,
                        problem,
                        allowed,
                    } => format!("--{field} {problem}; allowed: {}", allowed.join(", ")),
                    siaga::api::error::ApiError::Input(input) => {
                        format!("--{} {input}", input.field())
                    }
                    other => other.to_string(),
                })
            })?;
        Ok(store::CallFilter { from, to, ..filter })
    }
}

/// Exit code for an invalid configuration or invalid arguments (as clap's).
const EXIT_BAD_CONFIG: u8 = 2;

/// Why a command failed: its arguments (exit 2, as clap's errors) or its work (exit 1).
/// Both are one-line messages.
#[derive(Debug)]
enum Failure {
    /// An argument refused, named with the problem (`--limit "0" is not …`).
    Usage(String),
    /// The command could not do its work (no database, a write failed …).
    Run(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Run(message)
    }
}

/// A time argument (`--since`, `--until`, `--from`, `--to`) as [`store::parse_time`]
/// reads it, relative to `now`.
///
/// Errors: [`Failure::Usage`] naming `flag`.
fn time_arg(flag: &str, text: &str, now: UtcTime) -> Result<UtcTime, Failure> {
    store::parse_time(text, now).map_err(|error| Failure::Usage(format!("{flag} {error}")))
}

/// Checks a period given by `start` and `end` flags ([`store::check_period`]).
///
/// Errors: [`Failure::Usage`] naming `end`.
fn period_arg(
    (start, from): (&'static str, Option<UtcTime>),
    (end, to): (&str, Option<UtcTime>),
) -> Result<(), Failure> {
    store::check_period(from, to, start).map_err(|error| Failure::Usage(format!("{end} {error}")))
}

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
        Command::Migrate { config } => match load(&config) {
            Ok(c) => report("migrate", migrate(&c)),
            Err(code) => code,
        },
        Command::Calls {
            config,
            limit,
            since,
            until,
            filter,
            after,
            json,
        } => match load(&config) {
            Ok(c) => {
                let page = CallsPage {
                    limit: &limit,
                    since: since.as_deref(),
                    until: until.as_deref(),
                    after: after.as_deref(),
                    json,
                };
                report("calls", calls(&c, filter, page))
            }
            Err(code) => code,
        },
        Command::Export {
            config,
            from,
            to,
            filter,
            output,
        } => match load(&config) {
            Ok(c) => report("export", export(&c, &from, &to, filter, output.as_deref())),
            Err(code) => code,
        },
        Command::Stats {
            config,
            from,
            to,
            json,
        } => match load(&config) {
            Ok(c) => report("stats", stats(&c, from.as_deref(), &to, json)),
            Err(code) => code,
        },
        Command::Agents {
            config,
            operator,
            since,
            json,
        } => match load(&config) {
            Ok(c) => report("agents", agents(&c, operator.as_deref(), &since, json)),
            Err(code) => code,
        },
        Command::HashPassword => report("hash-password", hash_password()),
    }
}

/// `siaga hash-password`: the first line of stdin (without its line end) hashed.
fn hash_password() -> Result<(), String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|error| format!("cannot read stdin: {error}"))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err("the password is empty (give it on stdin)".to_owned());
    }
    print(&format!("{}\n", siaga::api::auth::hash_password(password)))
}

/// The exit code of a command, printing its one-line error: 2 for an argument refused, 1
/// for a failure.
fn report(command: &str, result: Result<(), impl Into<Failure>>) -> ExitCode {
    match result.map_err(Into::into) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("siaga {command}: {message}");
            ExitCode::from(EXIT_BAD_CONFIG)
        }
        Err(Failure::Run(message)) => {
            eprintln!("siaga {command}: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `siaga migrate`: opens (creating) the configured database, applies the migrations it
/// lacks and prints one line per migration applied, or that it was up to date. Errors are
/// one-line messages.
fn migrate(config: &Config) -> Result<(), String> {
    let url = &config.database.url;
    let ran = block_on(async {
        let store = Store::open_unmigrated(url).await?;
        let ran = store.migrate().await;
        store.close().await;
        ran
    })?;
    let mut text = String::new();
    for m in &ran {
        text.push_str(&format!("applied {:04} {}\n", m.version, m.description));
    }
    text.push_str(&match ran.len() {
        0 => format!("{url}: up to date, no migration to apply\n"),
        n => format!("{url}: {n} migration(s) applied\n"),
    });
    print(&text)
}

/// `siaga calls`' paging and output options.
struct CallsPage<'a> {
    limit: &'a str,
    since: Option<&'a str>,
    until: Option<&'a str>,
    after: Option<&'a str>,
    json: bool,
}

/// `siaga calls`: prints up to `limit` calls matching the filters, as a table or JSON, and
/// on stderr the cursor of the next page when there may be one. Errors are one-line
/// messages.
fn calls(config: &Config, filter: FilterArgs, page: CallsPage<'_>) -> Result<(), Failure> {
    let now = wall_clock();
    let limit = store::parse_limit(page.limit)
        .map_err(|error| Failure::Usage(format!("--limit {error}")))?;
    let since = page
        .since
        .map(|t| time_arg("--since", t, now))
        .transpose()?;
    let until = page
        .until
        .map(|t| time_arg("--until", t, now))
        .transpose()?;
    period_arg(("--since", since), ("--until", until))?;
    let after = page
        .after
        .map(|c| {
            c.parse::<store::Cursor>()
                .map_err(|e| Failure::Usage(format!("--after {e}")))
        })
        .transpose()?;
    let filter = filter.filter(&config.incidents, since, until)?;
    let narrowed = store::CallFilter {
        from: None,
        ..filter.clone()
    } != store::CallFilter::default();
    let found = read(config, |store| async move {
        store.search_calls(&filter, after, limit).await
    })?;
    let rows = &found.calls;
    let text = if page.json {
        json_text(rows)?
    } else if rows.is_empty() {
        match since {
            _ if narrowed || after.is_some() => "no calls match\n".to_owned(),
            Some(since) => format!("no calls since {}\n", store::rfc3339_millis(since)),
            None => "no calls recorded\n".to_owned(),
        }
    } else {
        store::call_log_table(rows)
    };
    print(&text)?;
    if let Some(next) = found.next {
        eprintln!("more calls may match: add --after {next}");
    }
    Ok(())
}

/// `siaga export`: writes the calls received in [`from`, `to`) matching the filters as
/// CSV to `output` (created or replaced) or stdout. Errors are one-line messages.
fn export(
    config: &Config,
    from: &str,
    to: &str,
    filter: FilterArgs,
    output: Option<&Path>,
) -> Result<(), Failure> {
    let now = wall_clock();
    let from = time_arg("--from", from, now)?;
    let to = time_arg("--to", to, now)?;
    period_arg(("--from", Some(from)), ("--to", Some(to)))?;
    let filter = filter.filter(&config.incidents, Some(from), Some(to))?;
    let result = read(config, |store| async move {
        let written = match output {
            Some(path) => match std::fs::File::create(path) {
                Ok(file) => store::export_csv(&store, &filter, std::io::BufWriter::new(file)).await,
                Err(error) => {
                    return Ok(Err(format!("cannot create {}: {error}", path.display())));
                }
            },
            None => store::export_csv(&store, &filter, std::io::stdout().lock()).await,
        };
        match written {
            Ok(n) => Ok(Ok(n)),
            Err(store::ExportError::Store(error)) => Err(error),
            Err(error @ store::ExportError::Write(_)) => Ok(Err(error.to_string())),
        }
    })?;
    match result {
        Ok(_) => Ok(()),
        // `siaga export | head` closed the pipe: not an error.
        Err(message) if output.is_none() && message.contains("Broken pipe") => Ok(()),
        Err(message) => Err(Failure::Run(message)),
    }
}

/// `siaga stats`: prints the statistics of [`from`, `to`) as text or JSON; without `from`,
/// of the 24 hours before `to` (as `GET /api/stats`). Errors are one-line messages.
fn stats(config: &Config, from: Option<&str>, to: &str, json: bool) -> Result<(), Failure> {
    let now = wall_clock();
    let to = time_arg("--to", to, now)?;
    let from = match from {
        Some(from) => time_arg("--from", from, now)?,
        None => UtcTime(to.0.saturating_sub(siaga::api::stats::DEFAULT_PERIOD_MS)),
    };
    period_arg(("--from", Some(from)), ("--to", Some(to)))?;
    let stats = read(
        config,
        |store| async move { store.statistics(from, to).await },
    )?;
    let text = if json {
        json_text(&stats)?
    } else {
        stats.report()
    };
    Ok(print(&text)?)
}

/// `siaga agents`: prints the agent events since `since` (of `operator` only, when given),
/// oldest first, as a table or JSON. Errors are one-line messages.
fn agents(config: &Config, operator: Option<&str>, since: &str, json: bool) -> Result<(), Failure> {
    let since = time_arg("--since", since, wall_clock())?;
    let rows = read(config, |store| async move {
        store.agent_events(operator, since, UtcTime(i64::MAX)).await
    })?;
    let text = if json {
        json_text(&rows)?
    } else if rows.is_empty() {
        let whose = operator.map(|o| format!(" of {o}")).unwrap_or_default();
        format!(
            "no agent events{whose} since {}\n",
            store::rfc3339_millis(since)
        )
    } else {
        store::agents_table(&rows)
    };
    Ok(print(&text)?)
}

/// The wall clock, UTC.
fn wall_clock() -> UtcTime {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    UtcTime(now)
}

/// Runs `future` on a runtime of its own; its error as a one-line message.
fn block_on<T>(future: impl Future<Output = Result<T, store::StoreError>>) -> Result<T, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the tokio runtime: {error}"))?;
    runtime.block_on(future).map_err(|error| error.to_string())
}

/// Runs `query` against the configured database, opened to read only (a missing SQLite
/// file is an error, not created).
fn read<T, F, Fut>(config: &Config, query: F) -> Result<T, String>
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = Result<T, store::StoreError>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the tokio runtime: {error}"))?;
    let result = runtime.block_on(async {
        let store = Store::open_existing(&config.database.url).await?;
        let result = query(store.clone()).await;
        store.close().await;
        result
    });
    result.map_err(|error| error.to_string())
}

/// `rows` as pretty JSON with a final newline.
fn json_text(rows: &impl serde::Serialize) -> Result<String, String> {
    let mut text = serde_json::to_string_pretty(rows)
        .map_err(|error| format!("cannot write JSON: {error}"))?;
    text.push('\n');
    Ok(text)
}

/// Writes `text` to stdout; a closed pipe (`siaga calls | head`) is not an error.
fn print(text: &str) -> Result<(), String> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write to stdout: {error}"))
        }
        _ => Ok(()),
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
        let journal = match &config.database.journal {
            Some(path) => match store::Journal::open(path).await {
                Ok(journal) => Some(journal),
                Err(error) => {
                    tracing::error!(%error, "cannot open the journal");
                    return ExitCode::FAILURE;
                }
            },
            None => None,
        };
        // The store is created and migrated before any call can arrive, unless PostgreSQL
        // does not answer and a journal keeps the records meanwhile: then siaga starts on
        // the journal and the writer migrates once the database answers.
        let store = match Store::open_or_defer(&config.database.url, journal.is_some()).await {
            Ok(store) => store,
            Err(error) if error.is_unreachable() && journal.is_none() => {
                tracing::error!(
                    %error,
                    "cannot open the call record database, and no database.journal is \
                     configured to keep call records until it answers"
                );
                return ExitCode::FAILURE;
            }
            Err(error) => {
                tracing::error!(%error, "cannot open the call record database");
                return ExitCode::FAILURE;
            }
        };
        // Start-up recovery (the previous process's journal, then its calls left open) is
        // the writer's first database action, whenever the database answers.
        let (start_up, caught_up) = store::StartUp::new(StdRng::from_os_rng());
        let options = store::WriterOptions {
            journal,
            start_up: Some(start_up),
            ..store::WriterOptions::default()
        };
        let (events, writer) =
            store::spawn_writer_with(store.clone(), config.node.id.to_string(), options);
        let engine = Engine::new(config.engine_config(), StdRng::from_os_rng());
        // The callback worklist as the log has it (RFC 7090), once the database answered
        // and the writer caught up; without it siaga still runs.
        let (link, requests) = siaga::api::link::EngineLink::new(siaga::api::link::REQUEST_QUEUE);
        tokio::spawn(runtime::restore_callbacks_later(
            caught_up,
            store.clone(),
            link.clone(),
            engine.config().calls.acd.callback_window,
        ));
        let http = match siaga::api::bind(config).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, listen = %config.http.listen, "cannot bind http.listen");
                return ExitCode::FAILURE;
            }
        };
        let mut options = runtime::RunOptions::from_config(config);
        options.events = Some(events);
        options.api = Some(siaga::api::Api::new(http, config, Some(store.clone())));
        options.link = Some((link, requests));
        let result = runtime::run(sockets, engine, options, runtime::shutdown_signal()).await;
        // The sink was closed by run(): the writer drains what is queued, then stops.
        let report = writer.shutdown().await;
        store.close().await;
        if report.unwritten > 0 {
            tracing::error!(
                unwritten = report.unwritten,
                "call and agent events could not be stored"
            );
        }
        tracing::info!(
            written = report.written,
            journaled = report.journaled,
            "call records flushed"
        );
        match result {
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
            "operators configured with a plain password: prefer operators[].ha1 (see config/siaga.toml); if these are the shipped demo operators (passwords demo-1001, demo-1002), replace them before any real use"
        );
    }
    if config.operators.is_empty() {
        tracing::warn!("no [[operators]] configured: emergency calls will wait in the queue");
    }
    if config.trunk.other_sources == config::OtherSources::Accept {
        tracing::warn!(
            "trunk.other_sources = \"accept\": emergency calls are taken from any source"
        );
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
