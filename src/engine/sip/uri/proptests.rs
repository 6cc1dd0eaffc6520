//! Property tests of the URI parser: URIs built from random components survive a round
//! trip through text, accepted input is written back byte for byte, and no input (random,
//! URI-like, or a valid URI with a few bytes changed) makes the parser panic.

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;

const USER: &str = "([a-zA-Z0-9_.!~*'()&=+$,;?/-]|%[0-9A-Fa-f]{2}){1,12}";
const PASSWORD: &str = "([a-zA-Z0-9_.!~*'()&=+$,-]|%[0-9A-Fa-f]{2}){0,8}";
const PARAMCHARS: &str = "([a-zA-Z0-9_.!~*'()/:&+$\\[\\]-]|%[0-9A-Fa-f]{2}){1,8}";
const HNAME: &str = "([a-zA-Z0-9_.!~*'()/?:+$\\[\\]-]|%[0-9A-Fa-f]{2}){1,8}";
const HVALUE: &str = "([a-zA-Z0-9_.!~*'()/?:+$\\[\\]-]|%[0-9A-Fa-f]{2}){0,8}";
const DOMAIN: &str =
    "([a-z0-9]([a-z0-9-]{0,4}[a-z0-9])?\\.){0,3}[a-zA-Z]([a-zA-Z0-9-]{0,4}[a-zA-Z0-9])?\\.?";

fn host_strategy() -> impl Strategy<Value = Host> {
    prop_oneof![
        DOMAIN.prop_map(Host::Domain),
        any::<[u8; 4]>().prop_map(|o| Host::Ipv4(Ipv4Addr::from(o))),
        any::<u128>().prop_map(|a| Host::Ipv6(Ipv6Addr::from(a))),
    ]
}

#[derive(Debug, Clone)]
struct Parts {
    secure: bool,
    user: Option<(String, Option<String>)>,
    host: Host,
    port: Option<u16>,
    params: Vec<(String, Option<String>)>,
    headers: Vec<(String, String)>,
}

fn parts_strategy() -> impl Strategy<Value = Parts> {
    (
        any::<bool>(),
        proptest::option::of((USER, proptest::option::of(PASSWORD))),
        host_strategy(),
        proptest::option::of(any::<u16>()),
        proptest::collection::vec((PARAMCHARS, proptest::option::of(PARAMCHARS)), 0..4),
        proptest::collection::vec((HNAME, HVALUE), 0..3),
    )
        .prop_map(|(secure, user, host, port, params, headers)| Parts {
            secure,
            user,
            host,
            port,
            params,
            headers,
        })
}

fn build(p: &Parts) -> SipUri {
    let mut u = SipUri::new(p.host.clone()).unwrap();
    u.set_secure(p.secure);
    if let Some((user, password)) = &p.user {
        u.set_user(Some(user)).unwrap();
        u.set_password(password.as_deref()).unwrap();
    }
    u.set_port(p.port);
    for (name, value) in &p.params {
        u.push_param(UriParam::new(name, value.as_deref()).unwrap());
    }
    for (name, value) in &p.headers {
        u.push_header(UriHeader::new(name, value).unwrap());
    }
    u
}

/// Characters that make the parser take its interesting paths.
const URIISH: &str = "(sips?:|tel:|urn:|SIP:|x.y:)?[a-zA-Z0-9:@;?=&%\\[\\]<>.,+#/ \"-]{0,40}";

/// A valid URI with a few characters deleted, replaced or inserted.
fn mutated_strategy() -> impl Strategy<Value = String> {
    let edit = (
        any::<proptest::sample::Index>(),
        0u8..3,
        proptest::sample::select(b":@;?=&%[]<>.,+#/ \"\r\n0aZ".to_vec()),
    );
    (parts_strategy(), proptest::collection::vec(edit, 0..4)).prop_map(|(p, edits)| {
        let mut bytes = build(&p).to_string().into_bytes();
        for (at, op, b) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                0 if i < bytes.len() => {
                    bytes.remove(i);
                }
                1 if i < bytes.len() => bytes[i] = b,
                _ => bytes.insert(i, b),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn check_no_panic_and_exact(input: &str) -> Result<(), TestCaseError> {
    if let Ok(uri) = Uri::parse(input) {
        // Anything accepted is written back exactly.
        prop_assert_eq!(uri.to_string(), input);
    }
    if let Ok((uri, used)) = Uri::parse_addr_spec_prefix(input) {
        let text = uri.to_string();
        prop_assert_eq!(Some(text.as_str()), input.get(..used));
        prop_assert_eq!(Uri::parse(&text).map(|u| u.to_string()), Ok(text.clone()));
    }
    Ok(())
}

proptest! {
    #[test]
    fn built_uris_round_trip(p in parts_strategy()) {
        let built = build(&p);
        let text = built.to_string();
        let parsed = SipUri::parse(&text).unwrap();
        prop_assert_eq!(parsed.to_string(), text.as_str());
        prop_assert_eq!(parsed.is_secure(), p.secure);
        prop_assert_eq!(parsed.user(), p.user.as_ref().map(|(u, _)| u.as_str()));
        prop_assert_eq!(parsed.password(), p.user.as_ref().and_then(|(_, pw)| pw.as_deref()));
        prop_assert_eq!(parsed.host(), &p.host);
        prop_assert_eq!(parsed.port(), p.port);
        prop_assert_eq!(parsed.params(), built.params());
        prop_assert_eq!(parsed.headers(), built.headers());
        prop_assert_eq!(&parsed, &built);
        prop_assert!(parsed.equivalent(&built));
        // In addr-spec form the same text yields the URI up to its host[:port].
        if let Ok((uri, used)) = Uri::parse_addr_spec_prefix(&text) {
            prop_assert_eq!(Some(uri.to_string()), text.get(..used).map(str::to_owned));
        }
    }

    #[test]
    fn written_text_round_trips(
        scheme in "[sS][iI][pP][sS]?",
        user in proptest::option::of((USER, proptest::option::of(PASSWORD))),
        host in prop_oneof![DOMAIN, "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}"],
        port in proptest::option::of("[0-9]{1,5}"),
        params in proptest::collection::vec((PARAMCHARS, proptest::option::of(PARAMCHARS)), 0..4),
    ) {
        let mut text = format!("{scheme}:");
        if let Some((u, pw)) = &user {
            text.push_str(u);
            if let Some(pw) = pw {
                text.push(':');
                text.push_str(pw);
            }
            text.push('@');
        }
        text.push_str(&host);
        if let Some(port) = &port {
            text.push(':');
            text.push_str(port);
        }
        for (n, v) in &params {
            text.push(';');
            text.push_str(n);
            if let Some(v) = v {
                text.push('=');
                text.push_str(v);
            }
        }
        let port_ok = port.as_deref().is_none_or(|p| p.parse::<u16>().is_ok());
        let host_ok = Host::parse(&host).is_ok();
        match Uri::parse(&text) {
            Ok(uri) => {
                prop_assert!(port_ok && host_ok);
                prop_assert_eq!(uri.to_string(), text.as_str());
                let Uri::Sip(s) = uri else { panic!("not sip") };
                prop_assert_eq!(s.user(), user.as_ref().map(|(u, _)| u.as_str()));
                prop_assert_eq!(s.params().len(), params.len());
            }
            Err(e) => prop_assert!(!port_ok || !host_ok, "{}: {}", text, e),
        }
    }

    #[test]
    fn arbitrary_input_never_panics(s in "\\PC{0,60}", t in URIISH, m in mutated_strategy()) {
        for input in [&s, &t, &m] {
            check_no_panic_and_exact(input)?;
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..60)) {
        let s = String::from_utf8_lossy(&bytes);
        let _ = Uri::parse(&s);
        let _ = Uri::parse_addr_spec_prefix(&s);
        let _ = percent_decode(&s);
    }

    #[test]
    fn equivalence_is_reflexive_and_symmetric(a in parts_strategy(), b in parts_strategy()) {
        let (a, b) = (build(&a), build(&b));
        prop_assert!(a.equivalent(&a));
        prop_assert_eq!(a.equivalent(&b), b.equivalent(&a));
    }
}
