//! Tests of loading, validation and environment overrides.

use super::*;
use std::collections::HashMap;

const SHIPPED: &str = include_str!("../../config/siaga.toml");

const MINIMAL: &str = r#"
[node]
id = "n1"
[sip]
domains = ["Example.COM"]
[trunk]
sources = ["192.0.2.10"]
"#;

/// The smallest `[trunk]` table, for tests that write the whole file.
const TRUNK: &str = "[trunk]\nsources = [\"127.0.0.1\"]\n";

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, no_env)
}

fn load_env(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_toml(text, |k| map.get(k).cloned())
}

/// `MINIMAL` with `line` added to table `table`.
fn with(table: &str, line: &str) -> String {
    let header = format!("[{table}]\n");
    if MINIMAL.contains(&header) {
        MINIMAL.replace(&header, &format!("{header}{line}\n"))
    } else {
        format!("{MINIMAL}{header}{line}\n")
    }
}

fn err(text: &str) -> ConfigError {
    match load(text) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn shipped_config_parses_and_validates() {
    let c = load(SHIPPED).unwrap();
    assert_eq!(c.node.id.as_str(), "siaga-1");
    assert_eq!(c.sip.listen, "127.0.0.1:5060".parse().unwrap());
    assert_eq!(c.sip.advertise, None);
    assert_eq!(c.sip.domains, ["localhost"]);
    assert_eq!(c.sip.max_tcp_connections, 1024);
    assert_eq!(c.sip.max_tcp_connections_per_ip, 256);
    assert_eq!(c.sip.tcp_message_timeout, Duration::from_secs(32));
    assert_eq!(c.sip.tcp_idle_timeout, Some(Duration::from_secs(600)));
    assert_eq!(c.sip.timers.t1, Duration::from_millis(500));
    assert_eq!(c.sip.timers.t2, Duration::from_millis(4000));
    assert_eq!(c.sip.timers.t4, Duration::from_millis(5000));
    assert_eq!(
        c.media.rtp_ports,
        PortRange {
            low: 30000,
            high: 30999
        }
    );
    assert_eq!(c.database.url.kind(), DatabaseKind::Sqlite);
    assert_eq!(c.http.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.log.level, "info");
    assert!(!c.log.show_personal_data);
    assert!(c.env_overrides.is_empty());
}

#[test]
fn shipped_config_file_on_disk_matches() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_PATH);
    let c = Config::load(&path).unwrap();
    assert_eq!(c.node.id.as_str(), "siaga-1");
}

#[test]
fn defaults_fill_everything_but_node_id_domains_and_trunk_sources() {
    let c = load(MINIMAL).unwrap();
    let shipped = load(SHIPPED).unwrap();
    assert_eq!(c.sip.listen, shipped.sip.listen);
    assert_eq!(c.sip.timers, shipped.sip.timers);
    assert_eq!(c.sip.max_tcp_connections, shipped.sip.max_tcp_connections);
    assert_eq!(
        c.sip.max_tcp_connections_per_ip,
        shipped.sip.max_tcp_connections_per_ip
    );
    assert_eq!(c.sip.tcp_message_timeout, shipped.sip.tcp_message_timeout);
    assert_eq!(c.sip.tcp_idle_timeout, shipped.sip.tcp_idle_timeout);
    assert_eq!(c.media.rtp_ports, shipped.media.rtp_ports);
    assert_eq!(c.database.url, shipped.database.url);
    assert_eq!(c.http.listen, shipped.http.listen);
    assert_eq!(c.sip.domains, ["example.com"], "lower-cased");
}

#[test]
fn the_engine_gets_every_agency_and_its_transfer_uri() {
    let text = SHIPPED.replace(
        "name = \"Pemadam Kebakaran dan Penyelamatan (Damkar)\"\n",
        "name = \"Damkar\"\ntransfer_uri = \"sip:113@192.0.2.30\"\n",
    );
    let agencies = load(&text).unwrap().engine_config().calls.agencies;
    let ids: Vec<(&str, Option<&str>)> = agencies
        .iter()
        .map(|a| (a.id.as_str(), a.transfer_uri.as_deref()))
        .collect();
    assert_eq!(
        ids,
        [
            ("psc119", None),
            ("damkar", Some("sip:113@192.0.2.30")),
            ("bpbd", None),
            ("polri", None)
        ]
    );
}

#[test]
fn engine_config_from_listen_only() {
    let e = load(MINIMAL).unwrap().engine_config();
    assert_eq!(e.node_id, "n1");
    assert_eq!(e.domains, ["example.com"]);
    assert_eq!(e.local_addresses, ["127.0.0.1:5060".parse().unwrap()]);
    assert_eq!(
        (e.advertised_host.as_str(), e.advertised_port),
        ("127.0.0.1", 5060)
    );
    assert_eq!(e.timers.t1, Duration::from_millis(500));
    assert_eq!(e.timers.t2, Duration::from_millis(4000));
    assert_eq!(e.timers.t4, Duration::from_millis(5000));
}

#[test]
fn engine_config_with_advertised_ip_and_name() {
    let text = with(
        "sip",
        "listen = \"0.0.0.0:5070\"\nadvertise = \"203.0.113.10\"",
    );
    let e = load(&text).unwrap().engine_config();
    assert_eq!(
        (e.advertised_host.as_str(), e.advertised_port),
        ("203.0.113.10", 5070)
    );
    let expect: Vec<SocketAddr> = vec![
        "0.0.0.0:5070".parse().unwrap(),
        "203.0.113.10:5070".parse().unwrap(),
    ];
    assert_eq!(e.local_addresses, expect);

    let text = with("sip", "advertise = \"SIP.Example.org:5080\"");
    let e = load(&text).unwrap().engine_config();
    assert_eq!(
        (e.advertised_host.as_str(), e.advertised_port),
        ("sip.example.org", 5080)
    );
    assert_eq!(e.local_addresses, ["127.0.0.1:5060".parse().unwrap()]);

    let text = with(
        "sip",
        "listen = \"[::]:5060\"\nadvertise = \"[2001:db8::1]:5062\"",
    );
    let e = load(&text).unwrap().engine_config();
    assert_eq!(
        (e.advertised_host.as_str(), e.advertised_port),
        ("[2001:db8::1]", 5062)
    );
}

#[test]
fn syntax_error_gives_line_and_column() {
    let e = err("[node]\nid = \"x\"\n[sip\n");
    let ConfigError::Syntax { position, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(position.line, 3, "{e}");
    assert!(
        e.to_string().starts_with("TOML syntax error at line 3"),
        "{e}"
    );
}

#[test]
fn unknown_key_names_table_and_key() {
    let e = err(&with("sip", "lisen = \"127.0.0.1:5060\""));
    assert_eq!(e.key(), Some("sip.lisen"), "{e}");
    let msg = e.to_string();
    assert!(
        msg.starts_with("sip.lisen: unknown key (line 5, column 1)"),
        "{msg}"
    );
    assert!(msg.contains("`listen`"), "lists the expected keys: {msg}");

    let e = err(&with("sip.timers", "t3_ms = 1"));
    assert_eq!(e.key(), Some("sip.timers.t3_ms"), "{e}");

    let e = err(&format!("{MINIMAL}[sipp]\nx = 1\n"));
    assert_eq!(e.key(), Some("sipp"), "{e}");
}

#[test]
fn missing_required_keys_are_named() {
    let e = err("[node]\nid = \"a\"\n[sip]\nlisten = \"127.0.0.1:5060\"\n");
    assert!(
        matches!(&e, ConfigError::MissingKey { key } if key == "sip.domains"),
        "{e}"
    );
    assert_eq!(e.to_string(), "sip.domains: missing; this key is required");
    let e = err("[sip]\ndomains = [\"a\"]\n");
    assert_eq!(e.key(), Some("node"), "{e}");
    let e = err("[node]\n[sip]\ndomains = [\"a\"]\n");
    assert_eq!(e.key(), Some("node.id"), "{e}");
}

#[test]
fn wrong_type_names_key() {
    let e = err(&with("sip.timers", "t1_ms = \"500\""));
    assert!(matches!(e, ConfigError::WrongType { .. }), "{e:?}");
    assert_eq!(e.key(), Some("sip.timers.t1_ms"), "{e}");
    let e = err(&with("sip.timers", "t1_ms = -1"));
    assert_eq!(e.key(), Some("sip.timers.t1_ms"), "{e}");
    let e = err(&with("log", "show_personal_data = \"yes\""));
    assert_eq!(e.key(), Some("log.show_personal_data"), "{e}");
}

#[track_caller]
fn assert_invalid(text: &str, key: &str, problem: Problem) {
    let e = err(text);
    match &e {
        ConfigError::Invalid {
            origin, problem: p, ..
        } => {
            assert_eq!(origin.key(), key, "{e}");
            assert_eq!(p, &problem, "{e}");
        }
        other => panic!("expected Invalid for {key}, got {other:?}"),
    }
    assert!(e.to_string().starts_with(&format!("{key}: ")), "{e}");
}

#[test]
fn invalid_values_name_their_key() {
    let sip = |line: &str| with("sip", line);
    assert_invalid(
        &sip("listen = \"127.0.0.1:99999\""),
        "sip.listen",
        Problem::NotSocketAddr,
    );
    assert_invalid(
        &sip("listen = \"localhost:5060\""),
        "sip.listen",
        Problem::NotSocketAddr,
    );
    assert_invalid(
        &sip("listen = \"127.0.0.1:0\""),
        "sip.listen",
        Problem::PortZero,
    );
    assert_invalid(
        &sip("advertise = \"a b\""),
        "sip.advertise",
        Problem::NotHostPort,
    );
    assert_invalid(
        &sip("advertise = \"host:0\""),
        "sip.advertise",
        Problem::PortZero,
    );
    assert_invalid(
        &sip("advertise = \"0.0.0.0\""),
        "sip.advertise",
        Problem::Wildcard,
    );
    assert_invalid(
        &sip("max_tcp_connections = 0"),
        "sip.max_tcp_connections",
        Problem::TooSmall { min: 1 },
    );
    let domains = |d: &str| format!("[node]\nid = \"n\"\n[sip]\ndomains = {d}\n{TRUNK}");
    assert_invalid(&domains("[]"), "sip.domains", Problem::EmptyList);
    assert_invalid(
        &domains("[\"exa mple.com\"]"),
        "sip.domains",
        Problem::NotHost,
    );
    assert_invalid(
        &domains("[\"a.com\", \"-b.com\"]"),
        "sip.domains",
        Problem::NotHost,
    );
    assert_invalid(
        &domains("[\"a.com:5060\"]"),
        "sip.domains",
        Problem::NotHost,
    );
    assert_invalid(&domains("[\"1.2.3\"]"), "sip.domains", Problem::NotHost);
    assert_invalid(
        &domains("[\"a.com\", \"A.com\"]"),
        "sip.domains",
        Problem::Duplicate,
    );
    let timers = |line: &str| with("sip.timers", line);
    assert_invalid(
        &timers("t1_ms = 0"),
        "sip.timers.t1_ms",
        Problem::TooSmall { min: 1 },
    );
    assert_invalid(
        &timers("t1_ms = 600\nt2_ms = 500"),
        "sip.timers.t2_ms",
        Problem::BelowT1 { t1_ms: 600 },
    );
    assert_invalid(
        &timers("t4_ms = 0"),
        "sip.timers.t4_ms",
        Problem::TooSmall { min: 1 },
    );
    let node = |id: &str| format!("[node]\nid = \"{id}\"\n[sip]\ndomains = [\"a\"]\n{TRUNK}");
    assert_invalid(&node(""), "node.id", Problem::BadName);
    assert_invalid(&node("siaga 1"), "node.id", Problem::BadName);
    assert_invalid(&node(&"x".repeat(33)), "node.id", Problem::BadName);
    let media = |line: &str| with("media", line);
    assert_invalid(
        &media("rtp_ports = \"30000\""),
        "media.rtp_ports",
        Problem::NotPortRange,
    );
    assert_invalid(
        &media("rtp_ports = \"30001-30999\""),
        "media.rtp_ports",
        Problem::OddLowPort,
    );
    assert_invalid(
        &media("rtp_ports = \"31000-30000\""),
        "media.rtp_ports",
        Problem::PortRangeReversed,
    );
    assert_invalid(
        &media("rtp_ports = \"1000-2000\""),
        "media.rtp_ports",
        Problem::PortsOutOfRange,
    );
    assert_invalid(
        &media("rtp_ports = \"60000-70000\""),
        "media.rtp_ports",
        Problem::PortsOutOfRange,
    );
    assert_invalid(
        &media("rtp_ports = \"60000-99999999999999999999\""),
        "media.rtp_ports",
        Problem::PortsOutOfRange,
    );
    assert_invalid(
        &media("advertise = \"example.com\""),
        "media.advertise",
        Problem::NotIp,
    );
    let db = |url: &str| with("database", &format!("url = \"{url}\""));
    assert_invalid(&db("mysql://x/y"), "database.url", Problem::BadDatabaseUrl);
    assert_invalid(&db("sqlite://"), "database.url", Problem::BadDatabaseUrl);
    assert_invalid(
        &with("http", "listen = \"8080\""),
        "http.listen",
        Problem::NotSocketAddr,
    );
    let e = err(&with("log", "level = \"info,x=nonsense\""));
    assert_eq!(e.key(), Some("log.level"), "{e}");
}

#[test]
fn tcp_limits_are_validated_naming_their_key() {
    let sip = |lines: &str| with("sip", lines);
    assert_invalid(
        &sip("max_tcp_connections_per_ip = 0"),
        "sip.max_tcp_connections_per_ip",
        Problem::TooSmall { min: 1 },
    );
    assert_invalid(
        &sip("max_tcp_connections = 100\nmax_tcp_connections_per_ip = 101"),
        "sip.max_tcp_connections_per_ip",
        Problem::AboveKey {
            key: "sip.max_tcp_connections",
            max: 100,
        },
    );
    assert_invalid(
        &sip("max_tcp_connections_per_ip = 1025"),
        "sip.max_tcp_connections_per_ip",
        Problem::AboveKey {
            key: "sip.max_tcp_connections",
            max: 1024,
        },
    );
    assert_invalid(
        &sip("tcp_message_timeout_s = 0"),
        "sip.tcp_message_timeout_s",
        Problem::TooSmall { min: 1 },
    );
    let e = err(&sip(
        "max_tcp_connections = 8\nmax_tcp_connections_per_ip = 9",
    ));
    assert_eq!(
        e.to_string(),
        "sip.max_tcp_connections_per_ip: 9 must be at most sip.max_tcp_connections (8)"
    );
    let e = err(&sip("tcp_idle_timeout_s = -1"));
    assert_eq!(e.key(), Some("sip.tcp_idle_timeout_s"), "{e}");
    let e = err(&sip("tcp_message_timeout_s = \"32s\""));
    assert_eq!(e.key(), Some("sip.tcp_message_timeout_s"), "{e}");
    for line in ["tcp_connect_timeout_s = 0", "tcp_connect_timeout_s = 33"] {
        assert_invalid(
            &sip(line),
            "sip.tcp_connect_timeout_s",
            Problem::OutOfRange { min: 1, max: 32 },
        );
    }
}

#[test]
fn silence_timeout_is_off_at_0_else_5_to_3600_s() {
    let media = |line: &str| load(&with("media", line)).map(|c| c.media.silence_timeout);
    assert_eq!(
        load(SHIPPED).unwrap().media.silence_timeout,
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        load(MINIMAL).unwrap().media.silence_timeout,
        Some(Duration::from_secs(30)),
        "the default"
    );
    assert_eq!(media("silence_timeout_s = 0").unwrap(), None, "off");
    for s in [5, 3600] {
        assert_eq!(
            media(&format!("silence_timeout_s = {s}")).unwrap(),
            Some(Duration::from_secs(s))
        );
    }
    for line in ["silence_timeout_s = 4", "silence_timeout_s = 3601"] {
        assert_invalid(
            &with("media", line),
            "media.silence_timeout_s",
            Problem::OutOfRangeOrOff { min: 5, max: 3600 },
        );
    }
    let e = err(&with("media", "silence_timeout_s = 1"));
    assert_eq!(
        e.to_string(),
        "media.silence_timeout_s: 1 must be 0 (off) or from 5 to 3600"
    );
    let e = err(&with("media", "silence_timeout_s = -1"));
    assert_eq!(e.key(), Some("media.silence_timeout_s"), "{e}");
}

#[test]
fn tcp_limits_accepted_values() {
    let sip = |lines: &str| load(&with("sip", lines)).unwrap().sip;
    // Absent, the per-IP cap follows a lower global cap instead of failing validation.
    let s = sip("max_tcp_connections = 100");
    assert_eq!(s.max_tcp_connections_per_ip, 100);
    let s = sip("max_tcp_connections = 1\nmax_tcp_connections_per_ip = 1");
    assert_eq!(
        (s.max_tcp_connections, s.max_tcp_connections_per_ip),
        (1, 1)
    );
    let s = sip("max_tcp_connections_per_ip = 1024");
    assert_eq!(s.max_tcp_connections_per_ip, 1024);
    let s = sip("tcp_message_timeout_s = 1\ntcp_idle_timeout_s = 0");
    assert_eq!(s.tcp_message_timeout, Duration::from_secs(1));
    assert_eq!(s.tcp_idle_timeout, None, "0 disables the idle timeout");
    let s = sip("tcp_idle_timeout_s = 90");
    assert_eq!(s.tcp_idle_timeout, Some(Duration::from_secs(90)));
    assert_eq!(s.tcp_connect_timeout, Duration::from_secs(5), "the default");
    let s = sip("tcp_connect_timeout_s = 32");
    assert_eq!(s.tcp_connect_timeout, Duration::from_secs(32));
}

#[test]
fn invalid_message_reads_well() {
    let e = err(&with("sip", "listen = \"127.0.0.1:99999\""));
    assert_eq!(
        e.to_string(),
        "sip.listen: \"127.0.0.1:99999\" is not an address:port (e.g. 127.0.0.1:5060 or [::1]:5060)"
    );
    let e = err(&with("sip.timers", "t1_ms = 0"));
    assert_eq!(e.to_string(), "sip.timers.t1_ms: 0 must be at least 1");
}

#[test]
fn wildcard_listen_requires_advertise() {
    for listen in ["0.0.0.0:5060", "[::]:5060"] {
        let e = err(&with("sip", &format!("listen = \"{listen}\"")));
        assert!(matches!(e, ConfigError::AdvertiseRequired { .. }), "{e:?}");
        assert_eq!(e.key(), Some("sip.advertise"));
        assert!(e.to_string().starts_with("sip.advertise: missing"), "{e}");
    }
}

#[test]
fn accepted_values() {
    let sip = |line: &str| load(&with("sip", line)).unwrap().sip;
    assert_eq!(
        sip("listen = \"[::1]:5060\"").listen,
        "[::1]:5060".parse().unwrap()
    );
    let adv = |s: &str| {
        sip(&format!("advertise = \"{s}\""))
            .advertise
            .unwrap()
            .to_string()
    };
    assert_eq!(adv("2001:DB8::1"), "[2001:db8::1]");
    assert_eq!(adv("[2001:db8::1]"), "[2001:db8::1]");
    assert_eq!(adv("Siaga.Example.ID"), "siaga.example.id");
    assert_eq!(adv("198.51.100.7:5080"), "198.51.100.7:5080");
    let domains = load(&format!("[node]\nid = \"n\"\n[sip]\ndomains = [\"112.Kota.go.id\", \"192.0.2.1\", \"::1\", \"[2001:db8::2]\"]\n{TRUNK}"))
        .unwrap()
        .sip
        .domains;
    assert_eq!(
        domains,
        ["112.kota.go.id", "192.0.2.1", "[::1]", "[2001:db8::2]"]
    );
    let db = |url: &str| {
        load(&with("database", &format!("url = \"{url}\"")))
            .unwrap()
            .database
            .url
    };
    assert_eq!(
        db("postgres://u:secret@db:5432/siaga").kind(),
        DatabaseKind::Postgres
    );
    assert_eq!(db("postgresql://db/siaga").kind(), DatabaseKind::Postgres);
    assert_eq!(db("sqlite::memory:").kind(), DatabaseKind::Sqlite);
    let r = load(&with("media", "rtp_ports = \"40000-40001\"")).unwrap();
    assert_eq!(r.media.rtp_ports.len(), 2);
}

#[test]
fn database_password_is_never_displayed() {
    let url =
        DatabaseUrl::parse("postgres://siaga:s3cret@db.local:5432/siaga?sslmode=require").unwrap();
    assert_eq!(
        url.to_string(),
        "postgres://siaga:***@db.local:5432/siaga?sslmode=require"
    );
    assert!(!format!("{url:?}").contains("s3cret"));
    assert_eq!(
        url.as_str(),
        "postgres://siaga:s3cret@db.local:5432/siaga?sslmode=require"
    );
    let c = load(&with("database", &format!("url = \"{}\"", url.as_str()))).unwrap();
    assert!(!c.summary().contains("s3cret"), "{}", c.summary());
    assert!(!format!("{c:?}").contains("s3cret"));
    let plain = DatabaseUrl::parse("postgres://siaga@db/siaga").unwrap();
    assert_eq!(plain.to_string(), "postgres://siaga@db/siaga");
}

#[test]
fn env_overrides_apply_after_the_file() {
    let c = load_env(
        SHIPPED,
        &[
            ("SIAGA_SIP_LISTEN", "127.0.0.1:5070"),
            ("SIAGA_RTP_PORTS", "40000-40999"),
            ("SIAGA_DATABASE_URL", "postgres://db/siaga"),
            ("SIAGA_HTTP_LISTEN", "127.0.0.1:9090"),
            ("SIAGA_UNRELATED", "x"),
        ],
    )
    .unwrap();
    assert_eq!(c.sip.listen, "127.0.0.1:5070".parse().unwrap());
    assert_eq!(
        c.media.rtp_ports,
        PortRange {
            low: 40000,
            high: 40999
        }
    );
    assert_eq!(c.database.url.kind(), DatabaseKind::Postgres);
    assert_eq!(c.http.listen, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(
        c.env_overrides,
        [
            "SIAGA_SIP_LISTEN",
            "SIAGA_RTP_PORTS",
            "SIAGA_DATABASE_URL",
            "SIAGA_HTTP_LISTEN"
        ]
    );
    assert_eq!(c.engine_config().advertised_port, 5070);
    assert!(c.summary().contains("SIAGA_SIP_LISTEN"));
}

#[test]
fn env_override_errors_name_the_variable() {
    let cases = [
        ("SIAGA_SIP_LISTEN", "127.0.0.1:99999", "sip.listen"),
        ("SIAGA_RTP_PORTS", "3-2", "media.rtp_ports"),
        ("SIAGA_DATABASE_URL", "mysql://x", "database.url"),
        ("SIAGA_HTTP_LISTEN", "", "http.listen"),
    ];
    for (var, value, key) in cases {
        let e = load_env(SHIPPED, &[(var, value)]).unwrap_err();
        let ConfigError::Invalid { origin, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*origin, Source::Env { var, key });
        assert!(
            e.to_string()
                .starts_with(&format!("{var} (overrides {key}): ")),
            "{e}"
        );
    }
}

#[test]
fn env_wildcard_listen_still_requires_advertise() {
    let e = load_env(SHIPPED, &[("SIAGA_SIP_LISTEN", "0.0.0.0:5060")]).unwrap_err();
    assert!(e.to_string().contains("SIAGA_SIP_LISTEN"), "{e}");
    assert_eq!(e.key(), Some("sip.advertise"));
}

#[test]
fn position_counts_lines_and_characters() {
    let text = "ab\ncdé\nf";
    assert_eq!(
        Position::of_offset(text, 0),
        Position { line: 1, column: 1 }
    );
    assert_eq!(
        Position::of_offset(text, 3),
        Position { line: 2, column: 1 }
    );
    assert_eq!(
        Position::of_offset(text, 8),
        Position { line: 3, column: 1 }
    );
    assert_eq!(
        Position::of_offset(text, 7),
        Position { line: 2, column: 4 }
    );
    assert_eq!(
        Position::of_offset(text, 99),
        Position { line: 3, column: 2 }
    );
}

#[test]
fn syntax_error_on_a_value_names_its_key() {
    let e = err("[node]\nid = \"x\"\n[sip.timers]\nt1_ms = 18446744073709551615\n");
    let ConfigError::Syntax { key, position, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(
        (key.as_deref(), position.line),
        (Some("sip.timers.t1_ms"), 4),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("sip.timers.t1_ms: TOML syntax error at line 4"),
        "{e}"
    );
}

#[test]
fn listeners_must_not_share_a_port() {
    let e = err(&with("http", "listen = \"127.0.0.1:5060\""));
    assert_eq!(e.key(), Some("http.listen"), "{e}");
    assert!(e.to_string().contains("clashes with sip.listen"), "{e}");
    let e = err(&with("media", "rtp_ports = \"5050-5099\""));
    assert_eq!(e.key(), Some("media.rtp_ports"), "{e}");
    let e = err(&with("media", "rtp_ports = \"30000-30000\""));
    assert!(e.to_string().contains("RTP/RTCP port pair"), "{e}");
    let e = err(&with("http", "listen = \"[::ffff:127.0.0.1]:5060\""));
    assert_eq!(e.key(), Some("http.listen"), "{e}");
    let e = load_env(
        &with("http", "listen = \"127.0.0.1:8080\""),
        &[("SIAGA_SIP_LISTEN", "127.0.0.1:8080")],
    )
    .expect_err("clash");
    assert!(e.to_string().contains("SIAGA_SIP_LISTEN"), "{e}");
    // Another address is no clash.
    assert!(load(&with("http", "listen = \"127.0.0.2:5060\"")).is_ok());
}

// ---- [trunk], [[operators]], [queue], [registrar] ---------------------------------------

/// `MINIMAL` with one `[[operators]]` table per entry of `tables` (each its lines).
fn with_operators(tables: &[&str]) -> String {
    let mut text = MINIMAL.to_owned();
    for lines in tables {
        text.push_str(&format!("[[operators]]\n{lines}\n"));
    }
    text
}

#[test]
fn shipped_config_defines_trunk_demo_operators_queue_and_registrar() {
    let c = load(SHIPPED).unwrap();
    assert_eq!(c.trunk.name, "trunk");
    let sources: Vec<String> = c.trunk.sources.iter().map(|n| n.to_string()).collect();
    assert_eq!(sources, ["127.0.0.0/8", "::1/128"]);
    assert_eq!(c.trunk.emergency_numbers, ["112"]);
    assert_eq!(c.trunk.other_sources, OtherSources::Reject);
    let ids: Vec<&str> = c.operators.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["1001", "1002"]);
    assert_eq!(
        c.operators[0].secret,
        OperatorSecret::Password("demo-1001".into())
    );
    assert_eq!(
        c.operators[1].secret,
        OperatorSecret::Password("demo-1002".into())
    );
    assert_eq!(c.operators[0].name.as_deref(), Some("Demo operator 1001"));
    assert_eq!(c.operators_with_plain_passwords(), ["1001", "1002"]);
    assert_eq!(
        c.queue,
        QueueConfig {
            ring_timeout: Duration::from_secs(15),
            reject_retry_delay: Duration::from_secs(5),
            ringing_refresh: Duration::from_secs(30),
        }
    );
    assert_eq!(
        c.registrar,
        RegistrarConfig {
            min_expires: Duration::from_secs(60),
            max_expires: Duration::from_secs(3600),
            default_expires: Duration::from_secs(3600),
            nonce_ttl: Duration::from_secs(300),
        }
    );
    assert_eq!(c.sip.realm(), "localhost");
    // The demo credentials are marked as such in the file.
    assert!(SHIPPED.contains("DEMO CREDENTIALS"));
    assert!(SHIPPED.contains("printf '%s' '1001:localhost:secret' | md5sum"));
}

#[test]
fn defaults_of_the_new_sections() {
    let c = load(MINIMAL).unwrap();
    let shipped = load(SHIPPED).unwrap();
    assert_eq!(c.trunk.name, "trunk");
    assert_eq!(c.trunk.emergency_numbers, ["112"]);
    assert_eq!(c.trunk.other_sources, OtherSources::Reject);
    assert!(c.operators.is_empty(), "zero operators is valid");
    assert!(c.operators_with_plain_passwords().is_empty());
    assert_eq!(c.queue, shipped.queue);
    assert_eq!(c.registrar, shipped.registrar);
}

#[test]
fn trunk_is_required_and_names_its_missing_key() {
    let e = err("[node]\nid = \"n\"\n[sip]\ndomains = [\"a\"]\n");
    assert!(
        matches!(&e, ConfigError::MissingKey { key } if key == "trunk"),
        "{e}"
    );
    let e = err("[node]\nid = \"n\"\n[sip]\ndomains = [\"a\"]\n[trunk]\nname = \"t\"\n");
    assert!(
        matches!(&e, ConfigError::MissingKey { key } if key == "trunk.sources"),
        "{e}"
    );
    let e = err(&with("trunk", "source = [\"::1\"]"));
    assert_eq!(e.key(), Some("trunk.source"), "{e}");
    let e = err(&with("trunk", "emergency_numbers = [112]"));
    assert!(matches!(e, ConfigError::WrongType { .. }), "{e:?}");
    assert!(
        e.key().unwrap().starts_with("trunk.emergency_numbers"),
        "{e}"
    );
}

#[test]
fn trunk_values_are_validated_naming_their_key() {
    let trunk =
        |lines: &str| format!("[node]\nid = \"n\"\n[sip]\ndomains = [\"a\"]\n[trunk]\n{lines}\n");
    let sources = |list: &str| trunk(&format!("sources = {list}"));
    assert_invalid(
        &trunk("sources = [\"::1\"]\nname = \"the trunk\""),
        "trunk.name",
        Problem::BadName,
    );
    assert_invalid(
        &sources("[\"localhost\"]"),
        "trunk.sources",
        Problem::NotIpNet,
    );
    assert_invalid(
        &sources("[\"10.0.0.0/33\"]"),
        "trunk.sources",
        Problem::NotIpNet,
    );
    assert_invalid(&sources("[\"[::1]\"]"), "trunk.sources", Problem::NotIpNet);
    assert_invalid(
        &sources("[\"127.0.0.1/8\"]"),
        "trunk.sources",
        Problem::HostBitsSet {
            network: "127.0.0.0/8".into(),
        },
    );
    assert_invalid(
        &sources("[\"2001:db8::1/32\"]"),
        "trunk.sources",
        Problem::HostBitsSet {
            network: "2001:db8::/32".into(),
        },
    );
    assert_invalid(
        &sources("[\"192.0.2.1\", \"192.0.2.1/32\"]"),
        "trunk.sources",
        Problem::Duplicate,
    );
    assert_invalid(&sources("[]"), "trunk.sources", Problem::NoTrunkSources);
    let numbers = |list: &str| trunk(&format!("sources = [\"::1\"]\nemergency_numbers = {list}"));
    assert_invalid(
        &numbers("[]"),
        "trunk.emergency_numbers",
        Problem::EmptyList,
    );
    for bad in ["", "+", "11 2", "*112", "112#", "++112", "sos"] {
        assert_invalid(
            &numbers(&format!("[\"{bad}\"]")),
            "trunk.emergency_numbers",
            Problem::BadEmergencyNumber,
        );
    }
    assert_invalid(
        &numbers(&format!("[\"{}\"]", "1".repeat(33))),
        "trunk.emergency_numbers",
        Problem::BadEmergencyNumber,
    );
    assert_invalid(
        &numbers("[\"112\", \"110\", \"112\"]"),
        "trunk.emergency_numbers",
        Problem::Duplicate,
    );
    for bad in ["Reject", "drop", ""] {
        assert_invalid(
            &trunk(&format!("sources = [\"::1\"]\nother_sources = \"{bad}\"")),
            "trunk.other_sources",
            Problem::NotOneOf {
                choices: OtherSources::CHOICES,
            },
        );
    }
    let e = err(&sources("[]"));
    assert_eq!(
        e.to_string(),
        "trunk.sources: [] is empty; list the trunk's addresses, or set \
         trunk.other_sources = \"accept\" to take emergency calls from any source"
    );
    let e = err(&trunk("sources = [\"::1\"]\nother_sources = \"drop\""));
    assert_eq!(
        e.to_string(),
        "trunk.other_sources: \"drop\" must be one of \"reject\", \"accept\""
    );
}

#[test]
fn trunk_accepted_values_and_matching() {
    let trunk = |lines: &str| {
        load(&format!(
            "[node]\nid = \"n\"\n[sip]\ndomains = [\"a\"]\n[trunk]\n{lines}\n"
        ))
        .unwrap()
        .trunk
    };
    let t = trunk(
        "name = \"telkom-1\"\nsources = [\"127.0.0.0/8\", \"::1\", \"198.51.100.7\", \
         \"2001:db8::/32\"]\nemergency_numbers = [\"112\", \"+62112\", \"110\"]",
    );
    assert_eq!(t.name, "telkom-1");
    for ip in [
        "127.0.0.1",
        "127.255.0.9",
        "::1",
        "::ffff:127.0.0.1",
        "198.51.100.7",
        "2001:db8:5::7",
    ] {
        assert!(t.is_trunk_source(ip.parse().unwrap()), "{ip}");
    }
    for ip in [
        "128.0.0.1",
        "198.51.100.8",
        "::2",
        "2001:db9::1",
        "10.0.0.1",
    ] {
        assert!(!t.is_trunk_source(ip.parse().unwrap()), "{ip}");
    }
    assert!(t.is_emergency_number("112"));
    assert!(t.is_emergency_number("+62112"));
    assert!(t.is_emergency_number("110"));
    assert!(!t.is_emergency_number("1120"));
    assert!(!t.is_emergency_number("62112"));
    // Without a trunk address, only "accept" makes sense.
    let t = trunk("sources = []\nother_sources = \"accept\"");
    assert!(t.sources.is_empty());
    assert_eq!(t.other_sources, OtherSources::Accept);
    assert!(!t.is_trunk_source("127.0.0.1".parse().unwrap()));
    let t = trunk("sources = [\"0.0.0.0/0\"]");
    assert!(t.is_trunk_source("203.0.113.1".parse().unwrap()));
    assert!(
        t.trust_domain.is_empty(),
        "the trust domain defaults to the trunk"
    );
}

#[test]
fn trunk_trust_domain_is_a_list_of_networks_given_to_the_engine() {
    let text = |list: &str| {
        format!(
            "[node]\nid = \"n\"\n[sip]\ndomains = [\"a\"]\n[trunk]\nsources = [\"::1\"]\ntrust_domain = {list}\n"
        )
    };
    let c = load(&text(
        "[\"10.20.0.0/16\", \"2001:db8:112::/48\", \"192.0.2.9\"]",
    ))
    .unwrap();
    let nets: Vec<String> = c.trunk.trust_domain.iter().map(|n| n.to_string()).collect();
    assert_eq!(nets, ["10.20.0.0/16", "2001:db8:112::/48", "192.0.2.9/32"]);
    let settings = c.engine_config().calls;
    assert_eq!(settings.trust_domain, c.trunk.trust_domain);
    assert!(settings.is_trusted("10.20.3.4".parse().unwrap()));
    assert!(
        settings.is_trusted("::1".parse().unwrap()),
        "the trunk is inside"
    );
    assert!(!settings.is_trusted("10.21.0.1".parse().unwrap()));
    assert_invalid(
        &text("[\"agency.example\"]"),
        "trunk.trust_domain",
        Problem::NotIpNet,
    );
    assert_invalid(
        &text("[\"10.0.0.1/8\"]"),
        "trunk.trust_domain",
        Problem::HostBitsSet {
            network: "10.0.0.0/8".into(),
        },
    );
    assert_invalid(
        &text("[\"192.0.2.9\", \"192.0.2.9/32\"]"),
        "trunk.trust_domain",
        Problem::Duplicate,
    );
}

#[test]
fn trunk_gateways_and_their_probing() {
    use crate::engine::Transport;
    let trunk = |lines: &str| format!("{MINIMAL}{lines}\n");
    let c = load(MINIMAL).unwrap();
    assert!(c.trunk.gateways.is_empty(), "no gateways by default");
    assert_eq!(c.trunk.options_interval, Duration::from_secs(30));
    assert_eq!(c.trunk.options_failures, 3);
    let c = load(&trunk(
        "gateways = [\"sip:192.0.2.10\", \"sip:192.0.2.10:5080;transport=TCP\", \
         \"sip:[2001:db8::1]:5062;transport=udp\"]\noptions_interval_s = 5\noptions_failures = 1",
    ))
    .unwrap();
    let seen: Vec<(String, Transport)> = c
        .trunk
        .gateways
        .iter()
        .map(|g| (g.address.to_string(), g.transport))
        .collect();
    assert_eq!(
        seen,
        [
            ("192.0.2.10:5060".to_owned(), Transport::Udp),
            ("192.0.2.10:5080".to_owned(), Transport::Tcp),
            ("[2001:db8::1]:5062".to_owned(), Transport::Udp),
        ]
    );
    assert_eq!(c.trunk.gateways[1].uri, "sip:192.0.2.10:5080;transport=TCP");
    let health = c.engine_config().calls.trunk_health;
    assert_eq!(health.gateways, c.trunk.gateways);
    assert_eq!(health.interval, Duration::from_secs(5));
    assert_eq!(health.failures_before_down, 1);
    for bad in [
        "192.0.2.10:5060",
        "sip:gw.example.com",
        "sips:192.0.2.10",
        "tel:+62112",
        "sip:0.0.0.0",
        "sip:192.0.2.10:0",
        "sip:192.0.2.10;transport=tls",
        "sip:192.0.2.10;transport",
        "sip:192.0.2.10?subject=x",
        "",
    ] {
        assert_invalid(
            &trunk(&format!("gateways = [\"{bad}\"]")),
            "trunk.gateways",
            Problem::BadGateway,
        );
    }
    assert_invalid(
        &trunk("gateways = [\"sip:192.0.2.10\", \"sip:gw@192.0.2.10:5060;transport=udp\"]"),
        "trunk.gateways",
        Problem::Duplicate,
    );
    for (line, key, min, max) in [
        (
            "options_interval_s = 0",
            "trunk.options_interval_s",
            1,
            3600,
        ),
        (
            "options_interval_s = 3601",
            "trunk.options_interval_s",
            1,
            3600,
        ),
        ("options_failures = 0", "trunk.options_failures", 1, 100),
        ("options_failures = 101", "trunk.options_failures", 1, 100),
    ] {
        assert_invalid(&trunk(line), key, Problem::OutOfRange { min, max });
    }
    let e = err(&trunk("gateways = [\"sbc.example.com\"]"));
    assert!(
        e.to_string()
            .starts_with("trunk.gateways: \"sbc.example.com\" is not a gateway URI"),
        "{e}"
    );
}

#[test]
fn operators_with_ha1_or_password() {
    let c = load(&with_operators(&[
        "id = \"1001\"\nname = \"Siti\"\nha1 = \"cf0429477e1c8b4a06769b7ac6ce4d07\"",
        "id = \"op.2_b-C\"\nha1 = \"CF0429477E1C8B4A06769B7AC6CE4D07\"",
        "id = \"1003\"\npassword = \"s3cret pass\"",
    ]))
    .unwrap();
    // printf '%s' '1001:localhost:secret' | md5sum
    let expected = [
        0xcf, 0x04, 0x29, 0x47, 0x7e, 0x1c, 0x8b, 0x4a, 0x06, 0x76, 0x9b, 0x7a, 0xc6, 0xce, 0x4d,
        0x07,
    ];
    assert_eq!(c.operators.len(), 3);
    assert_eq!(c.operators[0].id, "1001");
    assert_eq!(c.operators[0].name.as_deref(), Some("Siti"));
    assert_eq!(c.operators[0].secret, OperatorSecret::Ha1(expected));
    assert_eq!(c.operators[1].id, "op.2_b-C");
    assert_eq!(c.operators[1].name, None);
    assert_eq!(c.operators[1].secret, OperatorSecret::Ha1(expected));
    assert_eq!(
        c.operators[2].secret,
        OperatorSecret::Password("s3cret pass".into())
    );
    assert_eq!(c.operators_with_plain_passwords(), ["1003"]);
    assert!(c.summary().contains("3 operators"), "{}", c.summary());
}

#[test]
fn operator_secrets_are_never_displayed() {
    let c = load(SHIPPED).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("demo-100"), "{debug}");
    assert!(debug.contains("Password(***)"), "{debug}");
    assert!(!c.summary().contains("demo-100"), "{}", c.summary());
    let c = load(&with_operators(&[
        "id = \"a\"\nha1 = \"cf0429477e1c8b4a06769b7ac6ce4d07\"",
    ]))
    .unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("cf04"), "{debug}");
    assert!(debug.contains("Ha1(***)"), "{debug}");
    // A malformed ha1 is not echoed in the error either.
    let e = err(&with_operators(&[
        "id = \"a\"\nha1 = \"cf0429477e1c8b4a06769b7ac6ce4d0\"",
    ]));
    assert_eq!(
        e.to_string(),
        "operators[0].ha1: (31 characters, not shown) must be 32 hex digits: \
         MD5(id:realm:password), the realm being the first sip.domains entry"
    );
    assert!(!format!("{e:?}").contains("cf04"), "{e:?}");
}

#[test]
fn operator_values_are_validated_naming_the_entry() {
    let pw = "password = \"x\"";
    let one = |lines: &str| with_operators(&[lines]);
    assert_invalid(
        &one(&format!("id = \"\"\n{pw}")),
        "operators[0].id",
        Problem::BadName,
    );
    assert_invalid(
        &one(&format!("id = \"sip:1001\"\n{pw}")),
        "operators[0].id",
        Problem::BadName,
    );
    assert_invalid(
        &one(&format!("id = \"{}\"\n{pw}", "1".repeat(33))),
        "operators[0].id",
        Problem::BadName,
    );
    let three = with_operators(&[
        &format!("id = \"ana\"\n{pw}"),
        &format!("id = \"budi\"\n{pw}"),
        &format!("id = \"Ana\"\n{pw}"),
    ]);
    assert_invalid(
        &three,
        "operators[2].id",
        Problem::Repeats {
            key: "operators[0].id".into(),
        },
    );
    assert_eq!(
        err(&three).to_string(),
        "operators[2].id: \"Ana\" repeats operators[0].id"
    );
    for bad in [String::new(), "x".repeat(65), "a\tb".into(), "a\nb".into()] {
        let text = one(&format!("id = \"a\"\nname = {bad:?}\n{pw}"));
        assert_invalid(&text, "operators[0].name", Problem::BadDisplayName);
    }
    for bad in [
        "cf0429477e1c8b4a06769b7ac6ce4d0",
        "cf0429477e1c8b4a06769b7ac6ce4d077",
        "cf0429477e1c8b4a06769b7ac6ce4d0g",
        "",
    ] {
        assert_invalid(
            &one(&format!("id = \"a\"\nha1 = \"{bad}\"")),
            "operators[0].ha1",
            Problem::BadHa1,
        );
    }
    assert_invalid(
        &one("id = \"a\"\npassword = \"\""),
        "operators[0].password",
        Problem::EmptyPassword,
    );
    let name_ok = one(&format!("id = \"a\"\nname = \"{}\"\n{pw}", "é".repeat(64)));
    assert!(
        load(&name_ok).is_ok(),
        "64 characters, counted as characters"
    );
}

#[test]
fn an_operator_needs_exactly_one_secret() {
    let e = err(&with_operators(&[
        "id = \"a\"\npassword = \"x\"",
        "id = \"b\"\nname = \"B\"",
    ]));
    assert!(matches!(e, ConfigError::MissingSecret { .. }), "{e:?}");
    assert_eq!(e.key(), Some("operators[1].ha1"));
    assert_eq!(
        e.to_string(),
        "operators[1].ha1: missing; give ha1 = MD5(id:realm:password) (preferred) or \
         password for this operator"
    );
    let e = err(&with_operators(&[
        "id = \"a\"\npassword = \"x\"\nha1 = \"cf0429477e1c8b4a06769b7ac6ce4d07\"",
    ]));
    assert!(matches!(e, ConfigError::TwoSecrets { .. }), "{e:?}");
    assert_eq!(e.key(), Some("operators[0].password"));
    assert!(!e.to_string().contains("cf04"), "{e}");
}

#[test]
fn operator_shape_errors_name_the_entry() {
    let e = err(&with_operators(&["id = \"a\"\npasword = \"x\""]));
    assert!(matches!(e, ConfigError::UnknownKey { .. }), "{e:?}");
    assert_eq!(e.key(), Some("operators[0].pasword"), "{e}");
    let e = err(&with_operators(&[
        "id = \"a\"\npassword = \"x\"",
        "password = \"x\"",
    ]));
    assert!(matches!(e, ConfigError::MissingKey { .. }), "{e:?}");
    assert_eq!(e.key(), Some("operators[1].id"), "{e}");
    let e = err(&with_operators(&["id = 1001\npassword = \"x\""]));
    assert!(matches!(e, ConfigError::WrongType { .. }), "{e:?}");
    assert_eq!(e.key(), Some("operators[0].id"), "{e}");
    let e = err(&format!("{MINIMAL}[operators]\nid = \"a\"\n"));
    assert!(matches!(e, ConfigError::WrongType { .. }), "{e:?}");
    assert_eq!(e.key(), Some("operators"), "{e}");
}

#[test]
fn queue_timers_are_validated_naming_their_key() {
    let queue = |line: &str| with("queue", line);
    let cases = [
        ("ring_timeout_s = 0", "queue.ring_timeout_s", 1, 600),
        ("ring_timeout_s = 601", "queue.ring_timeout_s", 1, 600),
        (
            "reject_retry_delay_s = 3601",
            "queue.reject_retry_delay_s",
            0,
            3600,
        ),
        ("ringing_refresh_s = 0", "queue.ringing_refresh_s", 1, 60),
        ("ringing_refresh_s = 61", "queue.ringing_refresh_s", 1, 60),
    ];
    for (line, key, min, max) in cases {
        assert_invalid(&queue(line), key, Problem::OutOfRange { min, max });
    }
    assert_eq!(
        err(&queue("ring_timeout_s = 601")).to_string(),
        "queue.ring_timeout_s: 601 must be from 1 to 600"
    );
    let e = err(&queue("ring_timeout_s = -1"));
    assert_eq!(e.key(), Some("queue.ring_timeout_s"), "{e}");
    let e = err(&queue("ring_timeout_ms = 100"));
    assert_eq!(e.key(), Some("queue.ring_timeout_ms"), "{e}");
}

#[test]
fn queue_accepted_values() {
    let q = load(&with(
        "queue",
        "ring_timeout_s = 1\nreject_retry_delay_s = 0\nringing_refresh_s = 1",
    ))
    .unwrap()
    .queue;
    assert_eq!(q.ring_timeout, Duration::from_secs(1));
    assert_eq!(q.reject_retry_delay, Duration::ZERO);
    assert_eq!(q.ringing_refresh, Duration::from_secs(1));
    let q = load(&with(
        "queue",
        "ring_timeout_s = 600\nreject_retry_delay_s = 3600\nringing_refresh_s = 60",
    ))
    .unwrap()
    .queue;
    assert_eq!(q.ring_timeout, Duration::from_secs(600));
    assert_eq!(q.reject_retry_delay, Duration::from_secs(3600));
    assert_eq!(q.ringing_refresh, Duration::from_secs(60));
}

#[test]
fn registrar_values_are_validated_naming_their_key() {
    let registrar = |lines: &str| with("registrar", lines);
    assert_invalid(
        &registrar("min_expires_s = 0"),
        "registrar.min_expires_s",
        Problem::OutOfRange { min: 1, max: 86400 },
    );
    assert_invalid(
        &registrar("min_expires_s = 86401"),
        "registrar.min_expires_s",
        Problem::OutOfRange { min: 1, max: 86400 },
    );
    assert_invalid(
        &registrar("min_expires_s = 120\nmax_expires_s = 100"),
        "registrar.max_expires_s",
        Problem::BelowKey {
            key: "registrar.min_expires_s",
            min: 120,
        },
    );
    assert_invalid(
        &registrar("max_expires_s = 86401"),
        "registrar.max_expires_s",
        Problem::OutOfRange { min: 1, max: 86400 },
    );
    assert_invalid(
        &registrar("default_expires_s = 30"),
        "registrar.default_expires_s",
        Problem::BelowKey {
            key: "registrar.min_expires_s",
            min: 60,
        },
    );
    assert_invalid(
        &registrar("max_expires_s = 600"),
        "registrar.default_expires_s",
        Problem::AboveKey {
            key: "registrar.max_expires_s",
            max: 600,
        },
    );
    assert_invalid(
        &registrar("nonce_ttl_s = 9"),
        "registrar.nonce_ttl_s",
        Problem::OutOfRange { min: 10, max: 3600 },
    );
    assert_invalid(
        &registrar("nonce_ttl_s = 3601"),
        "registrar.nonce_ttl_s",
        Problem::OutOfRange { min: 10, max: 3600 },
    );
    assert_eq!(
        err(&registrar("default_expires_s = 30")).to_string(),
        "registrar.default_expires_s: 30 must be at least registrar.min_expires_s (60)"
    );
}

#[test]
fn registrar_accepted_values() {
    let r = load(&with(
        "registrar",
        "min_expires_s = 60\nmax_expires_s = 60\ndefault_expires_s = 60\nnonce_ttl_s = 10",
    ))
    .unwrap()
    .registrar;
    assert_eq!(r.min_expires, Duration::from_secs(60));
    assert_eq!(r.max_expires, Duration::from_secs(60));
    assert_eq!(r.default_expires, Duration::from_secs(60));
    assert_eq!(r.nonce_ttl, Duration::from_secs(10));
    let r = load(&with(
        "registrar",
        "min_expires_s = 1\nmax_expires_s = 86400\ndefault_expires_s = 7200\nnonce_ttl_s = 3600",
    ))
    .unwrap()
    .registrar;
    assert_eq!(r.min_expires, Duration::from_secs(1));
    assert_eq!(r.max_expires, Duration::from_secs(86400));
    assert_eq!(r.default_expires, Duration::from_secs(7200));
    assert_eq!(r.nonce_ttl, Duration::from_secs(3600));
}

#[test]
fn summary_names_trunk_and_operators() {
    let s = load(SHIPPED).unwrap().summary();
    assert!(
        s.contains("trunk trunk from 127.0.0.0/8,::1/128 (others: reject) for 112, 2 operators"),
        "{s}"
    );
}

// ---- the ACD: [queue], [[queues]], [[routes]], [acd], [feature_codes], operators' keys --

use crate::engine::acd::{
    AcdSettings, AgentSettings, FeatureCodes, LoginPolicy, Overflow, QueueSettings, Route, Strategy,
};

/// `MINIMAL` with `tables` (TOML text) after it.
fn with_tables(tables: &str) -> String {
    format!("{MINIMAL}{tables}\n")
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn acd_defaults_when_no_acd_key_is_given() {
    let acd = load(MINIMAL).unwrap().acd;
    assert_eq!(acd.queues.len(), 1);
    let q = &acd.queues[0];
    assert_eq!(q.name, "112");
    assert_eq!(q.strategy, Strategy::LongestIdle);
    assert_eq!(q.login, LoginPolicy::OnRegister);
    assert_eq!(q.ring_timeout, secs(15));
    assert_eq!(q.reject_delay, secs(5));
    assert_eq!(q.wrap_up, secs(10));
    assert_eq!(q.no_answer_limit, 2);
    assert_eq!(q.widen_after, None);
    assert_eq!(q.overflow, None);
    assert!(acd.routes.is_empty());
    assert!(acd.agents.is_empty());
    assert_eq!(acd.repeat_window, secs(600));
    assert_eq!(acd.callback_window, secs(24 * 3600));
    assert_eq!(acd.callback_ring_timeout, secs(30));
    assert_eq!(acd.transfer_ring_timeout, secs(30));
    let codes = &acd.feature_codes;
    assert_eq!(
        [
            &codes.ready,
            &codes.not_ready,
            &codes.end_wrap_up,
            &codes.next_callback,
            &codes.logout
        ],
        ["*70", "*71", "*72", "*73", "*74"]
    );
}

#[test]
fn overflow_timers_default_to_60_and_20_seconds() {
    let acd = load(&with("queue", "overflow_uri = \"sip:112@192.0.2.20\""))
        .unwrap()
        .acd;
    assert_eq!(
        acd.queues[0].overflow,
        Some(Overflow {
            uri: "sip:112@192.0.2.20".into(),
            after: secs(60),
            ring_timeout: secs(20),
        })
    );
}

#[test]
fn operators_acd_keys_default_to_every_queue_no_skills_queue_wrap_up() {
    let acd = load(&with_operators(&["id = \"a\"\npassword = \"x\""]))
        .unwrap()
        .acd;
    assert_eq!(acd.agents, [AgentSettings::plain("a")]);
    assert!(acd.agents[0].queues.is_empty(), "every queue");
    assert_eq!(acd.agents[0].wrap_up, None, "the queue's wrap-up");
}

#[test]
fn shipped_config_has_one_queue_112_longest_idle_on_register_wrap_up_10() {
    let c = load(SHIPPED).unwrap();
    let names: Vec<&str> = c.acd.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["112"]);
    let q = &c.acd.queues[0];
    assert_eq!(
        (q.strategy, q.login, q.wrap_up),
        (Strategy::LongestIdle, LoginPolicy::OnRegister, secs(10))
    );
    // The shipped file writes every default out: it equals a file that writes none.
    let mut minimal = load(&with_operators(&[
        "id = \"1001\"\npassword = \"x\"",
        "id = \"1002\"\npassword = \"y\"",
    ]))
    .unwrap()
    .acd;
    minimal.feature_codes = FeatureCodes::default();
    assert_eq!(c.acd, minimal);
    assert_eq!(
        c.acd.agents,
        [AgentSettings::plain("1001"), AgentSettings::plain("1002")]
    );
}

/// The shipped file's commented example of two queues and a route, uncommented, with the
/// operator keys its comment suggests.
#[test]
fn shipped_two_queue_example_validates() {
    let mut text = String::new();
    let mut in_example = false;
    for line in SHIPPED.lines() {
        if line == "# [[queues]]" {
            in_example = true;
        }
        let uncommented = match line {
            "#   queues = [\"112\", \"110\"]" | "#   skills = [\"police\"]" => {
                line.trim_start_matches(['#', ' '])
            }
            _ if in_example => line.strip_prefix('#').unwrap_or(line).trim_start(),
            _ => line,
        };
        text.push_str(uncommented);
        text.push('\n');
        if line == "# priority = 0" {
            in_example = false;
        }
    }
    let acd = load(&text).unwrap().acd;
    let names: Vec<&str> = acd.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["112", "110"]);
    assert_eq!(acd.queues[1].strategy, Strategy::Skills);
    assert_eq!(acd.queues[1].widen_after, Some(secs(20)));
    assert_eq!(
        acd.routes,
        [Route {
            numbers: vec!["110".into()],
            queue: "110".into(),
            skills: vec!["police".into()],
            priority: 0,
        }]
    );
    assert_eq!(acd.agents[1].queues, ["112", "110"]);
    assert_eq!(acd.agents[1].skills, ["police"]);
}

#[test]
fn multi_queue_config_gives_the_expected_acd_settings() {
    let text = with_operators(&[
        "id = \"ana\"\npassword = \"x\"\nqueues = [\"POLICE\"]\nskills = [\"Minang\", \"en\"]\n\
         wrap_up_s = 0",
        "id = \"budi\"\npassword = \"x\"",
    ]) + r##"
[queue]
strategy = "round-robin"
login = "explicit"
ring_timeout_s = 20
reject_retry_delay_s = 3
wrap_up_s = 15
no_answer_limit = 3
widen_after_s = 40
overflow_uri = "sip:112@[2001:db8::20];transport=tcp"
overflow_after_s = 90
overflow_ring_timeout_s = 25
ringing_refresh_s = 20

[[queues]]
name = "112"

[[queues]]
name = "police"
strategy = "skills"
wrap_up_s = 0
no_answer_limit = 0
overflow_uri = "sip:110@192.0.2.20:5070"
overflow_after_s = 30

[[queues]]
name = "fire"
strategy = "ring-all"
login = "on-register"
ring_timeout_s = 30
reject_retry_delay_s = 0
widen_after_s = 5
overflow_ring_timeout_s = 10

[[routes]]
numbers = ["110", "+62-21-(110)"]
queue = "Police"
skills = ["ID"]
priority = 3

[[routes]]
numbers = ["113"]
queue = "fire"

[acd]
repeat_window_s = 0
callback_window_h = 48
callback_ring_timeout_s = 45
transfer_ring_timeout_s = 20

[feature_codes]
ready = "#1"
not_ready = "#2"
end_wrap_up = "*0"
next_callback = "9"
logout = "*99#"
"##;
    let c = load(&text).unwrap();
    let base = QueueSettings {
        name: "112".into(),
        strategy: Strategy::RoundRobin,
        login: LoginPolicy::Explicit,
        ring_timeout: secs(20),
        wrap_up: secs(15),
        no_answer_limit: 3,
        reject_delay: secs(3),
        widen_after: Some(secs(40)),
        overflow: Some(Overflow {
            uri: "sip:112@[2001:db8::20];transport=tcp".into(),
            after: secs(90),
            ring_timeout: secs(25),
        }),
    };
    let expected = AcdSettings {
        queues: vec![
            base.clone(),
            QueueSettings {
                name: "police".into(),
                strategy: Strategy::Skills,
                wrap_up: Duration::ZERO,
                no_answer_limit: 0,
                overflow: Some(Overflow {
                    uri: "sip:110@192.0.2.20:5070".into(),
                    after: secs(30),
                    ring_timeout: secs(25),
                }),
                ..base.clone()
            },
            QueueSettings {
                name: "fire".into(),
                strategy: Strategy::RingAll,
                login: LoginPolicy::OnRegister,
                ring_timeout: secs(30),
                reject_delay: Duration::ZERO,
                widen_after: Some(secs(5)),
                overflow: Some(Overflow {
                    uri: "sip:112@[2001:db8::20];transport=tcp".into(),
                    after: secs(90),
                    ring_timeout: secs(10),
                }),
                ..base.clone()
            },
        ],
        routes: vec![
            Route {
                numbers: vec!["110".into(), "+6221110".into()],
                queue: "police".into(),
                skills: vec!["id".into()],
                priority: 3,
            },
            Route {
                numbers: vec!["113".into()],
                queue: "fire".into(),
                skills: vec![],
                priority: 0,
            },
        ],
        agents: vec![
            AgentSettings {
                id: "ana".into(),
                queues: vec!["police".into()],
                skills: vec!["minang".into(), "en".into()],
                wrap_up: Some(Duration::ZERO),
            },
            AgentSettings::plain("budi"),
        ],
        repeat_window: Duration::ZERO,
        callback_window: secs(48 * 3600),
        callback_ring_timeout: secs(45),
        transfer_ring_timeout: secs(20),
        feature_codes: FeatureCodes {
            ready: "#1".into(),
            not_ready: "#2".into(),
            end_wrap_up: "*0".into(),
            next_callback: "9".into(),
            logout: "*99#".into(),
        },
    };
    assert_eq!(c.acd, expected);
    // [queue]'s own timers, as written there.
    assert_eq!(
        c.queue,
        QueueConfig {
            ring_timeout: secs(20),
            reject_retry_delay: secs(3),
            ringing_refresh: secs(20),
        }
    );
    let calls = c.engine_config().calls;
    assert_eq!(calls.acd, expected);
    assert_eq!(calls.ringing_refresh, secs(20));
    assert!(
        c.summary()
            .contains("queues 112 (round-robin), police (skills), fire (ring-all)")
    );
}

#[test]
fn every_strategy_and_login_word_is_accepted() {
    for word in ["longest-idle", "round-robin", "ring-all", "skills"] {
        let acd = load(&with("queue", &format!("strategy = \"{word}\"")))
            .unwrap()
            .acd;
        assert_eq!(acd.queues[0].strategy.as_str(), word);
    }
    for word in ["on-register", "explicit"] {
        let acd = load(&with("queue", &format!("login = \"{word}\"")))
            .unwrap()
            .acd;
        assert_eq!(acd.queues[0].login.as_str(), word);
    }
}

#[test]
fn queue_numbers_out_of_range_name_their_key() {
    let cases = [
        ("wrap_up_s", 3601, 0, 3600),
        ("no_answer_limit", 101, 0, 100),
        ("widen_after_s", 0, 1, 3600),
        ("widen_after_s", 3601, 1, 3600),
        ("overflow_after_s", 0, 1, 3600),
        ("overflow_after_s", 3601, 1, 3600),
        ("overflow_ring_timeout_s", 0, 1, 600),
        ("overflow_ring_timeout_s", 601, 1, 600),
        ("ring_timeout_s", 0, 1, 600),
        ("reject_retry_delay_s", 3601, 0, 3600),
    ];
    for (field, value, min, max) in cases {
        let problem = Problem::OutOfRange { min, max };
        let line = format!("{field} = {value}");
        assert_invalid(
            &with("queue", &line),
            &format!("queue.{field}"),
            problem.clone(),
        );
        let entry = format!("[[queues]]\nname = \"a\"\n[[queues]]\nname = \"b\"\n{line}");
        assert_invalid(&with_tables(&entry), &format!("queues[1].{field}"), problem);
    }
    assert_eq!(
        err(&with_tables("[[queues]]\nname = \"a\"\nwrap_up_s = 3601")).to_string(),
        "queues[0].wrap_up_s: 3601 must be from 0 to 3600"
    );
}

#[test]
fn queue_strategy_and_login_must_be_known_words() {
    assert_invalid(
        &with("queue", "strategy = \"random\""),
        "queue.strategy",
        Problem::NotOneOf {
            choices: "\"longest-idle\", \"round-robin\", \"ring-all\", \"skills\"",
        },
    );
    assert_invalid(
        &with_tables("[[queues]]\nname = \"a\"\nlogin = \"on_register\""),
        "queues[0].login",
        Problem::NotOneOf {
            choices: "\"on-register\", \"explicit\"",
        },
    );
}

#[test]
fn overflow_uri_must_be_a_sip_uri_with_an_ip_host() {
    for bad in [
        "sip:112@backup.example.org",
        "sips:112@192.0.2.20",
        "tel:+62112",
        "sip:112@192.0.2.20;transport=tls",
        "sip:112@0.0.0.0",
        "sip:112@192.0.2.20:0",
        "sip:112@192.0.2.20?Subject=x",
        "192.0.2.20",
        "",
    ] {
        assert_invalid(
            &with("queue", &format!("overflow_uri = {bad:?}")),
            "queue.overflow_uri",
            Problem::BadOverflowUri,
        );
    }
    assert_invalid(
        &with_tables("[[queues]]\nname = \"a\"\noverflow_uri = \"sip:b@example.org\""),
        "queues[0].overflow_uri",
        Problem::BadOverflowUri,
    );
    for good in ["sip:192.0.2.20", "sip:112@[::1]:5062;transport=udp"] {
        let acd = load(&with("queue", &format!("overflow_uri = {good:?}")))
            .unwrap()
            .acd;
        assert_eq!(
            acd.queues[0].overflow.as_ref().map(|o| o.uri.as_str()),
            Some(good)
        );
    }
}

#[test]
fn queue_name_is_required_and_well_formed() {
    let e = err(&with_tables("[[queues]]\nstrategy = \"skills\""));
    assert!(matches!(e, ConfigError::MissingKey { .. }), "{e:?}");
    assert_eq!(e.key(), Some("queues[0].name"), "{e}");
    for bad in ["", "1 1 2", "sip:112", &"q".repeat(33)] {
        assert_invalid(
            &with_tables(&format!("[[queues]]\nname = {bad:?}")),
            "queues[0].name",
            Problem::BadName,
        );
    }
}

#[test]
fn queue_names_are_unique_without_case() {
    let text = with_tables(
        "[[queues]]\nname = \"fire\"\n[[queues]]\nname = \"x\"\n[[queues]]\nname = \"FIRE\"",
    );
    assert_invalid(
        &text,
        "queues[2].name",
        Problem::Repeats {
            key: "queues[0].name".into(),
        },
    );
    assert_eq!(
        err(&text).to_string(),
        "queues[2].name: \"FIRE\" repeats queues[0].name"
    );
}

#[test]
fn an_empty_queues_list_is_refused() {
    // A top-level key, so before the first table.
    let text = format!("queues = []\n{MINIMAL}");
    assert_invalid(&text, "queues", Problem::EmptyList);
}

#[test]
fn name_and_ringing_refresh_belong_to_their_own_tables() {
    let e = err(&with("queue", "name = \"112\""));
    assert!(matches!(e, ConfigError::UnknownKey { .. }), "{e:?}");
    assert_eq!(e.key(), Some("queue.name"), "{e}");
    assert!(e.to_string().contains("[[queues]]"), "{e}");
    let e = err(&with_tables(
        "[[queues]]\nname = \"a\"\nringing_refresh_s = 10",
    ));
    assert!(matches!(e, ConfigError::UnknownKey { .. }), "{e:?}");
    assert_eq!(e.key(), Some("queues[0].ringing_refresh_s"), "{e}");
    let e = err(&with_tables("[[queues]]\nname = \"a\"\nwrapup_s = 1"));
    assert_eq!(e.key(), Some("queues[0].wrapup_s"), "{e}");
}

#[test]
fn route_numbers_must_be_digits_and_not_empty() {
    assert_invalid(
        &with_tables("[[routes]]\nnumbers = []\nqueue = \"112\""),
        "routes[0].numbers",
        Problem::EmptyList,
    );
    for bad in ["", "11O", "1+10", "*110", "110 ", &"1".repeat(33), "---"] {
        assert_invalid(
            &with_tables(&format!("[[routes]]\nnumbers = [{bad:?}]\nqueue = \"112\"")),
            "routes[0].numbers",
            Problem::BadRouteNumber,
        );
    }
}

#[test]
fn a_route_number_appears_once() {
    assert_invalid(
        &with_tables("[[routes]]\nnumbers = [\"110\", \"1-10\"]\nqueue = \"112\""),
        "routes[0].numbers",
        Problem::Duplicate,
    );
    let text = with_tables(
        "[[routes]]\nnumbers = [\"110\"]\nqueue = \"112\"\n\
         [[routes]]\nnumbers = [\"113\", \"(110)\"]\nqueue = \"112\"",
    );
    assert_invalid(
        &text,
        "routes[1].numbers",
        Problem::Repeats {
            key: "routes[0].numbers".into(),
        },
    );
}

#[test]
fn a_route_queue_must_name_a_queue_and_the_error_lists_them() {
    let text = with_tables(
        "[[queues]]\nname = \"112\"\n[[queues]]\nname = \"police\"\n\
         [[routes]]\nnumbers = [\"113\"]\nqueue = \"fire\"",
    );
    assert_invalid(
        &text,
        "routes[0].queue",
        Problem::UnknownQueue {
            queues: "\"112\", \"police\"".into(),
        },
    );
    assert_eq!(
        err(&text).to_string(),
        "routes[0].queue: \"fire\" names no queue; the queues are \"112\", \"police\""
    );
    // Without [[queues]], the one queue is 112.
    let e = err(&with_tables(
        "[[routes]]\nnumbers = [\"110\"]\nqueue = \"110\"",
    ));
    assert!(e.to_string().ends_with("the queues are \"112\""), "{e}");
}

#[test]
fn route_skills_are_names_listed_once() {
    assert_invalid(
        &with_tables(
            "[[routes]]\nnumbers = [\"110\"]\nqueue = \"112\"\nskills = [\"bahasa indonesia\"]",
        ),
        "routes[0].skills",
        Problem::BadName,
    );
    assert_invalid(
        &with_tables("[[routes]]\nnumbers = [\"110\"]\nqueue = \"112\"\nskills = [\"en\", \"EN\"]"),
        "routes[0].skills",
        Problem::Duplicate,
    );
}

#[test]
fn route_priority_is_0_to_255() {
    assert_invalid(
        &with_tables("[[routes]]\nnumbers = [\"110\"]\nqueue = \"112\"\npriority = 256"),
        "routes[0].priority",
        Problem::OutOfRange { min: 0, max: 255 },
    );
    let acd = load(&with_tables(
        "[[routes]]\nnumbers = [\"110\"]\nqueue = \"112\"\npriority = 255",
    ))
    .unwrap()
    .acd;
    assert_eq!(acd.routes[0].priority, 255);
}

#[test]
fn route_queue_and_numbers_are_required() {
    let e = err(&with_tables("[[routes]]\nnumbers = [\"110\"]"));
    assert!(matches!(e, ConfigError::MissingKey { .. }), "{e:?}");
    assert_eq!(e.key(), Some("routes[0].queue"), "{e}");
    let e = err(&with_tables("[[routes]]\nqueue = \"112\""));
    assert_eq!(e.key(), Some("routes[0].numbers"), "{e}");
}

#[test]
fn acd_table_values_out_of_range_name_their_key() {
    let cases = [
        ("repeat_window_s = 86401", "acd.repeat_window_s", 0, 86_400),
        ("callback_window_h = 0", "acd.callback_window_h", 1, 720),
        ("callback_window_h = 721", "acd.callback_window_h", 1, 720),
        (
            "callback_ring_timeout_s = 0",
            "acd.callback_ring_timeout_s",
            1,
            600,
        ),
        (
            "callback_ring_timeout_s = 601",
            "acd.callback_ring_timeout_s",
            1,
            600,
        ),
        (
            "transfer_ring_timeout_s = 0",
            "acd.transfer_ring_timeout_s",
            1,
            600,
        ),
        (
            "transfer_ring_timeout_s = 601",
            "acd.transfer_ring_timeout_s",
            1,
            600,
        ),
    ];
    for (line, key, min, max) in cases {
        assert_invalid(&with("acd", line), key, Problem::OutOfRange { min, max });
    }
    let e = err(&with("acd", "repeat_window_m = 10"));
    assert_eq!(e.key(), Some("acd.repeat_window_m"), "{e}");
}

#[test]
fn feature_codes_are_keypad_strings() {
    for bad in ["", "*7a", "+70", "*70 ", &"*".repeat(17)] {
        assert_invalid(
            &with("feature_codes", &format!("logout = {bad:?}")),
            "feature_codes.logout",
            Problem::BadFeatureCode,
        );
    }
    let acd = load(&with(
        "feature_codes",
        &format!("ready = \"{}\"", "#".repeat(16)),
    ))
    .unwrap()
    .acd;
    assert_eq!(acd.feature_codes.ready, "#".repeat(16));
}

#[test]
fn feature_codes_are_distinct() {
    let text = with("feature_codes", "next_callback = \"*71\"");
    assert_invalid(
        &text,
        "feature_codes.next_callback",
        Problem::Repeats {
            key: "feature_codes.not_ready".into(),
        },
    );
    assert_eq!(
        err(&text).to_string(),
        "feature_codes.next_callback: \"*71\" repeats feature_codes.not_ready"
    );
}

#[test]
fn a_feature_code_is_no_emergency_number() {
    let text = with("trunk", "emergency_numbers = [\"112\", \"70\"]")
        + "[feature_codes]\nready = \"70\"\n";
    assert_invalid(&text, "feature_codes.ready", Problem::EmergencyNumber);
    let text = with("feature_codes", "logout = \"112\"");
    assert_invalid(&text, "feature_codes.logout", Problem::EmergencyNumber);
}

#[test]
fn operator_queues_must_exist() {
    let pw = "password = \"x\"";
    let text = with_operators(&[
        &format!("id = \"a\"\n{pw}"),
        &format!("id = \"b\"\n{pw}\nqueues = [\"112\", \"113\"]"),
    ]);
    assert_invalid(
        &text,
        "operators[1].queues",
        Problem::UnknownQueue {
            queues: "\"112\"".into(),
        },
    );
    assert_invalid(
        &with_operators(&[&format!("id = \"a\"\n{pw}\nqueues = []")]),
        "operators[0].queues",
        Problem::EmptyList,
    );
    assert_invalid(
        &with_operators(&[&format!("id = \"a\"\n{pw}\nqueues = [\"112\", \"112\"]")]),
        "operators[0].queues",
        Problem::Duplicate,
    );
}

#[test]
fn operator_skills_and_wrap_up_are_validated() {
    let pw = "password = \"x\"";
    assert_invalid(
        &with_operators(&[&format!("id = \"a\"\n{pw}\nskills = [\"\"]")]),
        "operators[0].skills",
        Problem::BadName,
    );
    assert_invalid(
        &with_operators(&[&format!("id = \"a\"\n{pw}\nwrap_up_s = 3601")]),
        "operators[0].wrap_up_s",
        Problem::OutOfRange { min: 0, max: 3600 },
    );
}

#[test]
fn the_journal_defaults_beside_the_database_and_is_validated_naming_its_key() {
    let journal = |text: &str| load(text).unwrap().database.journal;
    let db = |lines: &str| with("database", lines);
    assert_eq!(
        journal(MINIMAL),
        Some(std::path::PathBuf::from("data/siaga.journal"))
    );
    assert_eq!(
        journal(&db("url = \"sqlite:///var/lib/siaga/records.db?mode=rwc\"")),
        Some(std::path::PathBuf::from("/var/lib/siaga/records.journal"))
    );
    assert_eq!(
        journal(&db("url = \"postgres://siaga@db/siaga\"")),
        Some(std::path::PathBuf::from("data/siaga.journal"))
    );
    assert_eq!(journal(&db("url = \"sqlite::memory:\"")), None);
    assert_eq!(
        journal(&db("url = \"sqlite::memory:\"\njournal = \"/spool/j\"")),
        Some(std::path::PathBuf::from("/spool/j"))
    );
    for bad in ["", "  ", "spool/", "a\tb"] {
        assert_invalid(
            &db(&format!("journal = {bad:?}")),
            "database.journal",
            Problem::BadJournalPath,
        );
    }
    // The journal must not overwrite the database it stands in for.
    assert_invalid(
        &db("url = \"sqlite://data/x.db\"\njournal = \"data/x.db\""),
        "database.journal",
        Problem::BadJournalPath,
    );
}
