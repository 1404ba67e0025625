//! The records of the `_schemas` topic: what the registry writes and replays, and their
//! Confluent wire format.
//!
//! Both key and value are JSON, byte-compatible with what Confluent's Schema Registry writes, so
//! the topic compacts the same way (a later record with the same key replaces an earlier one, a
//! tombstone removes it) and a real registry could read what this one wrote:
//!
//! | record            | key                                                           | value |
//! |-------------------|---------------------------------------------------------------|-------|
//! | schema version    | `{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}`    | `{"subject":"s","version":1,"id":1,"schema":"...","deleted":false}` |
//! | hard delete       | same key                                                      | null (tombstone) |
//! | compatibility     | `{"keytype":"CONFIG","subject":null,"magic":0}` (global) or `"subject":"s"` | `{"compatibilityLevel":"FULL"}` |
//! | config delete     | same key                                                      | null (tombstone) |
//!
//! Records of other key types a real registry writes (`NOOP`, `DELETE_SUBJECT`, `MODE`, ...) decode
//! to [`Decoded::Skipped`].

use serde::{Deserialize, Serialize};

use crate::compatibility::CompatibilityLevel;

/// One fact appended to the log; the in-memory store is the result of applying them in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogRecord {
    /// A version of a subject was registered, or its deleted flag changed.
    Schema(SchemaRecord),
    /// A version was permanently deleted.
    SchemaTombstone {
        /// Subject of the removed version.
        subject: String,
        /// The removed version.
        version: u32,
    },
    /// A compatibility level was set; `subject: None` is the global level.
    Config {
        /// `None` for the global level.
        subject: Option<String>,
        /// The new level.
        compatibility: CompatibilityLevel,
    },
    /// A compatibility level was removed; the subject falls back to the global level, the
    /// global level falls back to the registry's configured default.
    ConfigTombstone {
        /// `None` for the global level.
        subject: Option<String>,
    },
}

/// A subject version as stored in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRecord {
    /// Subject the version belongs to.
    pub subject: String,
    /// Version number within the subject, from 1.
    pub version: u32,
    /// Registry-wide schema id; equal schemas share an id across subjects.
    pub id: u32,
    /// The schema text as registered (the first registration's text for a shared id).
    pub schema: String,
    /// Soft-deleted versions stay readable by id and with `?deleted=true`.
    pub deleted: bool,
}

/// A key/value pair ready to produce; `value: None` is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRecord {
    /// JSON key; records with the same key compact into one.
    pub key: String,
    /// JSON value, or `None` for a tombstone.
    pub value: Option<String>,
}

/// What a consumed record means for the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A record to apply.
    Record(LogRecord),
    /// A record this registry does not interpret (other key types, non-Avro schemas).
    Skipped {
        /// Why, for the debug log.
        reason: String,
    },
}

/// A record in the topic that is not valid JSON of the expected shape.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The key is missing or not a JSON object with a `keytype`.
    #[error("record key is not a valid schema registry key: {0}")]
    Key(String),
    /// The value does not match its key type.
    #[error("{keytype} record value is invalid: {reason}")]
    Value {
        /// Key type of the record.
        keytype: &'static str,
        /// What is wrong.
        reason: String,
    },
}

const KEYTYPE_SCHEMA: &str = "SCHEMA";
const KEYTYPE_CONFIG: &str = "CONFIG";

/// Key of a SCHEMA record; field order is the wire order.
#[derive(Serialize)]
struct SchemaKeyOut<'a> {
    keytype: &'static str,
    subject: &'a str,
    version: u32,
    magic: u32,
}

/// Value of a SCHEMA record; field order is the wire order.
#[derive(Serialize)]
struct SchemaValueOut<'a> {
    subject: &'a str,
    version: u32,
    id: u32,
    schema: &'a str,
    deleted: bool,
}

/// Key of a CONFIG record; `subject: None` serializes as `null` (the global config).
#[derive(Serialize)]
struct ConfigKeyOut<'a> {
    keytype: &'static str,
    subject: Option<&'a str>,
    magic: u32,
}

#[derive(Serialize)]
struct ConfigValueOut {
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: CompatibilityLevel,
}

/// Any key: only the fields this registry needs, unknown fields ignored.
#[derive(Deserialize)]
struct KeyIn {
    keytype: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    version: Option<u32>,
}

#[derive(Deserialize)]
struct SchemaValueIn {
    id: u32,
    schema: String,
    #[serde(default)]
    deleted: bool,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
}

#[derive(Deserialize)]
struct ConfigValueIn {
    #[serde(default, rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
}

/// Serializes a record to Confluent's key/value format.
pub fn encode(record: &LogRecord) -> EncodedRecord {
    match record {
        LogRecord::Schema(schema) => EncodedRecord {
            key: schema_key(&schema.subject, schema.version),
            value: Some(to_json(&SchemaValueOut {
                subject: &schema.subject,
                version: schema.version,
                id: schema.id,
                schema: &schema.schema,
                deleted: schema.deleted,
            })),
        },
        LogRecord::SchemaTombstone { subject, version } => EncodedRecord {
            key: schema_key(subject, *version),
            value: None,
        },
        LogRecord::Config {
            subject,
            compatibility,
        } => EncodedRecord {
            key: config_key(subject.as_deref()),
            value: Some(to_json(&ConfigValueOut {
                compatibility_level: *compatibility,
            })),
        },
        LogRecord::ConfigTombstone { subject } => EncodedRecord {
            key: config_key(subject.as_deref()),
            value: None,
        },
    }
}

fn schema_key(subject: &str, version: u32) -> String {
    to_json(&SchemaKeyOut {
        keytype: KEYTYPE_SCHEMA,
        subject,
        version,
        magic: 1,
    })
}

fn config_key(subject: Option<&str>) -> String {
    to_json(&ConfigKeyOut {
        keytype: KEYTYPE_CONFIG,
        subject,
        magic: 0,
    })
}

/// serde_json only fails on maps with non-string keys or on `Serialize` impls that return
/// errors; the key and value structs above are plain strings, integers and bools, so this cannot
/// fail. (`json!` would not do: without serde_json's `preserve_order` it sorts keys.)
fn to_json<T: Serialize>(value: &T) -> String {
    #[allow(clippy::expect_used)]
    serde_json::to_string(value).expect("record structs always serialize")
}

/// Parses a consumed record. `value: None` is a tombstone.
pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Decoded, DecodeError> {
    let key_bytes = key.ok_or_else(|| DecodeError::Key("missing key".to_owned()))?;
    let key: KeyIn =
        serde_json::from_slice(key_bytes).map_err(|error| DecodeError::Key(error.to_string()))?;
    match key.keytype.as_str() {
        KEYTYPE_SCHEMA => decode_schema(key, value),
        KEYTYPE_CONFIG => decode_config(key, value),
        other => Ok(Decoded::Skipped {
            reason: format!("key type {other} is not used by the dev registry"),
        }),
    }
}

fn decode_schema(key: KeyIn, value: Option<&[u8]>) -> Result<Decoded, DecodeError> {
    let invalid = |reason: String| DecodeError::Value {
        keytype: KEYTYPE_SCHEMA,
        reason,
    };
    let subject = key
        .subject
        .ok_or_else(|| DecodeError::Key("SCHEMA key without subject".to_owned()))?;
    let version = key
        .version
        .ok_or_else(|| DecodeError::Key("SCHEMA key without version".to_owned()))?;
    let Some(value) = value else {
        return Ok(Decoded::Record(LogRecord::SchemaTombstone {
            subject,
            version,
        }));
    };
    let parsed: SchemaValueIn =
        serde_json::from_slice(value).map_err(|error| invalid(error.to_string()))?;
    if let Some(schema_type) = parsed.schema_type.as_deref()
        && schema_type != "AVRO"
    {
        return Ok(Decoded::Skipped {
            reason: format!("{schema_type} schema for subject {subject} version {version}"),
        });
    }
    Ok(Decoded::Record(LogRecord::Schema(SchemaRecord {
        subject,
        version,
        id: parsed.id,
        schema: parsed.schema,
        deleted: parsed.deleted,
    })))
}

fn decode_config(key: KeyIn, value: Option<&[u8]>) -> Result<Decoded, DecodeError> {
    let subject = key.subject;
    let Some(value) = value else {
        return Ok(Decoded::Record(LogRecord::ConfigTombstone { subject }));
    };
    let parsed: ConfigValueIn =
        serde_json::from_slice(value).map_err(|error| DecodeError::Value {
            keytype: KEYTYPE_CONFIG,
            reason: error.to_string(),
        })?;
    // A real registry writes configs that only carry other settings (normalize, aliases);
    // for compatibility purposes those mean "no level configured here".
    let Some(level_text) = parsed.compatibility_level else {
        return Ok(Decoded::Record(LogRecord::ConfigTombstone { subject }));
    };
    let compatibility =
        level_text
            .parse::<CompatibilityLevel>()
            .map_err(|error| DecodeError::Value {
                keytype: KEYTYPE_CONFIG,
                reason: error.to_string(),
            })?;
    Ok(Decoded::Record(LogRecord::Config {
        subject,
        compatibility,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_record(deleted: bool) -> LogRecord {
        LogRecord::Schema(SchemaRecord {
            subject: "orders.v1-value".into(),
            version: 3,
            id: 7,
            schema: r#"{"type":"string"}"#.into(),
            deleted,
        })
    }

    fn round_trip(record: &LogRecord) -> Decoded {
        let encoded = encode(record);
        decode(
            Some(encoded.key.as_bytes()),
            encoded.value.as_deref().map(str::as_bytes),
        )
        .expect("decodes")
    }

    #[test]
    fn schema_record_matches_confluent_bytes() {
        let encoded = encode(&schema_record(false));
        assert_eq!(
            encoded.key,
            r#"{"keytype":"SCHEMA","subject":"orders.v1-value","version":3,"magic":1}"#
        );
        assert_eq!(
            encoded.value.as_deref(),
            Some(
                r#"{"subject":"orders.v1-value","version":3,"id":7,"schema":"{\"type\":\"string\"}","deleted":false}"#
            )
        );
    }

    #[test]
    fn config_records_match_confluent_bytes() {
        let global = encode(&LogRecord::Config {
            subject: None,
            compatibility: CompatibilityLevel::Full,
        });
        assert_eq!(
            global.key,
            r#"{"keytype":"CONFIG","subject":null,"magic":0}"#
        );
        assert_eq!(
            global.value.as_deref(),
            Some(r#"{"compatibilityLevel":"FULL"}"#)
        );
        let subject = encode(&LogRecord::ConfigTombstone {
            subject: Some("s".into()),
        });
        assert_eq!(
            subject.key,
            r#"{"keytype":"CONFIG","subject":"s","magic":0}"#
        );
        assert_eq!(subject.value, None);
    }

    #[test]
    fn tombstones_share_the_key_of_what_they_delete() {
        let live = encode(&schema_record(false));
        let soft = encode(&schema_record(true));
        let hard = encode(&LogRecord::SchemaTombstone {
            subject: "orders.v1-value".into(),
            version: 3,
        });
        assert_eq!(live.key, soft.key);
        assert_eq!(live.key, hard.key);
        assert_eq!(hard.value, None);
    }

    #[test]
    fn every_record_kind_round_trips() {
        let records = [
            schema_record(false),
            schema_record(true),
            LogRecord::SchemaTombstone {
                subject: "a".into(),
                version: 1,
            },
            LogRecord::Config {
                subject: None,
                compatibility: CompatibilityLevel::BackwardTransitive,
            },
            LogRecord::Config {
                subject: Some("a".into()),
                compatibility: CompatibilityLevel::None,
            },
            LogRecord::ConfigTombstone { subject: None },
            LogRecord::ConfigTombstone {
                subject: Some("a".into()),
            },
        ];
        for record in records {
            assert_eq!(round_trip(&record), Decoded::Record(record.clone()));
        }
    }

    #[test]
    fn records_written_by_a_real_registry_decode() {
        let key = br#"{"keytype":"SCHEMA","subject":"s","version":2,"magic":1}"#;
        let value = br#"{"subject":"s","version":2,"id":5,"schemaType":"AVRO","schema":"\"int\"","deleted":false,"references":[],"metadata":null}"#;
        assert_eq!(
            decode(Some(key), Some(value)).expect("decodes"),
            Decoded::Record(LogRecord::Schema(SchemaRecord {
                subject: "s".into(),
                version: 2,
                id: 5,
                schema: "\"int\"".into(),
                deleted: false,
            }))
        );
        let config_key = br#"{"magic":0,"keytype":"CONFIG","subject":"s"}"#;
        let config_value = br#"{"compatibilityLevel":"FORWARD_TRANSITIVE","normalize":false}"#;
        assert_eq!(
            decode(Some(config_key), Some(config_value)).expect("decodes"),
            Decoded::Record(LogRecord::Config {
                subject: Some("s".into()),
                compatibility: CompatibilityLevel::ForwardTransitive,
            })
        );
    }

    #[test]
    fn unknown_key_types_and_non_avro_schemas_are_skipped() {
        for key in [
            &br#"{"keytype":"NOOP","magic":0}"#[..],
            &br#"{"keytype":"DELETE_SUBJECT","subject":"s","magic":0}"#[..],
            &br#"{"keytype":"MODE","subject":null,"magic":0}"#[..],
        ] {
            assert!(matches!(
                decode(Some(key), Some(b"{}")).expect("decodes"),
                Decoded::Skipped { .. }
            ));
        }
        let key = br#"{"keytype":"SCHEMA","subject":"p","version":1,"magic":1}"#;
        let value = br#"{"subject":"p","version":1,"id":1,"schemaType":"PROTOBUF","schema":"syntax = \"proto3\";"}"#;
        assert!(matches!(
            decode(Some(key), Some(value)).expect("decodes"),
            Decoded::Skipped { .. }
        ));
    }

    #[test]
    fn malformed_records_are_errors() {
        assert!(matches!(
            decode(None, Some(b"{}")),
            Err(DecodeError::Key(_))
        ));
        assert!(matches!(
            decode(Some(b"not json"), None),
            Err(DecodeError::Key(_))
        ));
        assert!(matches!(
            decode(
                Some(br#"{"keytype":"SCHEMA","subject":"s","magic":1}"#),
                None
            ),
            Err(DecodeError::Key(_))
        ));
        assert!(matches!(
            decode(
                Some(br#"{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}"#),
                Some(br#"{"id":"x"}"#)
            ),
            Err(DecodeError::Value {
                keytype: "SCHEMA",
                ..
            })
        ));
        assert!(matches!(
            decode(
                Some(br#"{"keytype":"CONFIG","subject":null,"magic":0}"#),
                Some(br#"{"compatibilityLevel":"SIDEWAYS"}"#)
            ),
            Err(DecodeError::Value {
                keytype: "CONFIG",
                ..
            })
        ));
    }

    #[test]
    fn config_without_a_level_clears_the_level() {
        assert_eq!(
            decode(
                Some(br#"{"keytype":"CONFIG","subject":"s","magic":0}"#),
                Some(br#"{"normalize":true}"#)
            )
            .expect("decodes"),
            Decoded::Record(LogRecord::ConfigTombstone {
                subject: Some("s".into())
            })
        );
    }
}
