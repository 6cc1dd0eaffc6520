//! Tests of the Digest verifier: RFC 2617's worked example, nonce life, `nc` replay and the
//! sameness of the unknown-user and wrong-password answers.

use super::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

const REALM: &str = "siaga.test";
const KEY: [u8; 32] = [7; 32];
const TTL: Duration = Duration::from_secs(300);

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

/// What a client (SIPp, baresip) computes for qop=auth.
fn client_response(
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
) -> String {
    let ha1 = md5_hex(&format!("{user}:{REALM}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
}

fn creds(user: &str, password: &str, uri: &str, nonce: &str, nc: &str) -> DigestCredentials {
    DigestCredentials {
        username: user.into(),
        realm: REALM.into(),
        nonce: nonce.into(),
        uri: uri.into(),
        response: client_response(user, password, "REGISTER", uri, nonce, nc, "c0ffee"),
        algorithm: Some("MD5".into()),
        qop: Some("auth".into()),
        nc: Some(nc.into()),
        cnonce: Some("c0ffee".into()),
        opaque: None,
    }
}

fn users(name: &str) -> Option<Ha1> {
    (name == "1001").then(|| Ha1::from_password("1001", REALM, "secret"))
}

fn setup() -> (DigestAuth, StdRng) {
    (DigestAuth::new(REALM, KEY, TTL), StdRng::seed_from_u64(1))
}

const T0: MonoTime = MonoTime::from_millis(10_000);
const URI: &str = "sip:127.0.0.1:5060";

#[test]
fn rfc2617_worked_example() {
    // RFC 2617 §3.5: Mufasa / "Circle Of Life" in testrealm@host.com.
    let ha1 = Ha1::from_password("Mufasa", "testrealm@host.com", "Circle Of Life");
    assert_eq!(ha1.to_hex(), "939e7578ed9e3c518a452acee763bce9");
    let mut auth = DigestAuth::new("testrealm@host.com", KEY, TTL);
    let mut c = DigestCredentials {
        username: "Mufasa".into(),
        realm: "testrealm@host.com".into(),
        nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
        uri: "/dir/index.html".into(),
        response: "6629fae49393a05397450978507c4ef1".into(),
        algorithm: None,
        qop: Some("auth".into()),
        nc: Some("00000001".into()),
        cnonce: Some("0a4f113b".into()),
        opaque: Some("5ccc069c403ebaf9f0171e9517f40e41".into()),
    };
    let lookup = |u: &str| (u == "Mufasa").then_some(ha1);
    // Right response, but not our nonce: retry without re-prompting (stale=true).
    assert_eq!(
        auth.verify(T0, "GET", "/dir/index.html", &c, lookup),
        AuthOutcome::Challenge { stale: true }
    );
    c.response = "6629fae49393a05397450978507c4ef2".into();
    assert_eq!(
        auth.verify(T0, "GET", "/dir/index.html", &c, lookup),
        AuthOutcome::Challenge { stale: false }
    );
}

#[test]
fn ha1_hex_round_trip_and_redacted_debug() {
    let ha1 = Ha1::from_password("1001", REALM, "secret");
    assert_eq!(Ha1::from_hex(&ha1.to_hex()), Ok(ha1));
    assert_eq!(Ha1::from_hex(&ha1.to_hex().to_uppercase()), Ok(ha1));
    assert_eq!(ha1.to_hex(), md5_hex("1001:siaga.test:secret"));
    assert_eq!("xyz".parse::<Ha1>(), Err(Ha1Error::Malformed));
    assert_eq!(Ha1::from_hex(&"0".repeat(30)), Err(Ha1Error::Malformed));
    assert_eq!(format!("{ha1:?}"), "Ha1(<redacted>)");
}

#[test]
fn challenge_header_value() {
    let c = DigestChallenge::new("siaga.test", "abc");
    assert_eq!(
        c.header_value(),
        "Digest realm=\"siaga.test\", nonce=\"abc\", algorithm=MD5, qop=\"auth\""
    );
    let c = c.stale(true).opaque("o\"x");
    assert_eq!(
        c.header_value(),
        "Digest realm=\"siaga.test\", nonce=\"abc\", algorithm=MD5, qop=\"auth\", opaque=\"o\\\"x\", stale=true"
    );
    // The value parses back as credentials-shaped Digest parameters.
    let v = AuthValue::parse(&c.header_value(), HeaderName::WwwAuthenticate).expect("parses");
    assert_eq!(v.digest_param("opaque").as_deref(), Some("o\"x"));
}

#[test]
fn nonce_life() {
    let (auth, mut rng) = setup();
    let nonces = auth.nonces();
    let n = nonces.issue(T0, &mut rng);
    assert_eq!(n.len(), 64);
    assert!(
        n.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_ne!(n, nonces.issue(T0, &mut rng), "salted");
    let NonceState::Valid(id) = nonces.check(&n, T0) else {
        panic!("fresh nonce not valid");
    };
    assert_eq!(id.issued(), T0);
    assert!(matches!(nonces.check(&n, T0 + TTL), NonceState::Valid(_)));
    assert_eq!(
        nonces.check(&n, T0 + TTL + Duration::from_millis(1)),
        NonceState::Stale
    );
    // Issued "in the future" of now: not from this run.
    assert_eq!(
        nonces.check(&n, MonoTime::from_millis(9_999)),
        NonceState::Invalid
    );
    // Another key, a flipped bit, garbage.
    let other = Nonces::new([8; 32], TTL);
    assert_eq!(other.check(&n, T0), NonceState::Invalid);
    let mut tampered = n.clone().into_bytes();
    tampered[3] = if tampered[3] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).expect("hex");
    assert_eq!(nonces.check(&tampered, T0), NonceState::Invalid);
    for junk in ["", "zz", &n[..62], &format!("{n}00")] {
        assert_eq!(nonces.check(junk, T0), NonceState::Invalid, "{junk}");
    }
}

#[test]
fn right_answer_then_nc_replay() {
    let (mut auth, mut rng) = setup();
    let nonce = auth.challenge(T0, &mut rng, false).nonce;
    let c1 = creds("1001", "secret", URI, &nonce, "00000001");
    let ok = AuthOutcome::Ok {
        user: "1001".into(),
    };
    assert_eq!(auth.verify(T0, "REGISTER", URI, &c1, users), ok);
    // The same nc again is a replay: a fresh nonce, stale=true.
    assert_eq!(
        auth.verify(T0, "REGISTER", URI, &c1, users),
        AuthOutcome::Challenge { stale: true }
    );
    // A client reusing the nonce with a higher nc is fine; going back is not.
    let c3 = creds("1001", "secret", URI, &nonce, "00000003");
    assert_eq!(auth.verify(T0, "REGISTER", URI, &c3, users), ok);
    let c2 = creds("1001", "secret", URI, &nonce, "00000002");
    assert_eq!(
        auth.verify(T0, "REGISTER", URI, &c2, users),
        AuthOutcome::Challenge { stale: true }
    );
}

#[test]
fn unknown_user_and_wrong_password_look_the_same() {
    let (mut auth, mut rng) = setup();
    let nonce = auth.challenge(T0, &mut rng, false).nonce;
    let wrong = creds("1001", "guess", URI, &nonce, "00000001");
    let unknown = creds("9999", "secret", URI, &nonce, "00000001");
    let a = auth.verify(T0, "REGISTER", URI, &wrong, users);
    let b = auth.verify(T0, "REGISTER", URI, &unknown, users);
    assert_eq!(a, AuthOutcome::Forbidden);
    assert_eq!(a, b);
    // A wrong answer does not burn the nc: the right one still passes.
    let right = creds("1001", "secret", URI, &nonce, "00000001");
    assert!(matches!(
        auth.verify(T0, "REGISTER", URI, &right, users),
        AuthOutcome::Ok { .. }
    ));
    // With a stale nonce both draw a plain challenge.
    let later = T0 + TTL + Duration::from_secs(1);
    let a = auth.verify(later, "REGISTER", URI, &wrong, users);
    let b = auth.verify(later, "REGISTER", URI, &unknown, users);
    assert_eq!(a, AuthOutcome::Challenge { stale: false });
    assert_eq!(a, b);
}

#[test]
fn stale_nonce_with_right_answer_draws_stale_true() {
    let (mut auth, mut rng) = setup();
    let nonce = auth.challenge(T0, &mut rng, false).nonce;
    let c = creds("1001", "secret", URI, &nonce, "00000001");
    assert_eq!(
        auth.verify(
            T0 + TTL + Duration::from_secs(1),
            "REGISTER",
            URI,
            &c,
            users
        ),
        AuthOutcome::Challenge { stale: true }
    );
}

#[test]
fn rfc2069_credentials_are_single_use() {
    let (mut auth, mut rng) = setup();
    let nonce = auth.challenge(T0, &mut rng, false).nonce;
    let ha1 = md5_hex(&format!("1001:{REALM}:secret"));
    let ha2 = md5_hex(&format!("REGISTER:{URI}"));
    let c = DigestCredentials {
        username: "1001".into(),
        realm: REALM.into(),
        nonce: nonce.clone(),
        uri: URI.into(),
        response: md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
        algorithm: None,
        qop: None,
        nc: None,
        cnonce: None,
        opaque: None,
    };
    assert!(matches!(
        auth.verify(T0, "REGISTER", URI, &c, users),
        AuthOutcome::Ok { .. }
    ));
    assert_eq!(
        auth.verify(T0, "REGISTER", URI, &c, users),
        AuthOutcome::Challenge { stale: true }
    );
}

#[test]
fn uri_is_compared_leniently_but_must_name_the_request_uri() {
    let (mut auth, mut rng) = setup();
    let nonce = auth.challenge(T0, &mut rng, false).nonce;
    // Missing default port, other case in the host, URI parameters: the same target.
    let c = creds("1001", "secret", "sip:SIAGA.test", &nonce, "00000001");
    assert!(matches!(
        auth.verify(
            T0,
            "REGISTER",
            "sip:siaga.test:5060;transport=udp",
            &c,
            users
        ),
        AuthOutcome::Ok { .. }
    ));
    for (digest_uri, request_uri) in [
        ("sip:siaga.test:5070", "sip:siaga.test"),
        ("sips:siaga.test", "sip:siaga.test"),
        ("sip:other.test", "sip:siaga.test"),
        ("sip:1001@siaga.test", "sip:siaga.test"),
        ("not a uri", "sip:siaga.test"),
    ] {
        let c = creds("1001", "secret", digest_uri, &nonce, "00000002");
        assert_eq!(
            auth.verify(T0, "REGISTER", request_uri, &c, users),
            AuthOutcome::BadRequest(CredentialsError::UriMismatch),
            "{digest_uri}"
        );
    }
}

#[test]
fn challenges_never_made_are_bad_requests() {
    let (mut auth, mut rng) = setup();
    let nonce = auth.challenge(T0, &mut rng, false).nonce;
    let base = creds("1001", "secret", URI, &nonce, "00000001");
    let cases = [
        (
            DigestCredentials {
                algorithm: Some("SHA-256".into()),
                ..base.clone()
            },
            CredentialsError::UnsupportedAlgorithm,
        ),
        (
            DigestCredentials {
                qop: Some("auth-int".into()),
                ..base.clone()
            },
            CredentialsError::UnsupportedQop,
        ),
        (
            DigestCredentials {
                nc: Some("00000000".into()),
                ..base.clone()
            },
            CredentialsError::BadNonceCount,
        ),
        (
            DigestCredentials {
                nc: Some("1".into()),
                ..base.clone()
            },
            CredentialsError::BadNonceCount,
        ),
        (
            DigestCredentials {
                cnonce: None,
                ..base.clone()
            },
            CredentialsError::BadNonceCount,
        ),
    ];
    for (c, error) in cases {
        assert_eq!(
            auth.verify(T0, "REGISTER", URI, &c, users),
            AuthOutcome::BadRequest(error)
        );
    }
    // Another realm's credentials are ignored: challenge.
    let c = DigestCredentials {
        realm: "elsewhere".into(),
        ..base.clone()
    };
    assert_eq!(
        auth.verify(T0, "REGISTER", URI, &c, users),
        AuthOutcome::Challenge { stale: false }
    );
    // A malformed response is just a wrong one.
    let c = DigestCredentials {
        response: "nothex".into(),
        ..base
    };
    assert_eq!(
        auth.verify(T0, "REGISTER", URI, &c, users),
        AuthOutcome::Forbidden
    );
}

#[test]
fn credentials_from_header_values() {
    let v = AuthValue::parse(
        "Digest username=\"1001\", realm=\"siaga.test\", nonce=\"n\", uri=\"sip:siaga.test\", response=\"r\", qop=auth, nc=00000001, cnonce=\"c\"",
        HeaderName::Authorization,
    )
    .expect("parses");
    let c = DigestCredentials::from_auth_value(&v).expect("complete");
    assert_eq!(c.username, "1001");
    assert_eq!(c.qop.as_deref(), Some("auth"));
    assert_eq!(c.algorithm, None);
    let v = AuthValue::parse(
        "Digest username=\"1001\", realm=\"siaga.test\", nonce=\"n\", uri=\"sip:siaga.test\"",
        HeaderName::Authorization,
    )
    .expect("parses");
    assert_eq!(
        DigestCredentials::from_auth_value(&v),
        Err(CredentialsError::Missing("response"))
    );
    let v = AuthValue::parse("Basic QWxhZGRpbg==", HeaderName::Authorization).expect("parses");
    assert_eq!(
        DigestCredentials::from_auth_value(&v),
        Err(CredentialsError::NotDigest)
    );
}

#[test]
fn nc_table_is_bounded_and_eviction_refuses_old_nonces() {
    let (mut auth, mut rng) = setup();
    let mut first = None;
    // Each successful nonce is tracked; issue them 1 ms apart so their order is known.
    for i in 0..=NC_TRACK_MAX as u64 {
        let t = T0 + Duration::from_millis(i);
        let nonce = auth.challenge(t, &mut rng, false).nonce;
        let c = creds("1001", "secret", URI, &nonce, "00000001");
        assert!(matches!(
            auth.verify(t, "REGISTER", URI, &c, users),
            AuthOutcome::Ok { .. }
        ));
        first.get_or_insert(nonce);
    }
    assert_eq!(auth.nc.seen.len(), NC_TRACK_MAX);
    // The oldest nonce was evicted: its next nc cannot be checked, so it is refused.
    let first = first.expect("one nonce");
    let c = creds("1001", "secret", URI, &first, "00000002");
    let t = T0 + Duration::from_millis(NC_TRACK_MAX as u64);
    assert_eq!(
        auth.verify(t, "REGISTER", URI, &c, users),
        AuthOutcome::Challenge { stale: true }
    );
    // Stale entries are dropped as time passes.
    let later = t + TTL + Duration::from_secs(1);
    let nonce = auth.challenge(later, &mut rng, false).nonce;
    let c = creds("1001", "secret", URI, &nonce, "00000001");
    assert!(matches!(
        auth.verify(later, "REGISTER", URI, &c, users),
        AuthOutcome::Ok { .. }
    ));
    assert_eq!(auth.nc.seen.len(), 1);
}

#[test]
fn authenticate_picks_our_realm_from_the_request() {
    let (mut auth, mut rng) = setup();
    let nonce = auth.challenge(T0, &mut rng, false).nonce;
    let uri = "sip:siaga.test";
    let response = client_response("1001", "secret", "REGISTER", uri, &nonce, "00000001", "cn");
    let text = format!(
        "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1\r\n\
         To: <sip:1001@siaga.test>\r\nFrom: <sip:1001@siaga.test>;tag=a\r\nCall-ID: c1\r\n\
         CSeq: 2 REGISTER\r\nMax-Forwards: 70\r\n\
         Authorization: Digest username=\"1001\", realm=\"elsewhere\", nonce=\"x\", uri=\"{uri}\", response=\"00\"\r\n\
         Authorization: Digest username=\"1001\", realm=\"siaga.test\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", qop=auth, nc=00000001, cnonce=\"cn\", algorithm=MD5\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let msg =
        SipMessage::parse(bytes::Bytes::from(text), crate::engine::Transport::Udp).expect("parses");
    assert_eq!(
        auth.authenticate(T0, &msg, HeaderName::Authorization, users),
        AuthOutcome::Ok {
            user: "1001".into()
        }
    );
    // Proxy-Authorization is absent: a challenge.
    assert_eq!(
        auth.authenticate(T0, &msg, HeaderName::ProxyAuthorization, users),
        AuthOutcome::Challenge { stale: false }
    );
}
