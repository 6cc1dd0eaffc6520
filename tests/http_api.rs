//! The HTTP API end to end: a real siaga (runtime, transports, engine, store writer on a
//! SQLite file, API) on loopback sockets, an operator's phone registering over UDP, and
//! reqwest speaking plain HTTP to 127.0.0.1.
//!
//! One siaga serves every check in sequence (argon2 makes each start cost a hash): login
//! and its failures, roles, body validation, an operator's state change seen in the
//! supervisor's live view and in `agent_events`, metrics text, the OpenAPI document.

mod common;

use common::{GUARD, UdpPeer, header};
use md5::{Digest, Md5};
use reqwest::StatusCode;
use serde_json::{Value, json};
use siaga::api::{Api, auth::hash_password};
use siaga::config::Config;
use siaga::engine::sip::HeaderName;
use siaga::engine::{Engine, UtcTime};
use siaga::runtime::{self, RunOptions};
use siaga::store::{self, Store};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::mpsc;

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

/// The configuration: operators 1001 (with an API password) and 1002 (without), a
/// supervisor and an admin.
fn config(db: &std::path::Path) -> Config {
    let op = hash_password("op-1001-api");
    let sup = hash_password("sup-api");
    let admin = hash_password("admin-api");
    let text = format!(
        r#"
[node]
id = "api-test"
[sip]
listen = "127.0.0.1:5599"
domains = ["siaga.test"]
[media]
rtp_ports = "42000-42099"
[database]
url = "sqlite://{db}"
[trunk]
sources = ["127.0.0.1"]
[[operators]]
id = "1001"
name = "Ayu"
password = "sip-1001"
api_password_hash = "{op}"
[[operators]]
id = "1002"
password = "sip-1002"
[[users]]
id = "sup"
name = "Shift lead"
role = "supervisor"
api_password_hash = "{sup}"
[[users]]
id = "root"
role = "admin"
api_password_hash = "{admin}"
"#,
        db = db.display()
    );
    let mut config = Config::from_toml(&text, |_| None).expect("valid config");
    config.sip.listen = "127.0.0.1:0".parse().expect("literal");
    config
}

/// siaga with its store and API in a thread of its own; stopped (and its store closed)
/// when [`Running::stop`] is called.
struct Running {
    sip: SocketAddr,
    http: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Running {
    fn start(config: Config) -> Running {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                let sockets = runtime::bind(&config).await.expect("bind sip");
                let store = Store::open(&config.database.url).await.expect("store");
                let (events, writer) = store::spawn_writer(
                    store.clone(),
                    config.node.id.to_string(),
                    store::QUEUE_CAPACITY,
                );
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind http");
                let api = Api::new(listener, &config, Some(store.clone()));
                ready_tx
                    .send((
                        sockets.udp_addr().expect("udp"),
                        api.local_addr().expect("http"),
                    ))
                    .expect("test waits");
                let mut options = RunOptions::from_config(&config);
                options.events = Some(events);
                options.api = Some(api);
                let engine = Engine::with_seed(config.engine_config(), 3);
                runtime::run(sockets, engine, options, async {
                    let _ = stop_rx.await;
                })
                .await
                .expect("siaga runs");
                writer.shutdown().await;
                store.close().await;
            });
        });
        let (sip, http) = ready_rx.recv_timeout(GUARD).expect("siaga started");
        Running {
            sip,
            http,
            stop,
            thread,
        }
    }

    fn stop(self) {
        let _ = self.stop.send(());
        self.thread.join().expect("siaga thread");
    }
}

/// Registers operator 1001's phone (REGISTER, 401, REGISTER with digest credentials, 200).
fn register_1001(phone: &UdpPeer, siaga: SocketAddr) {
    let port = phone.port();
    let call_id = format!("reg-{port}");
    let register = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:siaga.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKr{port}x{cseq};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1001@siaga.test>;tag=r{port}\r\nTo: <sip:1001@siaga.test>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:1001@127.0.0.1:{port}>\r\n\
             Expires: 600\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    };
    phone.send(register(1, "").as_bytes(), siaga);
    let challenge = phone.response_for(&call_id);
    assert_eq!(challenge.status(), Some(401));
    let www = header(&challenge, HeaderName::WwwAuthenticate);
    let nonce = www
        .split("nonce=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("nonce");
    let ha1 = md5_hex("1001:siaga.test:sip-1001");
    let ha2 = md5_hex("REGISTER:sip:siaga.test");
    let response = md5_hex(&format!("{ha1}:{nonce}:00000001:0a4f113b:auth:{ha2}"));
    let auth = format!(
        "Authorization: Digest username=\"1001\", realm=\"siaga.test\", nonce=\"{nonce}\", uri=\"sip:siaga.test\", \
         response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"0a4f113b\"\r\n"
    );
    phone.send(register(2, &auth).as_bytes(), siaga);
    let ok = phone.response_for(&call_id);
    assert_eq!(ok.status(), Some(200), "{:?}", ok.reason());
}

/// A blocking façade over reqwest for the test's sequence.
struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
}

impl Http {
    fn new(addr: SocketAddr) -> Http {
        Http {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            client: reqwest::Client::builder()
                .timeout(GUARD)
                .build()
                .expect("client"),
            base: format!("http://{addr}"),
        }
    }

    /// Sends `method path` with `token` and a JSON `body` (or raw text); the status and
    /// the body (JSON, or a string holding the text).
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Body>,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request = match body {
            Some(Body::Json(v)) => request.json(&v),
            Some(Body::Raw(text)) => request
                .header("content-type", "application/json")
                .body(text.to_owned()),
            None => request,
        };
        self.rt.block_on(async {
            let response = request.send().await.expect("siaga answers");
            let status = response.status();
            let text = response.text().await.expect("body");
            let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            (status, value)
        })
    }

    fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call("GET", path, token, None)
    }

    fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, token, Some(Body::Json(body)))
    }

    fn login(&self, user: &str, password: &str) -> String {
        let (status, body) = self.post(
            "/api/login",
            None,
            json!({"username": user, "password": password}),
        );
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().expect("token").to_owned()
    }
}

enum Body {
    Json(Value),
    Raw(&'static str),
}

/// The operator's entry in the supervisor's live view.
fn operator<'a>(live: &'a Value, id: &str) -> &'a Value {
    live["operators"]
        .as_array()
        .expect("operators")
        .iter()
        .find(|o| o["id"] == id)
        .unwrap_or_else(|| panic!("{id} in {live}"))
}

/// Parses Prometheus text: every sample line is `name[{labels}] value`; returns the
/// samples by their `name{labels}`.
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("sample line {l:?}"));
            let name = series.split('{').next().expect("name");
            assert!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "metric name in {l:?}"
            );
            if let Some(labels) = series.strip_prefix(name) {
                assert!(
                    labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                    "{l:?}"
                );
            }
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {l:?}"));
            (series.to_owned(), value)
        })
        .collect()
}

#[test]
fn the_http_api_serves_operators_supervisors_and_machines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("siaga.db");
    let siaga = Running::start(config(&db));
    let http = Http::new(siaga.http);

    // Machines.
    let (status, body) = http.get("/healthz", None);
    assert_eq!(
        (status, body),
        (StatusCode::OK, Value::String("ok\n".into()))
    );
    let (status, body) = http.get("/readyz", None);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"ready": true, "engine": "ok", "store": "ok"}));

    // Login failures: one answer for an unknown user, a wrong password, and an operator
    // without an API password.
    let refused = [("nobody", "x"), ("1001", "wrong"), ("1002", "sip-1002")]
        .map(|(u, p)| http.post("/api/login", None, json!({"username": u, "password": p})));
    for (status, body) in &refused {
        assert_eq!(*status, StatusCode::UNAUTHORIZED);
        assert_eq!(*body, refused[0].1);
    }
    assert_eq!(refused[0].1["error"], "unauthorized");
    let (status, body) = http.post("/api/login", None, json!({"username": "1001"}));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "password");

    // No token, a bad token.
    for token in [None, Some("0000")] {
        let (status, body) = http.get("/api/me", token);
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let (status, _) = http.get("/api/supervisor/live", token);
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    let op = http.login("1001", "op-1001-api");
    let sup = http.login("sup", "sup-api");
    let admin = http.login("root", "admin-api");

    // Roles.
    let (status, body) = http.get("/api/supervisor/live", Some(&op));
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "forbidden");
    let (status, _) = http.post("/api/me/state", Some(&sup), json!({"state": "ready"}));
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = http.get("/api/supervisor/live", Some(&admin));
    assert_eq!(status, StatusCode::OK);

    let (status, me) = http.get("/api/me", Some(&op));
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        (&me["user"], &me["role"], &me["name"]),
        (&json!("1001"), &json!("operator"), &json!("Ayu"))
    );
    assert_eq!(me["agent"]["state"], "logged_out");
    let (_, me) = http.get("/api/me", Some(&sup));
    assert_eq!(
        (&me["role"], &me["agent"]),
        (&json!("supervisor"), &Value::Null)
    );

    // The ACD refuses what its table refuses: not registered yet.
    let (status, body) = http.post("/api/me/state", Some(&op), json!({"state": "ready"}));
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["reason"], "not_registered");

    // The phone registers: on-register login makes 1001 available.
    let phone = UdpPeer::bind("127.0.0.1:0");
    register_1001(&phone, siaga.sip);
    let (_, live) = http.get("/api/supervisor/live", Some(&sup));
    assert_eq!(operator(&live, "1001")["state"], "available", "{live}");
    assert_eq!(operator(&live, "1001")["registered"], true);
    assert_eq!(operator(&live, "1002")["state"], "logged_out");

    // Invalid bodies name their field.
    for (body, field) in [
        (Body::Json(json!({"state": "asleep"})), "state"),
        (
            Body::Json(json!({"state": "not_ready", "reason": "nap"})),
            "reason",
        ),
        (Body::Json(json!({"reason": "break"})), "state"),
        (Body::Json(json!({"state": "ready", "mood": "ok"})), "mood"),
        (Body::Raw("{not json"), "body"),
    ] {
        let (status, answer) = http.call("POST", "/api/me/state", Some(&op), Some(body));
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
    }
    let (_, answer) = http.post(
        "/api/me/state",
        Some(&op),
        json!({"state": "not_ready", "reason": "nap"}),
    );
    assert_eq!(
        answer["allowed"],
        json!([
            "requested",
            "break",
            "meal",
            "training",
            "meeting",
            "paperwork"
        ])
    );

    // Not ready for a break: the answer, the supervisor's view and the metrics agree.
    let (status, state) = http.post(
        "/api/me/state",
        Some(&op),
        json!({"state": "not_ready", "reason": "break"}),
    );
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(
        (&state["state"], &state["reason"]),
        (&json!("not_ready"), &json!("break"))
    );
    let (_, live) = http.get("/api/supervisor/live", Some(&sup));
    let entry = operator(&live, "1001");
    assert_eq!(
        (&entry["state"], &entry["reason"]),
        (&json!("not_ready"), &json!("break"))
    );
    assert!(entry["in_state_ms"].as_u64().expect("ms") < GUARD.as_millis() as u64);
    assert_eq!(live["waiting"], json!([]));
    assert_eq!(live["in_progress"], json!([]));

    // end_wrap_up while not ready: refused with the table's reason, state unchanged.
    let (status, body) = http.post("/api/me/state", Some(&op), json!({"state": "end_wrap_up"}));
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["reason"], "not_allowed");

    let (status, text) = http.get("/metrics", None);
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().expect("text").to_owned();
    let samples = samples(&text);
    let value = |series: &str| {
        samples
            .iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{series} in\n{text}"))
    };
    assert_eq!(value("siaga_operators{state=\"not_ready\"}"), 1.0);
    assert_eq!(value("siaga_operators{state=\"logged_out\"}"), 1.0);
    assert_eq!(value("siaga_calls_waiting"), 0.0);
    assert_eq!(value("siaga_calls_total{disposition=\"answered\"}"), 0.0);
    assert!(value("siaga_store_queue_depth") >= 0.0);
    assert!(
        text.contains("# TYPE siaga_answer_time_seconds histogram"),
        "{text}"
    );

    let (status, state) = http.post("/api/me/state", Some(&op), json!({"state": "ready"}));
    assert_eq!(
        (status, &state["state"]),
        (StatusCode::OK, &json!("available"))
    );

    // A transfer needs a live call (404), and a body naming the agency (422).
    let nowhere = "/api/calls/00000000-0000-4000-8000-000000000000/transfer";
    for token in [&op, &sup] {
        let (status, body) = http.post(nowhere, Some(token), json!({"agency": "damkar"}));
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"], "not_found");
    }
    let (status, body) = http.post(nowhere, Some(&op), json!({}));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], "agency");

    // The OpenAPI document lists every route served, and only those.
    let (status, doc) = http.get("/openapi.json", None);
    assert_eq!(status, StatusCode::OK);
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let routes = [
        ("POST", "/api/login"),
        ("POST", "/api/logout"),
        ("GET", "/api/me"),
        ("POST", "/api/me/state"),
        ("GET", "/api/supervisor/live"),
        ("POST", "/api/calls/{id}/transfer"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
    ];
    let expected: BTreeSet<(String, String)> = routes
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, expected);
    assert!(
        doc["components"]["securitySchemes"]["bearer"].is_object(),
        "{doc}"
    );
    for (method, path) in routes {
        let (status, _) = http.call(method, path, None, None);
        assert_ne!(status, StatusCode::NOT_FOUND, "{method} {path} is served");
    }
    let (status, _) = http.get("/api/nothing-here", None);
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Logout ends the session, and only that one.
    let (status, _) = http.call("POST", "/api/logout", Some(&op), None);
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = http.get("/api/me", Some(&op));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = http.get("/api/me", Some(&sup));
    assert_eq!(status, StatusCode::OK);

    siaga.stop();

    // The operator's changes are in the durable log, with the reason.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rows = rt.block_on(async {
        let store = Store::open_existing(&config_url(&db)).await.expect("store");
        let rows = store
            .agent_events(Some("1001"), UtcTime(0), UtcTime(i64::MAX))
            .await
            .expect("read");
        store.close().await;
        rows
    });
    let changes: Vec<(String, Option<String>)> = rows
        .iter()
        .map(|r| (r.to_state.clone(), r.reason.clone()))
        .collect();
    assert_eq!(
        changes,
        [
            ("available".to_owned(), Some("registered".to_owned())),
            ("not_ready".to_owned(), Some("break".to_owned())),
            ("available".to_owned(), Some("ready".to_owned())),
        ]
    );
}

fn config_url(db: &std::path::Path) -> siaga::config::DatabaseUrl {
    siaga::config::DatabaseUrl::parse(&format!("sqlite://{}", db.display())).expect("url")
}
