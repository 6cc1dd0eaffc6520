//! Table tests of the URIs in RFC 4475's torture messages, RFC 5118's IPv6 cases, RFC 3261
//! §19.1.4's comparison examples, the addr-spec form (RFC 3261 §20) and the building API.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

fn sip(s: &str) -> SipUri {
    match Uri::parse(s) {
        Ok(Uri::Sip(u)) => u,
        other => panic!("{s:?} did not parse as a SIP URI: {other:?}"),
    }
}

/// Parses, checks the text comes back unchanged, returns the SIP URI.
fn sip_round_trip(s: &str) -> SipUri {
    let u = sip(s);
    assert_eq!(u.to_string(), s, "round trip");
    u
}

fn domain(s: &str) -> Host {
    Host::Domain(s.to_owned())
}

#[test]
fn rfc4475_escapes() {
    // esc01 (§3.1.1.3): R-URI, To, From and Contact.
    let u = sip_round_trip("sip:sips%3Auser%40example.com@example.net");
    assert_eq!(u.user(), Some("sips%3Auser%40example.com"));
    assert_eq!(u.user_decoded().unwrap(), b"sips:user@example.com");
    assert_eq!(u.host(), &domain("example.net"));
    assert!(u.params().is_empty());
    assert_eq!(
        sip_round_trip("sip:%75se%72@example.com")
            .user_decoded()
            .unwrap(),
        b"user"
    );
    assert_eq!(
        sip_round_trip("sip:I%20have%20spaces@example.net")
            .user_decoded()
            .unwrap(),
        b"I have spaces"
    );
    let c = sip_round_trip("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31");
    assert_eq!(c.user_decoded().unwrap(), b"caller");
    assert_eq!(c.param("lr"), Some(None));
    assert!(c.has_param("LR"));
    assert_eq!(c.param("name"), Some(Some("v%61lue%25%34%31")));
    assert_eq!(c.param_decoded("NAME"), Some(Some(b"value%41".to_vec())));
    assert_eq!(c.params()[1].name_decoded(), b"name");

    // escnull (§3.1.1.4): NULs are octets, not terminators.
    let aor = sip_round_trip("sip:null-%00-null@example.com");
    let user = aor.user_decoded().unwrap();
    assert_eq!(user.len(), 11);
    assert_eq!(user[5], 0);
    let one = sip_round_trip("sip:%00@host5.example.com");
    let two = sip_round_trip("sip:%00%00@host5.example.com");
    assert_eq!(
        (one.user_decoded().unwrap(), two.user_decoded().unwrap()),
        (vec![0], vec![0, 0])
    );
    assert!(!one.equivalent(&two));

    // esc02 (§3.1.1.5): nothing to decode in the URIs themselves.
    for s in [
        "sip:registrar.example.com",
        "sip:resource@example.com",
        "sip:alias1@host1.example.com",
    ] {
        sip_round_trip(s);
    }
}

#[test]
fn rfc4475_user_parts() {
    // intmeth (§3.1.1.2).
    let u = sip_round_trip(
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
    );
    assert_eq!(
        u.user(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        u.password(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(u.host(), &domain("example.com"));
    assert!(u.params().is_empty() && u.headers().is_empty());
    let to = sip_round_trip("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com");
    assert_eq!(to.user(), u.user());
    assert_eq!(to.password(), None);

    // semiuri (§3.1.1.9): `;par=` before the `@` is part of the user.
    let u = sip_round_trip("sip:user;par=u%40example.net@example.com");
    assert_eq!(u.user(), Some("user;par=u%40example.net"));
    assert_eq!(u.user_decoded().unwrap(), b"user;par=u@example.net");
    assert_eq!(u.host(), &domain("example.com"));
    assert!(u.params().is_empty());
}

#[test]
fn rfc4475_params_and_headers() {
    // wsinv (§3.1.1.1).
    let u = sip_round_trip("sip:vivekg@chair-dnrc.example.com;unknownparam");
    assert_eq!(u.param("unknownparam"), Some(None));
    let r = sip_round_trip("sip:services.example.com;lr;unknownwith=value;unknown-no-value");
    assert_eq!(r.user(), None);
    assert_eq!(r.params().len(), 3);
    assert_eq!(r.param("unknownwith"), Some(Some("value")));

    // longreq (§3.1.1.7): long values, explicit port.
    let long = format!(
        "sip:user@example.com:6000;unknownparam1=very{}value;{}name=shortvalue;{}",
        "long".repeat(40),
        "long".repeat(30),
        "x".repeat(120)
    );
    let u = sip_round_trip(&long);
    assert_eq!(u.port(), Some(6000));
    assert_eq!(u.params().len(), 3);

    // mpart01 (§3.1.1.11), inv2543 (§3.4.1).
    assert_eq!(
        sip_round_trip("sip:127.0.0.1:5080").host(),
        &Host::Ipv4(Ipv4Addr::new(127, 0, 0, 1))
    );
    let rr = sip_round_trip("sip:UserB@example.com;maddr=ss1.example.com");
    assert_eq!(rr.param("maddr"), Some(Some("ss1.example.com")));
    let from = sip_round_trip("sip:+13035551111@ift.client.example.net;user=phone");
    assert_eq!(from.param("user"), Some(Some("phone")));

    // cparam02 (§3.3.13): inside brackets, `;unknownparam` is a URI parameter.
    let c = sip_round_trip("sip:+19725552222@gw1.example.net;unknownparam");
    assert_eq!(c.param("unknownparam"), Some(None));

    // regescrt (§3.3.14): an escaped header is kept raw and decodes once.
    let c = sip_round_trip("sip:user@example.com?Route=%3Csip:sip.example.com%3E");
    assert_eq!(c.headers().len(), 1);
    assert_eq!(c.headers()[0].name(), "Route");
    assert_eq!(c.header("route"), Some("%3Csip:sip.example.com%3E"));
    assert_eq!(c.headers()[0].value_decoded(), b"<sip:sip.example.com>");

    // escruri (§3.1.2.11): parses; the caller drops the headers of a Request-URI.
    let mut r = sip_round_trip("sip:user@example.com?Route=%3Csip:example.com%3E");
    r.clear_headers();
    assert_eq!(r.to_string(), "sip:user@example.com");
}

#[test]
fn rfc4475_addr_spec_form() {
    // cparam01 (§3.3.12): `;unknownparam` is a Contact parameter, not a URI parameter.
    let s = "sip:+19725552222@gw1.example.net;unknownparam";
    let (uri, used) = Uri::parse_addr_spec_prefix(s).unwrap();
    assert_eq!(used, "sip:+19725552222@gw1.example.net".len());
    assert_eq!(&s[used..], ";unknownparam");
    assert!(uri.as_sip().unwrap().params().is_empty());
    assert_eq!(uri.to_string(), "sip:+19725552222@gw1.example.net");

    // inv2543 (§3.4.1): To in addr-spec form; `user=phone` is a To parameter.
    let s = "sip:+16505552222@ss1.example.net;user=phone";
    let (uri, used) = Uri::parse_addr_spec_prefix(s).unwrap();
    assert_eq!(&s[used..], ";user=phone");
    assert_eq!(uri.as_sip().unwrap().param("user"), None);

    // unksm2 (§3.3.4): another scheme in addr-spec form.
    let (uri, used) = Uri::parse_addr_spec_prefix("isbn:2983792873").unwrap();
    assert_eq!((uri.scheme(), used), ("isbn", 15));

    // regbadct (§3.1.2.13): headers need brackets.
    assert_eq!(
        Uri::parse_addr_spec_prefix("sip:user@example.com?Route=%3Csip:sip.example.com%3E"),
        Err(UriError::HeadersNeedBrackets)
    );
}

#[test]
fn addr_spec_prefix_table() {
    let cases: &[(&str, &str)] = &[
        (
            "sip:alice@atlanta.com;tag=1928301774",
            "sip:alice@atlanta.com",
        ),
        ("sip:caller@example.org;tag=33242", "sip:caller@example.org"),
        (
            "sips:bob@[2001:db8::10]:5061;expires=60",
            "sips:bob@[2001:db8::10]:5061",
        ),
        ("sip:host1,sip:user@host2", "sip:host1"),
        ("sip:a@b.example , sip:c@d.example", "sip:a@b.example"),
        ("sip:a@b.example\r\n", "sip:a@b.example"),
        ("sip:services.example.com;lr", "sip:services.example.com"),
        (
            "sip:user;par=x@example.com;tag=1",
            "sip:user;par=x@example.com",
        ),
        ("tel:+62-761-123;tag=9", "tel:+62-761-123"),
        ("urn:service:sos;tag=x", "urn:service:sos"),
        (
            "http://www.example.com;tag=3234233",
            "http://www.example.com",
        ),
        ("sip:example.com", "sip:example.com"),
        ("sip:a,b@host", "sip:a"),
    ];
    for &(input, uri) in cases {
        let (parsed, used) =
            Uri::parse_addr_spec_prefix(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(&input[..used], uri, "{input}");
        assert_eq!(parsed.to_string(), uri, "{input}");
    }
    let bad: &[(&str, UriError)] = &[
        ("<sip:a@b>", UriError::BadScheme),
        ("sip:a@b>", UriError::Unexpected { at: 7 }),
        ("", UriError::Empty),
    ];
    for (input, err) in bad {
        assert_eq!(Uri::parse_addr_spec_prefix(input), Err(*err), "{input}");
    }
}

#[test]
fn rfc4475_other_schemes() {
    // novelsc (§3.3.3), unkscm (§3.3.2), unksm2 (§3.3.4).
    let cases = [
        (
            "soap.beep://192.0.2.103:3002",
            "soap.beep",
            "//192.0.2.103:3002",
        ),
        (
            "nobodyKnowsThisScheme:totallyopaquecontent",
            "nobodyKnowsThisScheme",
            "totallyopaquecontent",
        ),
        ("isbn:2983792873", "isbn", "2983792873"),
        ("http://www.example.com", "http", "//www.example.com"),
        ("name:John_Smith", "name", "John_Smith"),
    ];
    for (s, scheme, opaque) in cases {
        let u = Uri::parse(s).unwrap();
        let Uri::Other(o) = &u else {
            panic!("{s} is not opaque")
        };
        assert_eq!(
            (u.scheme(), o.scheme(), o.opaque()),
            (scheme, scheme, opaque)
        );
        assert_eq!(u.to_string(), s);
    }
    assert_eq!(Uri::parse("Sip:a@b.example").unwrap().scheme(), "sip");
    assert_eq!(
        Uri::parse("SIPS:a@b.example").unwrap().to_string(),
        "SIPS:a@b.example"
    );
    assert!(
        Uri::parse("SIPS:a@b.example")
            .unwrap()
            .as_sip()
            .unwrap()
            .is_secure()
    );
}

#[test]
fn malformed_uris() {
    let cases: &[(&str, UriError)] = &[
        // ltgtruri (§3.1.2.7) and lwsruri (§3.1.2.8).
        ("<sip:user@example.com>", UriError::BadScheme),
        ("sip:user@example.com; lr", UriError::BadParam),
        ("sip:user@example.com ;lr", UriError::Unexpected { at: 20 }),
        ("", UriError::Empty),
        ("sip", UriError::BadScheme),
        ("1sip:a@b", UriError::BadScheme),
        ("sip:", UriError::BadHost),
        ("sip:@example.com", UriError::BadUser),
        ("sip:us%zzer@example.com", UriError::BadEscape),
        ("sip:user%4@example.com", UriError::BadEscape),
        ("sip:user%@example.com", UriError::BadEscape),
        ("sip:a:b:c@example.com", UriError::BadPassword),
        ("sip:a@", UriError::BadHost),
        ("sip:a@exa_mple.com", UriError::Unexpected { at: 9 }),
        ("sip:a@256.0.0.1", UriError::BadHost),
        ("sip:a@example.com:", UriError::BadPort),
        ("sip:a@example.com:65536", UriError::PortOutOfRange),
        (
            "sip:a@example.com:99999999999999999999",
            UriError::PortOutOfRange,
        ),
        ("sip:a@example.com;", UriError::BadParam),
        ("sip:a@example.com;x=", UriError::BadParam),
        ("sip:a@example.com;x=%g0", UriError::BadEscape),
        ("sip:a@example.com?", UriError::BadHeader),
        ("sip:a@example.com?x", UriError::BadHeader),
        ("sip:a@example.com?=x", UriError::BadHeader),
        ("sip:a@example.com?a=b&", UriError::BadHeader),
        ("sip:a@example.com#frag", UriError::Unexpected { at: 17 }),
        ("sip:a@b@example.com", UriError::Unexpected { at: 7 }),
        ("sip:user@exämple.com", UriError::Unexpected { at: 11 }),
        ("sip:üser@example.com", UriError::BadHost),
        ("isbn:", UriError::BadOpaque),
        ("http://a b", UriError::Unexpected { at: 8 }),
    ];
    for (input, err) in cases {
        assert_eq!(Uri::parse(input), Err(*err), "{input:?}");
    }
    assert_eq!(SipUri::parse("tel:+62"), Err(UriError::NotSip));
    let many = format!("sip:a@b.example{}", ";p".repeat(MAX_PARTS));
    assert_eq!(sip_round_trip(&many).params().len(), MAX_PARTS);
    assert_eq!(
        Uri::parse(&format!("{many};p")),
        Err(UriError::TooManyParts)
    );
    let headers = vec!["h="; MAX_PARTS + 1].join("&");
    assert_eq!(
        Uri::parse(&format!("sip:b.example?{headers}")),
        Err(UriError::TooManyParts)
    );
    assert_eq!(
        Uri::parse(&format!("tel:+62{}", ";p".repeat(MAX_PARTS + 1))),
        Err(UriError::TooManyParts)
    );
    assert_eq!(TelUri::parse("sip:a@b.c"), Err(UriError::NotTel));
}

#[test]
fn rfc5118_ipv6() {
    let u = sip_round_trip("sip:[2001:db8::10]");
    assert_eq!(
        u.host(),
        &Host::Ipv6("2001:db8::10".parse::<Ipv6Addr>().unwrap())
    );
    assert_eq!(u.port(), None);
    let u = sip_round_trip("sip:[2001:db8::10]:5070");
    assert_eq!(u.port(), Some(5070));
    // §4.3: the port is ambiguous only to a human; this is one address and no port.
    let u = sip_round_trip("sip:[2001:db8::10:5070]");
    assert_eq!(
        (u.host(), u.port()),
        (&Host::Ipv6("2001:db8::10:5070".parse().unwrap()), None)
    );
    // §4.9: IPv4-mapped addresses.
    let u = sip_round_trip("sip:user@[::ffff:192.0.2.1]");
    assert_eq!(
        u.host(),
        &Host::Ipv6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped())
    );
    let u = sip_round_trip("sip:[0:0:0:0:0:FFFF:129.144.52.38];transport=udp");
    assert!(u.equivalent(&sip("sip:[::ffff:129.144.52.38];transport=UDP")));
    // Different spellings of one address are equivalent but written back as they came.
    assert!(sip_round_trip("sip:[2001:db8::9:01]").equivalent(&sip("sip:[2001:DB8::9:1]")));
    for bad in [
        "sip:[2001:db8::10:5070",
        "sip:[2001:db8::10",
        "sip:[2001:db8::10]]",
        "sip:[2001:db8:::10]",
        "sip:[fe80::1%25eth0]",
    ] {
        assert!(Uri::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(Uri::parse("sip:[2001:db8::10:5070"), Err(UriError::BadIpv6));
    // §4.2: a bare IPv6 address is not a host.
    assert!(Uri::parse("sip:2001:db8::10").is_err());
    assert!(Uri::parse("sip:user@2001:db8::10").is_err());
}

#[test]
fn rfc3261_equivalence() {
    let equal: &[&[&str]] = &[
        &[
            "sip:%61lice@atlanta.com;transport=TCP",
            "sip:alice@AtLanTa.CoM;Transport=tcp",
        ],
        &[
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;newparam=5",
            "sip:carol@chicago.com;security=on",
        ],
        &[
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
        ],
        &[
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
        ],
        &[
            "sip:alice@atlanta.com?Subject=x",
            "sip:alice@atlanta.com?s=x",
        ],
        &["sip:a@b.example;lr", "sip:a@b.example;%6C%72"],
        &["SIP:a@b.example", "sip:a@B.EXAMPLE"],
    ];
    for group in equal {
        for a in *group {
            for b in *group {
                assert!(sip(a).equivalent(&sip(b)), "{a} == {b}");
            }
        }
    }
    let unequal: &[(&str, &str)] = &[
        (
            "SIP:ALICE@AtLanTa.CoM;Transport=udp",
            "sip:alice@AtLanTa.CoM;Transport=UDP",
        ),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        (
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com:6000;transport=tcp",
        ),
        (
            "sip:carol@chicago.com",
            "sip:carol@chicago.com?Subject=next%20meeting",
        ),
        ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
        ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
        ("sip:alice@atlanta.com", "sip:atlanta.com"),
        ("sip:alice:pw@atlanta.com", "sip:alice@atlanta.com"),
        ("sip:alice:pw@atlanta.com", "sip:alice:PW@atlanta.com"),
        (
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;security=off",
        ),
        ("sip:a@b.example;maddr=1.2.3.4", "sip:a@b.example"),
        ("sip:a@b.example;ttl=1", "sip:a@b.example"),
        ("sip:a@b.example;method=INVITE", "sip:a@b.example"),
        ("sip:a@b.example;user=phone", "sip:a@b.example"),
        ("sip:a@b.example;lr", "sip:a@b.example;lr=on"),
        ("sip:a@b.example?h=1", "sip:a@b.example?h=1&h=1"),
        ("sip:a@b.example?h=x", "sip:a@b.example?h=X"),
    ];
    for (a, b) in unequal {
        assert!(!sip(a).equivalent(&sip(b)), "{a} != {b}");
        assert!(!sip(b).equivalent(&sip(a)), "{b} != {a}");
    }
}

#[test]
fn building_uris() {
    let mut u = SipUri::new(domain("psap.example.id")).unwrap();
    u.set_user(Some(&percent_encode(b"+62 761", Component::User)))
        .unwrap();
    u.set_port(Some(5080));
    u.set_param("transport", Some("tcp")).unwrap();
    u.set_param("lr", None).unwrap();
    u.push_header(UriHeader::new("Subject", "call%20112").unwrap());
    assert_eq!(
        u.to_string(),
        "sip:+62%20761@psap.example.id:5080;transport=tcp;lr?Subject=call%20112"
    );
    assert_eq!(u.user_decoded().unwrap(), b"+62 761");
    // Raw text is never escaped again.
    u.set_user(Some("%2B62761")).unwrap();
    assert_eq!(
        u.to_string(),
        "sip:%2B62761@psap.example.id:5080;transport=tcp;lr?Subject=call%20112"
    );
    u.set_param("TRANSPORT", Some("udp")).unwrap();
    assert_eq!(u.param("transport"), Some(Some("udp")));
    assert_eq!(u.params().len(), 2);
    assert!(u.remove_param("lr"));
    u.clear_headers();
    u.set_secure(true);
    u.set_password(Some("pw")).unwrap();
    assert_eq!(
        u.to_string(),
        "sips:%2B62761:pw@psap.example.id:5080;TRANSPORT=udp"
    );
    u.set_user(None).unwrap();
    assert_eq!((u.user(), u.password()), (None, None));
    u.set_host(Host::Ipv6(Ipv6Addr::LOCALHOST)).unwrap();
    u.set_port(None);
    assert_eq!(u.to_string(), "sips:[::1];TRANSPORT=udp");
    assert_eq!(Uri::from(u.clone()).to_string(), u.to_string());

    assert_eq!(SipUri::new(domain("bad host")), Err(UriError::BadHost));
    assert_eq!(SipUri::new(domain("192.0.2.1")), Err(UriError::BadHost));
    let mut u = SipUri::new(Host::Ipv4(Ipv4Addr::new(192, 0, 2, 1))).unwrap();
    assert_eq!(u.set_password(Some("x")), Err(UriError::BadPassword));
    assert_eq!(u.set_user(Some("a@b")), Err(UriError::BadUser));
    assert_eq!(u.set_user(Some("")), Err(UriError::BadUser));
    assert_eq!(u.set_user(Some("%2")), Err(UriError::BadEscape));
    assert_eq!(u.set_param("a;b", None), Err(UriError::BadParam));
    assert_eq!(u.set_param("a", Some("")), Err(UriError::BadParam));
    assert_eq!(UriHeader::new("", "x"), Err(UriError::BadHeader));
    assert_eq!(UriHeader::new("a", "b&c"), Err(UriError::BadHeader));
    assert_eq!(u.to_string(), "sip:192.0.2.1");
}

#[test]
fn error_texts_are_short_ascii() {
    let all = [
        UriError::Empty,
        UriError::BadScheme,
        UriError::BadEscape,
        UriError::BadUser,
        UriError::BadPassword,
        UriError::BadHost,
        UriError::BadIpv6,
        UriError::BadPort,
        UriError::PortOutOfRange,
        UriError::BadParam,
        UriError::BadHeader,
        UriError::HeadersNeedBrackets,
        UriError::Unexpected { at: 12345 },
        UriError::BadTelNumber,
        UriError::BadTelParam,
        UriError::BadUrn,
        UriError::BadOpaque,
        UriError::TooManyParts,
        UriError::NotSip,
        UriError::NotTel,
        UriError::NotUrn,
    ];
    for e in all {
        let text = e.to_string();
        assert!(
            text.is_ascii() && text.len() <= 48 && !text.contains(['\r', '\n']),
            "{text}"
        );
    }
}
