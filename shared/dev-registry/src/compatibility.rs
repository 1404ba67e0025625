//! Compatibility levels and the Avro compatibility check behind them.
//!
//! The registry only decides *which* pairs of schemas to compare and in which direction; whether
//! one Avro schema can read data written with another is answered by
//! [`apache_avro::schema_compatibility::SchemaCompatibility::can_read`]. A `Partial` answer (the
//! reader copes with some but not all values the writer can produce, e.g. a reader enum missing a
//! writer symbol) counts as incompatible, because a consumer would fail on the first such value.

use std::fmt;
use std::str::FromStr;

use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A subject's (or the registry's global) compatibility level, spelled as Confluent spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompatibilityLevel {
    /// No check at all.
    None,
    /// The new schema can read data written with the latest registered schema.
    Backward,
    /// The new schema can read data written with every registered schema.
    BackwardTransitive,
    /// The latest registered schema can read data written with the new schema.
    Forward,
    /// Every registered schema can read data written with the new schema.
    ForwardTransitive,
    /// Backward and forward against the latest registered schema.
    Full,
    /// Backward and forward against every registered schema.
    FullTransitive,
}

/// Which way data has to flow between the candidate schema and a registered one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Directions {
    /// The candidate (new) schema must read data written with the registered (old) one.
    backward: bool,
    /// The registered (old) schema must read data written with the candidate (new) one.
    forward: bool,
}

impl CompatibilityLevel {
    /// Every level, in the order Confluent documents them.
    pub const ALL: [CompatibilityLevel; 7] = [
        CompatibilityLevel::None,
        CompatibilityLevel::Backward,
        CompatibilityLevel::BackwardTransitive,
        CompatibilityLevel::Forward,
        CompatibilityLevel::ForwardTransitive,
        CompatibilityLevel::Full,
        CompatibilityLevel::FullTransitive,
    ];

    /// The wire spelling (`BACKWARD_TRANSITIVE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CompatibilityLevel::None => "NONE",
            CompatibilityLevel::Backward => "BACKWARD",
            CompatibilityLevel::BackwardTransitive => "BACKWARD_TRANSITIVE",
            CompatibilityLevel::Forward => "FORWARD",
            CompatibilityLevel::ForwardTransitive => "FORWARD_TRANSITIVE",
            CompatibilityLevel::Full => "FULL",
            CompatibilityLevel::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether the candidate is checked against every live version rather than only the latest.
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::FullTransitive
        )
    }

    fn directions(self) -> Directions {
        match self {
            CompatibilityLevel::None => Directions {
                backward: false,
                forward: false,
            },
            CompatibilityLevel::Backward | CompatibilityLevel::BackwardTransitive => Directions {
                backward: true,
                forward: false,
            },
            CompatibilityLevel::Forward | CompatibilityLevel::ForwardTransitive => Directions {
                backward: false,
                forward: true,
            },
            CompatibilityLevel::Full | CompatibilityLevel::FullTransitive => Directions {
                backward: true,
                forward: true,
            },
        }
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not one of the seven level names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Invalid compatibility level '{0}'. Valid values are none, backward, forward, full, \
     backward_transitive, forward_transitive, and full_transitive"
)]
pub struct InvalidCompatibilityLevel(pub String);

impl FromStr for CompatibilityLevel {
    type Err = InvalidCompatibilityLevel;

    /// Case-insensitive, like Confluent (`full` and `FULL` are the same level).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let upper = text.trim().to_ascii_uppercase();
        CompatibilityLevel::ALL
            .into_iter()
            .find(|level| level.as_str() == upper)
            .ok_or_else(|| InvalidCompatibilityLevel(text.to_owned()))
    }
}

impl Serialize for CompatibilityLevel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CompatibilityLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A registered schema the candidate is compared with.
#[derive(Debug, Clone, Copy)]
pub struct RegisteredSchema<'a> {
    /// Version within the subject, only used to make messages point at the right schema.
    pub version: u32,
    /// The parsed registered schema.
    pub schema: &'a Schema,
}

/// Checks `candidate` against the registered versions `level` requires.
///
/// `registered` must be the subject's live (non-deleted) versions, oldest first: transitive levels
/// compare with all of them, the others only with the last one. Returns one human-readable message
/// per failed comparison; an empty list means compatible.
pub fn check(
    level: CompatibilityLevel,
    candidate: &Schema,
    registered: &[RegisteredSchema<'_>],
) -> Vec<String> {
    let targets: &[RegisteredSchema<'_>] = if level.is_transitive() {
        registered
    } else {
        match registered.split_last() {
            Some((latest, _)) => std::slice::from_ref(latest),
            None => &[],
        }
    };
    targets
        .iter()
        .flat_map(|target| check_one(level, candidate, *target))
        .collect()
}

/// Checks `candidate` against exactly one registered version, in the direction(s) `level` asks
/// for (transitivity is irrelevant with a single target).
pub fn check_one(
    level: CompatibilityLevel,
    candidate: &Schema,
    registered: RegisteredSchema<'_>,
) -> Vec<String> {
    let directions = level.directions();
    let mut messages = Vec::new();
    if directions.backward {
        // Backward: consumers upgraded to the new schema read data written with the old one.
        if let Some(problem) = can_read(registered.schema, candidate) {
            messages.push(format!(
                "the new schema cannot read data written with version {} ({level}): {problem}",
                registered.version
            ));
        }
    }
    if directions.forward {
        // Forward: consumers still on the old schema read data written with the new one.
        if let Some(problem) = can_read(candidate, registered.schema) {
            messages.push(format!(
                "version {} cannot read data written with the new schema ({level}): {problem}",
                registered.version
            ));
        }
    }
    messages
}

/// `None` when `reader` can read everything `writer` produces, else why not.
fn can_read(writer: &Schema, reader: &Schema) -> Option<String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => None,
        Ok(Compatibility::Partial) => Some(
            "the reader can only read some of the values the writer can produce \
             (e.g. an enum symbol or union branch is missing)"
                .to_owned(),
        ),
        Err(error) => Some(error_chain(&error)),
    }
}

/// apache-avro nests the real cause of a field mismatch in `source()`; show all of it.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Schema {
        Schema::parse_str(text).expect("test schema parses")
    }

    fn record(fields: &str) -> Schema {
        parse(&format!(
            r#"{{"type":"record","name":"Order","namespace":"retail","fields":[{fields}]}}"#
        ))
    }

    fn v(version: u32, schema: &Schema) -> RegisteredSchema<'_> {
        RegisteredSchema { version, schema }
    }

    const ID: &str = r#"{"name":"id","type":"string"}"#;
    const QTY_DEFAULT: &str = r#"{"name":"qty","type":"int","default":0}"#;
    const QTY: &str = r#"{"name":"qty","type":"int"}"#;

    #[test]
    fn level_names_round_trip_and_are_case_insensitive() {
        for level in CompatibilityLevel::ALL {
            assert_eq!(level.as_str().parse::<CompatibilityLevel>(), Ok(level));
            assert_eq!(
                level
                    .as_str()
                    .to_ascii_lowercase()
                    .parse::<CompatibilityLevel>(),
                Ok(level)
            );
        }
        assert_eq!(
            "SIDEWAYS".parse::<CompatibilityLevel>(),
            Err(InvalidCompatibilityLevel("SIDEWAYS".to_owned()))
        );
        assert_eq!(
            serde_json::to_string(&CompatibilityLevel::FullTransitive).expect("serializes"),
            r#""FULL_TRANSITIVE""#
        );
        assert_eq!(
            serde_json::from_str::<CompatibilityLevel>(r#""forward""#).expect("deserializes"),
            CompatibilityLevel::Forward
        );
    }

    #[test]
    fn adding_a_field_with_default_is_backward_and_forward_compatible() {
        let old = record(ID);
        let new = record(&format!("{ID},{QTY_DEFAULT}"));
        for level in CompatibilityLevel::ALL {
            assert!(
                check(level, &new, &[v(1, &old)]).is_empty(),
                "{level} should accept an added field with a default"
            );
        }
    }

    #[test]
    fn adding_a_field_without_default_is_backward_incompatible_but_forward_compatible() {
        let old = record(ID);
        let new = record(&format!("{ID},{QTY}"));
        let backward = check(CompatibilityLevel::Backward, &new, &[v(1, &old)]);
        assert_eq!(backward.len(), 1, "{backward:?}");
        assert!(backward[0].contains("version 1"), "{backward:?}");
        assert!(backward[0].contains("qty"), "{backward:?}");
        assert!(check(CompatibilityLevel::Forward, &new, &[v(1, &old)]).is_empty());
        assert_eq!(
            check(CompatibilityLevel::Full, &new, &[v(1, &old)]).len(),
            1
        );
        assert!(check(CompatibilityLevel::None, &new, &[v(1, &old)]).is_empty());
    }

    #[test]
    fn removing_a_field_without_default_is_forward_incompatible_but_backward_compatible() {
        let old = record(&format!("{ID},{QTY}"));
        let new = record(ID);
        assert!(check(CompatibilityLevel::Backward, &new, &[v(1, &old)]).is_empty());
        let forward = check(CompatibilityLevel::Forward, &new, &[v(1, &old)]);
        assert_eq!(forward.len(), 1, "{forward:?}");
        assert!(
            forward[0].starts_with("version 1 cannot read"),
            "{forward:?}"
        );
        assert_eq!(
            check(CompatibilityLevel::Full, &new, &[v(1, &old)]).len(),
            1
        );
    }

    #[test]
    fn removing_a_field_with_default_is_fully_compatible() {
        let old = record(&format!("{ID},{QTY_DEFAULT}"));
        let new = record(ID);
        assert!(check(CompatibilityLevel::FullTransitive, &new, &[v(1, &old)]).is_empty());
    }

    #[test]
    fn changing_a_field_type_names_the_field_and_the_cause() {
        let old = record(ID);
        let new = record(r#"{"name":"id","type":"int"}"#);
        let messages = check(CompatibilityLevel::Backward, &new, &[v(3, &old)]);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("'id'"), "{messages:?}");
        // The nested cause from `source()` is part of the message.
        assert!(messages[0].contains("Writer schema is"), "{messages:?}");
    }

    #[test]
    fn int_to_long_promotion_is_backward_only() {
        let old = record(r#"{"name":"n","type":"int"}"#);
        let new = record(r#"{"name":"n","type":"long"}"#);
        assert!(check(CompatibilityLevel::Backward, &new, &[v(1, &old)]).is_empty());
        assert_eq!(
            check(CompatibilityLevel::Forward, &new, &[v(1, &old)]).len(),
            1
        );
    }

    fn status_enum(symbols: &str, default: Option<&str>) -> Schema {
        let default = default
            .map(|symbol| format!(r#","default":"{symbol}""#))
            .unwrap_or_default();
        parse(&format!(
            r#"{{"type":"enum","name":"Status","symbols":[{symbols}]{default}}}"#
        ))
    }

    #[test]
    fn adding_an_enum_symbol_is_backward_compatible_and_forward_only_with_a_default() {
        // What apache-avro 0.22 does: a reader enum with a `default` accepts any writer symbol
        // (Full); without one, a writer symbol the reader lacks makes the pair only Partial,
        // which the registry treats as incompatible.
        let old = status_enum(r#""NEW","PAID""#, None);
        let new = status_enum(r#""NEW","PAID","SHIPPED""#, None);
        assert!(check(CompatibilityLevel::Backward, &new, &[v(1, &old)]).is_empty());
        let forward = check(CompatibilityLevel::Forward, &new, &[v(1, &old)]);
        assert_eq!(forward.len(), 1, "{forward:?}");
        assert!(forward[0].contains("only read some"), "{forward:?}");

        let old_with_default = status_enum(r#""UNKNOWN","NEW","PAID""#, Some("UNKNOWN"));
        let new_with_default = status_enum(r#""UNKNOWN","NEW","PAID","SHIPPED""#, Some("UNKNOWN"));
        assert!(
            check(
                CompatibilityLevel::Full,
                &new_with_default,
                &[v(1, &old_with_default)]
            )
            .is_empty()
        );
    }

    #[test]
    fn partial_union_compatibility_counts_as_incompatible() {
        let old = parse(r#"["int","string"]"#);
        let new = parse(r#""int""#);
        // New reads old: a string written by the old schema cannot be read -> Partial.
        assert_eq!(
            check(CompatibilityLevel::Backward, &new, &[v(1, &old)]).len(),
            1
        );
        // Old reads new: every int fits the union.
        assert!(check(CompatibilityLevel::Forward, &new, &[v(1, &old)]).is_empty());
    }

    #[test]
    fn non_transitive_levels_only_compare_with_the_latest_version() {
        // v1 has no qty; v2 adds qty with a default; v3 drops qty's default.
        let v1 = record(ID);
        let v2 = record(&format!("{ID},{QTY_DEFAULT}"));
        let v3 = record(&format!("{ID},{QTY}"));
        let registered = [v(1, &v1), v(2, &v2)];
        assert!(check(CompatibilityLevel::Backward, &v3, &registered).is_empty());
        let transitive = check(CompatibilityLevel::BackwardTransitive, &v3, &registered);
        assert_eq!(transitive.len(), 1, "{transitive:?}");
        assert!(transitive[0].contains("version 1"), "{transitive:?}");
        assert_eq!(
            check(CompatibilityLevel::FullTransitive, &v3, &registered).len(),
            1
        );
        assert!(check(CompatibilityLevel::Full, &v3, &registered).is_empty());
    }

    #[test]
    fn forward_transitive_checks_every_version() {
        // v1 has qty (no default); v2 removed it; v3 also lacks it: v1 cannot read v3's data.
        let v1 = record(&format!("{ID},{QTY}"));
        let v2 = record(&format!("{ID},{QTY_DEFAULT}"));
        let v3 = record(ID);
        let registered = [v(1, &v1), v(2, &v2)];
        assert!(check(CompatibilityLevel::Forward, &v3, &registered).is_empty());
        let transitive = check(CompatibilityLevel::ForwardTransitive, &v3, &registered);
        assert_eq!(transitive.len(), 1, "{transitive:?}");
        assert!(transitive[0].starts_with("version 1"), "{transitive:?}");
    }

    #[test]
    fn nothing_registered_is_always_compatible() {
        let new = record(ID);
        for level in CompatibilityLevel::ALL {
            assert!(check(level, &new, &[]).is_empty());
        }
    }

    #[test]
    fn renaming_a_record_is_incompatible() {
        let old = record(ID);
        let new =
            parse(r#"{"type":"record","name":"Invoice","fields":[{"name":"id","type":"string"}]}"#);
        let messages = check(CompatibilityLevel::Backward, &new, &[v(1, &old)]);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("Invoice"), "{messages:?}");
    }
}
