//! Tests of loading, validation and environment overrides.

use super::*;
use std::collections::HashMap;

const SHIPPED: &str = include_str!("../../config/siaga.toml");

const MINIMAL: &str = r#"
[node]
id = "n1"
[sip]
domains = ["Example.COM"]
"#;

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
fn defaults_fill_everything_but_node_id_and_domains() {
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
    let domains = |d: &str| format!("[node]\nid = \"n\"\n[sip]\ndomains = {d}\n");
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
    let node = |id: &str| format!("[node]\nid = \"{id}\"\n[sip]\ndomains = [\"a\"]\n");
    assert_invalid(&node(""), "node.id", Problem::BadNodeId);
    assert_invalid(&node("siaga 1"), "node.id", Problem::BadNodeId);
    assert_invalid(&node(&"x".repeat(33)), "node.id", Problem::BadNodeId);
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
    let domains = load("[node]\nid = \"n\"\n[sip]\ndomains = [\"112.Kota.go.id\", \"192.0.2.1\", \"::1\", \"[2001:db8::2]\"]\n")
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
