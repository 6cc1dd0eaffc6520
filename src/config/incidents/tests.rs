//! Tests of `[[categories]]` and `[[agencies]]`: the built-in defaults, the shipped file,
//! lookups, and every validation error naming its key.

use super::super::{Config, ConfigError, Problem};
use super::{IncidentsConfig, defaults};

const SHIPPED: &str = include_str!("../../../config/siaga.toml");

const MINIMAL: &str = r#"
[node]
id = "n1"
[sip]
domains = ["localhost"]
[trunk]
sources = ["127.0.0.1"]
"#;

/// Two agencies, the second reachable by live transfer and by phone.
const AGENCIES: &str = r#"
[[agencies]]
id = "psc119"
name = "PSC 119"

[[agencies]]
id = "damkar"
name = "Damkar"
transfer_uri = "sip:113@192.0.2.30:5060"
phone = "+62 21 113"
"#;

/// A category list naming the agencies of [`AGENCIES`].
const CATEGORIES: &str = r#"
[[categories]]
id = "medical"
label = "Kesehatan"
emergency = true
subcategories = [
    { id = "injury", label = "Cedera" },
    { id = "childbirth", label = "Persalinan" },
]
agencies = ["psc119"]

[[categories]]
id = "fire"
label = "Kebakaran"
emergency = true
agencies = ["damkar", "psc119"]

[[categories]]
id = "prank"
label = "Panggilan iseng"
emergency = false
"#;

fn load(extra: &str) -> Result<Config, ConfigError> {
    Config::from_toml(&format!("{MINIMAL}{extra}"), |_| None)
}

fn incidents(extra: &str) -> IncidentsConfig {
    match load(extra) {
        Ok(c) => c.incidents,
        Err(e) => panic!("expected a valid config, got: {e}"),
    }
}

fn err(extra: &str) -> ConfigError {
    err_in(&format!("{MINIMAL}{extra}"))
}

/// The error of the whole file `text`.
fn err_in(text: &str) -> ConfigError {
    match Config::from_toml(text, |_| None) {
        Ok(c) => panic!("expected an error, got {:?}", c.incidents),
        Err(e) => e,
    }
}

/// Asserts that `extra` fails validation of `key` with `problem`, and that the message
/// starts with the key.
fn assert_invalid(extra: &str, key: &str, problem: Problem) {
    assert_invalid_in(&format!("{MINIMAL}{extra}"), key, problem);
}

/// As [`assert_invalid`], of the whole file `text`.
fn assert_invalid_in(text: &str, key: &str, problem: Problem) {
    let e = err_in(text);
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

/// [`CATEGORIES`] with the first `from` replaced by `to`.
fn categories_with(from: &str, to: &str) -> String {
    assert!(CATEGORIES.contains(from), "{from}");
    format!("{AGENCIES}{}", CATEGORIES.replacen(from, to, 1))
}

/// [`AGENCIES`] with the first `from` replaced by `to`, and the categories.
fn agencies_with(from: &str, to: &str) -> String {
    assert!(AGENCIES.contains(from), "{from}");
    format!("{}{CATEGORIES}", AGENCIES.replacen(from, to, 1))
}

#[test]
fn absent_lists_take_the_indonesian_112_defaults() {
    let i = incidents("");
    let ids: Vec<&str> = i.category_ids().collect();
    assert_eq!(
        ids,
        [
            "medical",
            "fire",
            "natural_disaster",
            "security",
            "prank",
            "silent",
            "information",
            "misdial",
            "test_call"
        ]
    );
    let emergency: Vec<&str> = i
        .categories
        .iter()
        .filter(|c| c.emergency)
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(
        emergency,
        ["medical", "fire", "natural_disaster", "security"]
    );
    assert_eq!(
        i.agency_ids().collect::<Vec<_>>(),
        ["psc119", "damkar", "bpbd", "polri"]
    );
    let agencies_of = |id: &str| i.category(id).map(|c| c.agencies.clone());
    assert_eq!(agencies_of("medical"), Some(vec!["psc119".to_owned()]));
    assert_eq!(agencies_of("fire"), Some(vec!["damkar".to_owned()]));
    assert_eq!(
        agencies_of("natural_disaster"),
        Some(vec!["bpbd".to_owned(), "damkar".to_owned()])
    );
    assert_eq!(agencies_of("security"), Some(vec!["polri".to_owned()]));
    assert_eq!(agencies_of("prank"), Some(vec![]));
    let disaster = i.category("natural_disaster").expect("built in");
    assert_eq!(disaster.label, "Bencana alam");
    for sub in [
        "flood",
        "earthquake",
        "landslide",
        "tsunami",
        "volcanic_eruption",
        "extreme_weather",
    ] {
        assert!(disaster.subcategory(sub).is_some(), "{sub}");
    }
    let medical = i.category("medical").expect("built in");
    for sub in ["injury", "illness", "childbirth", "traffic_accident"] {
        assert!(medical.subcategory(sub).is_some(), "{sub}");
    }
    // Every emergency category has subcategories; the others have none.
    for c in &i.categories {
        assert_eq!(c.emergency, !c.subcategories.is_empty(), "{}", c.id);
    }
    // Defaults carry no transfer target: those are local to each city.
    assert!(
        i.agencies
            .iter()
            .all(|a| a.transfer_uri.is_none() && a.phone.is_none())
    );
}

#[test]
fn shipped_file_spells_out_the_defaults() {
    let c = Config::from_toml(SHIPPED, |_| None).expect("shipped config is valid");
    let built_in = IncidentsConfig {
        categories: defaults::categories(),
        agencies: defaults::agencies(),
    };
    assert_eq!(c.incidents, built_in);
}

#[test]
fn written_lists_replace_the_defaults() {
    let i = incidents(&format!("{AGENCIES}{CATEGORIES}"));
    assert_eq!(
        i.category_ids().collect::<Vec<_>>(),
        ["medical", "fire", "prank"]
    );
    let fire = i.category("fire").expect("written");
    assert_eq!(fire.agencies, ["damkar", "psc119"]);
    assert!(fire.subcategories.is_empty());
    let medical = i.category("medical").expect("written");
    assert_eq!(
        medical.subcategory_ids().collect::<Vec<_>>(),
        ["injury", "childbirth"]
    );
    assert_eq!(
        medical.subcategory("childbirth").map(|s| s.label.as_str()),
        Some("Persalinan")
    );
    assert!(!i.category("prank").expect("written").emergency);
    let damkar = i.agency("damkar").expect("written");
    assert_eq!(
        damkar.transfer_uri.as_deref(),
        Some("sip:113@192.0.2.30:5060")
    );
    assert_eq!(damkar.phone.as_deref(), Some("+62 21 113"));
    let psc = i.agency("psc119").expect("written");
    assert_eq!(
        (psc.transfer_uri.as_deref(), psc.phone.as_deref()),
        (None, None)
    );
}

#[test]
fn lookups_compare_ids_exactly() {
    let i = incidents("");
    assert!(i.category("Medical").is_none());
    assert!(i.category("pmi").is_none());
    assert!(i.agency("POLRI").is_none());
    assert!(i.agency("pmi").is_none());
    let medical = i.category("medical").expect("built in");
    assert!(medical.subcategory("flood").is_none());
}

#[test]
fn written_categories_with_built_in_agencies() {
    let i = incidents(CATEGORIES.replace("psc119", "polri").as_str());
    assert_eq!(i.agency_ids().count(), 4);
    assert_eq!(
        i.category("fire").expect("written").agencies,
        ["damkar", "polri"]
    );
}

#[test]
fn written_agencies_keep_the_built_in_categories_when_they_define_theirs() {
    let all = r#"
[[agencies]]
id = "psc119"
name = "PSC 119 Kota"
[[agencies]]
id = "damkar"
name = "Damkar Kota"
[[agencies]]
id = "bpbd"
name = "BPBD Kota"
[[agencies]]
id = "polri"
name = "Polrestabes"
[[agencies]]
id = "basarnas"
name = "Basarnas"
phone = "115"
"#;
    let i = incidents(all);
    assert_eq!(i.categories, defaults::categories());
    assert_eq!(
        i.agency("basarnas").and_then(|a| a.phone.as_deref()),
        Some("115")
    );
}

#[test]
fn built_in_categories_need_their_agencies() {
    let e = err(AGENCIES);
    assert_invalid(
        AGENCIES,
        "categories",
        Problem::BuiltInCategoryAgency {
            category: "natural_disaster".to_owned(),
            agencies: "\"psc119\", \"damkar\"".to_owned(),
        },
    );
    assert_eq!(
        e.to_string(),
        "categories: \"bpbd\" is a default agency of the built-in category \
         \"natural_disaster\" but names no [[agencies]] entry; define it, or write \
         [[categories]] too; the agencies are \"psc119\", \"damkar\""
    );
}

#[test]
fn unknown_agency_names_the_key_and_lists_the_agencies() {
    let text = format!(
        "{AGENCIES}{CATEGORIES}\n[[categories]]\nid = \"x\"\nlabel = \"X\"\nemergency = true\n\
         agencies = [\"psc119\", \"pmi\"]\n"
    );
    let e = err(&text);
    assert_eq!(
        e.to_string(),
        "categories[3].agencies[1]: \"pmi\" names no agency; the agencies are \"psc119\", \
         \"damkar\""
    );
    assert_invalid(
        &text,
        "categories[3].agencies[1]",
        Problem::UnknownAgency {
            agencies: "\"psc119\", \"damkar\"".to_owned(),
        },
    );
    // Against the built-in agencies too.
    assert_invalid(
        &CATEGORIES.replacen("\"psc119\"", "\"pmi\"", 1),
        "categories[0].agencies[0]",
        Problem::UnknownAgency {
            agencies: "\"psc119\", \"damkar\", \"bpbd\", \"polri\"".to_owned(),
        },
    );
}

#[test]
fn a_category_names_an_agency_once() {
    assert_invalid(
        &categories_with("[\"damkar\", \"psc119\"]", "[\"damkar\", \"damkar\"]"),
        "categories[1].agencies[1]",
        Problem::Duplicate,
    );
}

#[test]
fn empty_lists_are_errors() {
    // Top-level keys come before the first table.
    assert_invalid_in(
        &format!("categories = []\n{MINIMAL}{AGENCIES}"),
        "categories",
        Problem::EmptyList,
    );
    assert_invalid_in(
        &format!("agencies = []\n{MINIMAL}{CATEGORIES}"),
        "agencies",
        Problem::EmptyList,
    );
}

#[test]
fn ids_must_be_slugs() {
    let long = "a".repeat(33);
    for bad in [
        "",
        "Medical",
        "1fire",
        "_fire",
        "fire brigade",
        "kebakaran!",
        &long,
    ] {
        assert_invalid(
            &categories_with("id = \"fire\"", &format!("id = {bad:?}")),
            "categories[1].id",
            Problem::BadSlug,
        );
        assert_invalid(
            &agencies_with("id = \"damkar\"", &format!("id = {bad:?}")),
            "agencies[1].id",
            Problem::BadSlug,
        );
        assert_invalid(
            &categories_with("id = \"injury\"", &format!("id = {bad:?}")),
            "categories[0].subcategories[0].id",
            Problem::BadSlug,
        );
    }
    let longest = "a".repeat(32);
    for good in ["f", "fire-2", "forest_land", longest.as_str()] {
        let text = categories_with("id = \"fire\"", &format!("id = {good:?}"));
        assert!(incidents(&text).category(good).is_some(), "{good}");
    }
}

#[test]
fn repeated_ids_name_the_earlier_entry() {
    let text = categories_with("id = \"fire\"", "id = \"medical\"");
    assert_invalid(
        &text,
        "categories[1].id",
        Problem::Repeats {
            key: "categories[0].id".to_owned(),
        },
    );
    assert_eq!(
        err(&text).to_string(),
        "categories[1].id: \"medical\" repeats categories[0].id"
    );
    assert_invalid(
        &agencies_with("id = \"damkar\"", "id = \"psc119\""),
        "agencies[1].id",
        Problem::Repeats {
            key: "agencies[0].id".to_owned(),
        },
    );
    assert_invalid(
        &categories_with("id = \"childbirth\"", "id = \"injury\""),
        "categories[0].subcategories[1].id",
        Problem::Repeats {
            key: "categories[0].subcategories[0].id".to_owned(),
        },
    );
    // A subcategory id may recur under another category.
    let text = categories_with(
        "agencies = [\"damkar\", \"psc119\"]",
        "agencies = [\"damkar\"]\nsubcategories = [{ id = \"injury\", label = \"Luka bakar\" }]",
    );
    assert!(
        incidents(&text)
            .category("fire")
            .expect("written")
            .subcategory("injury")
            .is_some()
    );
}

#[test]
fn labels_and_names_must_be_readable() {
    let long = "x".repeat(81);
    for bad in ["", "   ", "Keba\nkaran", "tab\there", &long] {
        assert_invalid(
            &categories_with("label = \"Kebakaran\"", &format!("label = {bad:?}")),
            "categories[1].label",
            Problem::BadLabel,
        );
        assert_invalid(
            &categories_with("label = \"Persalinan\"", &format!("label = {bad:?}")),
            "categories[0].subcategories[1].label",
            Problem::BadLabel,
        );
        assert_invalid(
            &agencies_with("name = \"Damkar\"", &format!("name = {bad:?}")),
            "agencies[1].name",
            Problem::BadLabel,
        );
    }
    let longest = "é".repeat(80);
    let text = categories_with("label = \"Kebakaran\"", &format!("label = {longest:?}"));
    assert_eq!(
        incidents(&text).category("fire").expect("written").label,
        longest
    );
}

#[test]
fn transfer_uris_are_sip_sips_or_tel() {
    let with_uri = |uri: &str| {
        agencies_with(
            "transfer_uri = \"sip:113@192.0.2.30:5060\"",
            &format!("transfer_uri = {uri:?}"),
        )
    };
    for bad in [
        "",
        "113",
        "192.0.2.30",
        "http://damkar.example/",
        "mailto:damkar@example.org",
        "urn:service:sos.fire",
        "sip:113@192.0.2.30?Subject=fire",
        "sip:113@",
        "<sip:113@192.0.2.30>",
        "tel:",
    ] {
        assert_invalid(
            &with_uri(bad),
            "agencies[1].transfer_uri",
            Problem::BadTransferUri,
        );
    }
    for good in [
        "sip:113@192.0.2.30",
        "sip:damkar@pbx.damkar.example;transport=tcp",
        "sips:113@[2001:db8::30]:5061",
        "tel:+62-21-113",
        "tel:113;phone-context=+6221",
    ] {
        // A tel: URI is called through the trunk's gateways: give it one.
        let text = format!("{}{}", with_gateway(MINIMAL), with_uri(good));
        let i = match Config::from_toml(&text, |_| None) {
            Ok(c) => c.incidents,
            Err(e) => panic!("expected a valid config, got: {e}"),
        };
        assert_eq!(
            i.agency("damkar").and_then(|a| a.transfer_uri.as_deref()),
            Some(good)
        );
    }
}

/// `text` (holding [`MINIMAL`]'s `[trunk]`) with one trunk gateway.
fn with_gateway(text: &str) -> String {
    let sources = "sources = [\"127.0.0.1\"]";
    assert!(text.contains(sources));
    text.replacen(
        sources,
        &format!("{sources}\ngateways = [\"sip:192.0.2.10\"]"),
        1,
    )
}

#[test]
fn a_tel_transfer_uri_needs_trunk_gateways() {
    let text = agencies_with(
        "transfer_uri = \"sip:113@192.0.2.30:5060\"",
        "transfer_uri = \"tel:113;phone-context=+6221\"",
    );
    assert_invalid(
        &text,
        "agencies[1].transfer_uri",
        Problem::TelTransferWithoutGateways,
    );
    assert!(err(&text).to_string().contains("trunk.gateways"));
    let full = format!("{}{text}", with_gateway(MINIMAL));
    assert!(Config::from_toml(&full, |_| None).is_ok());
}

#[test]
fn phones_are_digits_with_separators() {
    let with_phone =
        |phone: &str| agencies_with("phone = \"+62 21 113\"", &format!("phone = {phone:?}"));
    let too_long = "1".repeat(33);
    for bad in [
        "", "+", "  ", "113a", "++62113", "62+113", "*113#", &too_long,
    ] {
        assert_invalid(&with_phone(bad), "agencies[1].phone", Problem::BadPhone);
    }
    let longest = "1".repeat(32);
    for good in ["113", "+62-21-113", "(021) 113.45", longest.as_str()] {
        let i = incidents(&with_phone(good));
        assert_eq!(
            i.agency("damkar").and_then(|a| a.phone.as_deref()),
            Some(good)
        );
    }
}

#[test]
fn shape_errors_name_the_entry() {
    let e = err(&categories_with("emergency = false", "emergency = \"no\""));
    assert_eq!(e.key(), Some("categories[2].emergency"), "{e}");
    let e = err(&categories_with("emergency = false\n", ""));
    assert!(
        matches!(&e, ConfigError::MissingKey { key } if key == "categories[2].emergency"),
        "{e:?}"
    );
    let e = err(&agencies_with("phone =", "fax ="));
    assert!(matches!(&e, ConfigError::UnknownKey { .. }), "{e:?}");
    assert_eq!(e.key(), Some("agencies[1].fax"), "{e}");
    let e = err(&categories_with(
        "{ id = \"injury\", label = \"Cedera\" }",
        "{ id = \"injury\", label = \"Cedera\", code = 1 }",
    ));
    assert_eq!(e.key(), Some("categories[0].subcategories[0].code"), "{e}");
}
