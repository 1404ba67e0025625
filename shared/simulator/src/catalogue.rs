//! The simulated shop's fixed data: products (SKU, name, price, weight) by stock class, and the
//! names, streets and cities customers are drawn from.
//!
//! Prices are chosen so that the order categories hold by construction, not by rejection
//! sampling: an order of at most [`MAX_LINES`] lines of at most [`MAX_QUANTITY`] units of
//! everyday products stays below the fraud worker's large-order amounts, and one premium unit is
//! above them (see [`MAX_EVERYDAY_PRICE_MINOR`] and [`MIN_PREMIUM_PRICE_MINOR`]).

/// Currency of every price.
pub const CURRENCY: &str = "EUR";

/// Lines per order, at most.
pub const MAX_LINES: usize = 4;

/// Units per line, at most.
pub const MAX_QUANTITY: i32 = 3;

/// The dearest everyday product: `MAX_LINES * MAX_QUANTITY * 3_999 = 47_988`, below the
/// 50,000 minor units an ordinary order must stay under.
pub const MAX_EVERYDAY_PRICE_MINOR: i64 = 3_999;

/// The cheapest premium product: one unit makes a fraud-like order reach 150,000 minor units.
pub const MIN_PREMIUM_PRICE_MINOR: i64 = 150_000;

/// One product of the shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Product {
    /// Stock keeping unit, the key of every stock event.
    pub sku: &'static str,
    /// Shown on the order line.
    pub name: &'static str,
    /// Unit price in euro cents.
    pub price_minor: i64,
    /// Unit weight, which shipping uses to build parcels.
    pub weight_grams: i32,
}

const fn product(
    sku: &'static str,
    name: &'static str,
    price_minor: i64,
    weight_grams: i32,
) -> Product {
    Product {
        sku,
        name,
        price_minor,
        weight_grams,
    }
}

/// Everyday products, always stocked above the run's demand: ordinary orders are made of these.
pub const EVERYDAY: &[Product] = &[
    product("HOME-MUG-001", "Stoneware mug, 350 ml", 1_299, 380),
    product("HOME-PLT-002", "Dinner plate, 27 cm", 1_599, 640),
    product("HOME-GLS-003", "Tumbler glasses, set of 4", 2_499, 1_100),
    product("HOME-TWL-004", "Cotton bath towel", 2_199, 700),
    product("HOME-CAN-005", "Scented candle", 1_499, 420),
    product("KITC-KNF-006", "Chef's knife, 20 cm", 3_999, 310),
    product("KITC-BRD-007", "Oak cutting board", 2_899, 1_450),
    product("KITC-PAN-008", "Non-stick frying pan, 24 cm", 3_499, 1_200),
    product("KITC-SPT-009", "Silicone spatula", 599, 90),
    product("KITC-TEA-010", "Loose-leaf green tea, 100 g", 899, 130),
    product("OFFC-NTB-011", "Dotted notebook, A5", 1_199, 290),
    product("OFFC-PEN-012", "Fountain pen", 2_999, 60),
    product("OFFC-LMP-013", "LED desk lamp", 3_899, 1_350),
    product("TOYS-PZL-014", "Jigsaw puzzle, 1000 pieces", 1_899, 820),
    product("GARD-GLV-015", "Gardening gloves", 999, 150),
    product("GARD-SED-016", "Herb seed collection", 749, 80),
];

/// Premium products, stocked above the run's demand: only fraud-like orders contain them.
pub const PREMIUM: &[Product] = &[
    product("ELEC-LAP-101", "Laptop, 16 inch, 32 GB", 219_900, 2_100),
    product("ELEC-TV-102", "OLED television, 65 inch", 189_900, 24_000),
    product("SPRT-EBK-103", "Electric city bike", 249_900, 23_500),
    product(
        "KITC-ESP-104",
        "Dual-boiler espresso machine",
        159_900,
        14_800,
    ),
];

/// Scarce products: stocked below the demand of the orders that ask for them, never restocked.
pub const SCARCE: &[Product] = &[
    product("LTD-VIN-201", "Limited vinyl pressing", 3_499, 320),
    product(
        "LTD-SNK-202",
        "Collector's sneakers, numbered",
        3_999,
        1_100,
    ),
    product("LTD-PRT-203", "Signed art print", 2_999, 250),
];

/// Discontinued products: still listed in the storefront, never stocked again.
pub const DISCONTINUED: &[Product] = &[
    product("OLD-RAD-301", "Retro kitchen radio", 3_299, 1_600),
    product("OLD-CAM-302", "Instant camera, first edition", 3_799, 520),
];

/// A city and one of its postal codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct City {
    /// City name as written on a parcel.
    pub name: &'static str,
    /// A valid postal code of the city.
    pub postal_code: &'static str,
}

/// A country and the cities and streets addresses in it are drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Country {
    /// ISO 3166-1 alpha-2 code, which the fraud worker compares between billing and shipping.
    pub code: &'static str,
    /// Cities addresses are placed in.
    pub cities: &'static [City],
    /// Street names; an address is a street and a house number.
    pub streets: &'static [&'static str],
    /// Whether the house number comes after the street name, as in most of Europe.
    pub number_after_street: bool,
}

const fn city(name: &'static str, postal_code: &'static str) -> City {
    City { name, postal_code }
}

/// The countries the shop delivers to.
pub const COUNTRIES: &[Country] = &[
    Country {
        code: "SE",
        cities: &[
            city("Stockholm", "114 35"),
            city("Göteborg", "411 05"),
            city("Malmö", "211 22"),
        ],
        streets: &["Drottninggatan", "Storgatan", "Kungsgatan"],
        number_after_street: true,
    },
    Country {
        code: "DE",
        cities: &[
            city("Berlin", "10115"),
            city("Hamburg", "20095"),
            city("München", "80331"),
        ],
        streets: &["Hauptstraße", "Bahnhofstraße", "Gartenweg"],
        number_after_street: true,
    },
    Country {
        code: "FR",
        cities: &[
            city("Paris", "75011"),
            city("Lyon", "69002"),
            city("Nantes", "44000"),
        ],
        streets: &["rue de la Paix", "avenue Jean Jaurès", "rue Victor Hugo"],
        number_after_street: false,
    },
    Country {
        code: "NL",
        cities: &[
            city("Amsterdam", "1012 AB"),
            city("Utrecht", "3511 LN"),
            city("Rotterdam", "3011 AD"),
        ],
        streets: &["Kerkstraat", "Dorpsstraat", "Molenweg"],
        number_after_street: true,
    },
    Country {
        code: "ES",
        cities: &[
            city("Madrid", "28013"),
            city("Barcelona", "08002"),
            city("Valencia", "46002"),
        ],
        streets: &["Calle Mayor", "Calle Real", "Avenida de la Constitución"],
        number_after_street: true,
    },
    Country {
        code: "IT",
        cities: &[
            city("Roma", "00184"),
            city("Milano", "20121"),
            city("Torino", "10121"),
        ],
        streets: &["Via Roma", "Via Garibaldi", "Corso Italia"],
        number_after_street: true,
    },
    Country {
        code: "FI",
        cities: &[city("Helsinki", "00100"), city("Tampere", "33100")],
        streets: &["Mannerheimintie", "Hämeenkatu"],
        number_after_street: true,
    },
    Country {
        code: "IE",
        cities: &[city("Dublin", "D02 X285"), city("Cork", "T12 RX4K")],
        streets: &["Main Street", "Church Road"],
        number_after_street: false,
    },
];

/// Given names customers are drawn from (ASCII, so e-mail addresses can be built from them).
pub const GIVEN_NAMES: &[&str] = &[
    "Anna", "Lars", "Sofia", "Jonas", "Marie", "Lucas", "Elena", "Pieter", "Giulia", "Javier",
    "Aino", "Sean", "Emma", "Felix", "Chloe", "Mateo", "Ingrid", "Tomas", "Clara", "Noah",
];

/// Family names customers are drawn from.
pub const FAMILY_NAMES: &[&str] = &[
    "Andersson",
    "Schmidt",
    "Dubois",
    "de Vries",
    "Garcia",
    "Rossi",
    "Virtanen",
    "Murphy",
    "Lindqvist",
    "Weber",
    "Moreau",
    "Jansen",
    "Fernandez",
    "Bianchi",
    "Korhonen",
    "Byrne",
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn prices_make_the_categories_hold_by_construction() {
        let max_ordinary = MAX_EVERYDAY_PRICE_MINOR
            * i64::try_from(MAX_LINES).expect("small")
            * i64::from(MAX_QUANTITY);
        assert!(max_ordinary < 50_000, "{max_ordinary}");
        for product in EVERYDAY.iter().chain(SCARCE).chain(DISCONTINUED) {
            assert!(
                product.price_minor > 0 && product.price_minor <= MAX_EVERYDAY_PRICE_MINOR,
                "{product:?}"
            );
        }
        for product in PREMIUM {
            assert!(
                product.price_minor >= MIN_PREMIUM_PRICE_MINOR,
                "{product:?}"
            );
        }
    }

    #[test]
    fn skus_are_unique_and_weights_positive() {
        let all: Vec<&Product> = EVERYDAY
            .iter()
            .chain(PREMIUM)
            .chain(SCARCE)
            .chain(DISCONTINUED)
            .collect();
        let skus: BTreeSet<&str> = all.iter().map(|product| product.sku).collect();
        assert_eq!(skus.len(), all.len());
        assert!(all.iter().all(|product| product.weight_grams > 0));
        // An ordinary order draws up to MAX_LINES distinct everyday SKUs.
        assert!(EVERYDAY.len() >= MAX_LINES);
    }

    #[test]
    fn countries_have_cities_and_streets() {
        assert!(COUNTRIES.len() >= 2, "fraud-like orders need two countries");
        let codes: BTreeSet<&str> = COUNTRIES.iter().map(|country| country.code).collect();
        assert_eq!(codes.len(), COUNTRIES.len());
        for country in COUNTRIES {
            assert_eq!(country.code.len(), 2);
            assert!(!country.cities.is_empty() && !country.streets.is_empty());
        }
    }
}
