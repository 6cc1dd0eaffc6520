//! The built-in incident categories and agencies: Indonesia's 112 service (the emergency
//! categories kesehatan, kebakaran, bencana alam, keamanan dan ketertiban, and the calls
//! that are not emergencies), used for a list the configuration leaves out.
//!
//! Labels are in Indonesian, the language of the operators; ids are English slugs, stable
//! in records and the API. Agencies come without a transfer URI or phone: those are local
//! to each city (and the national short codes 110, 113 and 119 are often routed to the
//! 112 centre itself), so a centre that transfers calls writes its own `[[agencies]]`.
//! `config/siaga.toml` spells out the same lists (a test keeps the two equal).

use super::{Agency, Category, Subcategory};

/// `(id, name)` of the built-in agencies.
const AGENCIES: [(&str, &str); 4] = [
    ("psc119", "Dinas Kesehatan / PSC 119 (ambulans)"),
    ("damkar", "Pemadam Kebakaran dan Penyelamatan (Damkar)"),
    ("bpbd", "Badan Penanggulangan Bencana Daerah (BPBD)"),
    ("polri", "Kepolisian (Polri)"),
];

/// One built-in category: id, label, emergency, subcategories `(id, label)`, agencies.
struct Builtin {
    id: &'static str,
    label: &'static str,
    emergency: bool,
    subcategories: &'static [(&'static str, &'static str)],
    agencies: &'static [&'static str],
}

const CATEGORIES: [Builtin; 9] = [
    Builtin {
        id: "medical",
        label: "Kesehatan",
        emergency: true,
        subcategories: &[
            ("injury", "Cedera / luka"),
            ("illness", "Sakit mendadak"),
            ("unconscious", "Tidak sadarkan diri"),
            ("breathing", "Sesak napas"),
            ("childbirth", "Persalinan"),
            ("traffic_accident", "Kecelakaan lalu lintas"),
            ("poisoning", "Keracunan"),
            ("other", "Lainnya"),
        ],
        agencies: &["psc119"],
    },
    Builtin {
        id: "fire",
        label: "Kebakaran",
        emergency: true,
        subcategories: &[
            ("building", "Bangunan / rumah"),
            ("vehicle", "Kendaraan"),
            ("forest_land", "Hutan / lahan"),
            ("gas_leak", "Kebocoran gas"),
            ("rescue", "Penyelamatan / evakuasi"),
            ("animal", "Penanganan hewan (ular, sarang tawon)"),
            ("other", "Lainnya"),
        ],
        agencies: &["damkar"],
    },
    Builtin {
        id: "natural_disaster",
        label: "Bencana alam",
        emergency: true,
        subcategories: &[
            ("flood", "Banjir"),
            ("earthquake", "Gempa bumi"),
            ("landslide", "Tanah longsor"),
            ("tsunami", "Tsunami"),
            ("volcanic_eruption", "Erupsi gunung api"),
            ("extreme_weather", "Cuaca ekstrem / angin puting beliung"),
            ("fallen_tree", "Pohon tumbang"),
            ("other", "Lainnya"),
        ],
        agencies: &["bpbd", "damkar"],
    },
    Builtin {
        id: "security",
        label: "Keamanan dan ketertiban",
        emergency: true,
        subcategories: &[
            ("crime_in_progress", "Kejahatan sedang berlangsung"),
            ("violence", "Kekerasan / penganiayaan"),
            ("domestic_violence", "Kekerasan dalam rumah tangga"),
            ("missing_person", "Orang hilang"),
            ("brawl_riot", "Tawuran / kerusuhan"),
            ("suspicious", "Orang / benda mencurigakan"),
            ("traffic", "Gangguan lalu lintas"),
            ("other", "Lainnya"),
        ],
        agencies: &["polri"],
    },
    Builtin {
        id: "prank",
        label: "Panggilan iseng",
        emergency: false,
        subcategories: &[],
        agencies: &[],
    },
    Builtin {
        id: "silent",
        label: "Panggilan diam (ghost call)",
        emergency: false,
        subcategories: &[],
        agencies: &[],
    },
    Builtin {
        id: "information",
        label: "Permintaan informasi",
        emergency: false,
        subcategories: &[],
        agencies: &[],
    },
    Builtin {
        id: "misdial",
        label: "Salah sambung",
        emergency: false,
        subcategories: &[],
        agencies: &[],
    },
    Builtin {
        id: "test_call",
        label: "Panggilan uji coba",
        emergency: false,
        subcategories: &[],
        agencies: &[],
    },
];

/// The built-in agencies, in order.
pub(super) fn agencies() -> Vec<Agency> {
    AGENCIES
        .iter()
        .map(|&(id, name)| Agency {
            id: id.to_owned(),
            name: name.to_owned(),
            transfer_uri: None,
            phone: None,
        })
        .collect()
}

/// The built-in categories, in order: the emergency ones, then the others.
pub(super) fn categories() -> Vec<Category> {
    CATEGORIES
        .iter()
        .map(|b| Category {
            id: b.id.to_owned(),
            label: b.label.to_owned(),
            emergency: b.emergency,
            subcategories: b
                .subcategories
                .iter()
                .map(|&(id, label)| Subcategory {
                    id: id.to_owned(),
                    label: label.to_owned(),
                })
                .collect(),
            agencies: b.agencies.iter().map(|&a| a.to_owned()).collect(),
        })
        .collect()
}
