//! The codec: typed events to Confluent-framed Avro and back.
//!
//! Encoding writes `0`, the 4-byte big-endian schema id registered for the event's type, and the
//! Avro body, into a buffer the caller reuses. Decoding reads the schema id, fetches the writer's
//! schema from the registry once per id, and keeps a ready-made reader for it:
//! - when the writer's schema is this build's schema of the type (the steady state),
//!   `serde_avro_fast` decodes the datum straight into the Rust type, with no `Value` tree and
//!   no lookup by field name (and encodes the same way);
//! - when it differs (a producer on another revision), apache-avro's resolving reader maps the
//!   writer's schema to this build's, filling added fields from defaults and unknown enum
//!   symbols with the enum's default, and only then builds the Rust type.
//!
//! No schema JSON is parsed and no schema is resolved per message.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema_compatibility::SchemaCompatibility;
use retail_events::{EVENT_TYPES, Event, EventDescriptor, EventSchema, catalogue};
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{BytesResult, get_bytes_result};

use crate::error::{
    DecodeError, EncodeError, RegistryError, is_registry_unavailable, registry_error_code,
};
use crate::registry::{RegisteredEvent, RegistrationMode, register_catalogue};

/// Size of the Confluent wire-format header: magic byte and schema id.
pub const HEADER_LEN: usize = 5;

/// Largest single allocation a decoded length prefix may ask for. Kafka records are at most a
/// few MiB (`message.max.bytes` defaults to 1 MiB), so a string or array claiming more is
/// hostile or corrupt; apache-avro's own default is 512 MiB.
pub const MAX_DECODE_ALLOCATION: usize = 16 * 1024 * 1024;

/// Encodes and decodes the catalogue's events in the Confluent wire format. Shared by all tasks
/// of a process (`Arc<Codec>`); every method takes `&self`.
pub struct Codec {
    /// Writer for each event type, indexed by `EventDescriptor::index`; `None` for a type with
    /// no registered schema id.
    writers: Vec<Option<EventWriter>>,
    /// Fetches writer schemas by id from the registry, de-duplicating concurrent fetches of one
    /// id. `None` for an offline codec, which knows only the ids it was built with.
    schema_source: Option<AvroDecoder>,
    /// Decoding plan (or the message-independent reason there is none) per writer schema id.
    plans: RwLock<HashMap<u32, Result<Arc<DecodePlan>, DecodeError>>>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let registered = self.writers.iter().flatten().count();
        let plans = self
            .plans
            .read()
            .map(|plans| plans.len())
            .unwrap_or_default();
        f.debug_struct("Codec")
            .field("registered_event_types", &registered)
            .field("online", &self.schema_source.is_some())
            .field("cached_plans", &plans)
            .finish()
    }
}

/// Writes one event type with its registered schema.
struct EventWriter {
    schema_id: u32,
    schema: &'static EventSchema,
}

/// How to decode bodies written with one schema id.
struct DecodePlan {
    schema_id: u32,
    descriptor: &'static EventDescriptor,
    read: PlanReader,
}

enum PlanReader {
    /// Writer schema == this build's schema: serde straight from the bytes, with the datum
    /// schema of this build's type.
    Direct(&'static serde_avro_fast::Schema),
    /// Writer schema differs: resolve to this build's schema, then convert. `writer_only` reads
    /// without resolving, to tell a corrupt body from an unresolvable one when reading fails.
    /// Boxed: plans of other revisions are rare, and the direct plan is a pointer.
    Resolving {
        resolving: Box<GenericDatumReader<'static>>,
        writer_only: Box<GenericDatumReader<'static>>,
    },
}

impl Codec {
    /// Registers (or looks up) every event type's schema and returns a codec that fetches
    /// unknown writer schemas from the same registry.
    pub async fn connect(
        settings: SrSettings,
        mode: RegistrationMode,
    ) -> Result<Self, RegistryError> {
        let registered = register_catalogue(&settings, mode).await?;
        Ok(Self::new(Some(settings), &registered))
    }

    /// A codec for already-registered schema ids. With `settings` it fetches other writer
    /// schemas from the registry; without, it is offline (replays, benchmarks, tests) and
    /// reports any other id as unknown.
    pub fn new(settings: Option<SrSettings>, registered: &[RegisteredEvent]) -> Self {
        // Process-wide and set once; the first codec of a process sets it.
        apache_avro::util::max_allocation_bytes(MAX_DECODE_ALLOCATION);
        let mut writers: Vec<Option<EventWriter>> = EVENT_TYPES.iter().map(|_| None).collect();
        let mut plans = HashMap::new();
        for event in registered {
            let Some(schema) = catalogue().event(event.descriptor.full_name) else {
                continue;
            };
            writers[event.descriptor.index] = Some(EventWriter {
                schema_id: event.schema_id,
                schema,
            });
            // Our own schemas need no registry round trip to be read back.
            plans.insert(
                event.schema_id,
                build_plan(event.schema_id, &schema.schema).map(Arc::new),
            );
        }
        Self {
            writers,
            schema_source: settings.map(AvroDecoder::new),
            plans: RwLock::new(plans),
        }
    }

    /// The schema id events of this type are written with, if registered.
    pub fn schema_id(&self, descriptor: &EventDescriptor) -> Option<u32> {
        self.writers
            .get(descriptor.index)
            .and_then(Option::as_ref)
            .map(|writer| writer.schema_id)
    }

    /// Encodes `event` into `out` (cleared first) in the Confluent wire format.
    pub fn encode(&self, event: &Event, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let descriptor = event.descriptor();
        let Some(Some(writer)) = self.writers.get(descriptor.index) else {
            return Err(EncodeError::Unregistered {
                event_type: descriptor.name,
            });
        };
        out.clear();
        out.push(0);
        out.extend_from_slice(&writer.schema_id.to_be_bytes());
        event
            .write_datum(&writer.schema.datum, out)
            .map_err(|error| EncodeError::Serialization {
                event_type: descriptor.name,
                reason: error.to_string(),
            })
    }

    /// Encodes `event` into a new buffer.
    pub fn encode_to_vec(&self, event: &Event) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(256);
        self.encode(event, &mut out)?;
        Ok(out)
    }

    /// Decodes a Confluent-framed payload into an event, fetching the writer's schema from the
    /// registry the first time its id is seen.
    pub async fn decode(&self, payload: &[u8]) -> Result<Event, DecodeError> {
        let (schema_id, body) = split_frame(payload)?;
        let cached = self.cached_plan(schema_id);
        let plan = match cached {
            Some(plan) => plan?,
            None => self.load_plan(schema_id).await?,
        };
        plan.decode(body)
    }

    /// Makes `schema` the writer schema of `schema_id`, as if fetched from the registry. For
    /// offline codecs that replay recorded topics, and for tests of schema evolution.
    pub fn add_writer_schema(&self, schema_id: u32, schema: &Schema) {
        let plan = build_plan(schema_id, leak(schema.clone())).map(Arc::new);
        self.insert_plan(schema_id, plan);
    }

    fn cached_plan(&self, schema_id: u32) -> Option<Result<Arc<DecodePlan>, DecodeError>> {
        let plans = self
            .plans
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        plans.get(&schema_id).cloned()
    }

    fn insert_plan(&self, schema_id: u32, plan: Result<Arc<DecodePlan>, DecodeError>) {
        let mut plans = self
            .plans
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        plans.insert(schema_id, plan);
    }

    async fn load_plan(&self, schema_id: u32) -> Result<Arc<DecodePlan>, DecodeError> {
        let Some(source) = &self.schema_source else {
            return Err(DecodeError::UnknownSchemaId { schema_id });
        };
        let fetched = match source.get_schema(schema_id).await {
            Ok(fetched) => fetched,
            Err(error) if registry_error_code(&error) == Some(40403) => {
                return Err(DecodeError::UnknownSchemaId { schema_id });
            }
            Err(error) => {
                // Nothing here is the message's fault (network, 5xx, credentials, a registry
                // answer that does not parse), so the caller retries. The registry client keeps
                // non-retriable errors in its cache; drop them so the retry asks again.
                let retriable = is_registry_unavailable(&error);
                if !retriable {
                    source.remove_errors_from_cache();
                }
                tracing::warn!(schema_id, retriable, %error, "schema registry lookup failed");
                return Err(DecodeError::RegistryUnavailable {
                    schema_id,
                    reason: error.to_string(),
                });
            }
        };
        // One leaked schema per distinct writer schema id the registry knows: readers need a
        // `'static` schema to be cached, and ids are few (one per registered version).
        let plan = build_plan(schema_id, leak(fetched.parsed.clone())).map(Arc::new);
        self.insert_plan(schema_id, plan.clone());
        plan
    }
}

impl DecodePlan {
    fn decode(&self, body: &[u8]) -> Result<Event, DecodeError> {
        let malformed = |reason: String| DecodeError::MalformedBody {
            schema_id: self.schema_id,
            event_type: self.descriptor.name,
            reason,
        };
        let mut rest = body;
        let event = match &self.read {
            PlanReader::Direct(schema) => (self.descriptor.read_datum)(&mut rest, schema)
                .map_err(|error| malformed(error.to_string()))?,
            PlanReader::Resolving {
                resolving,
                writer_only,
            } => {
                let value = match resolving.read_value(&mut rest) {
                    Ok(value) => value,
                    Err(error) => {
                        // Corrupt body, or a value this build cannot represent (e.g. an enum
                        // symbol with no default)? Reading without resolving tells them apart.
                        return Err(if writer_only.read_value(&mut &body[..]).is_ok() {
                            DecodeError::IncompatibleReader {
                                schema_id: self.schema_id,
                                event_type: self.descriptor.name,
                                reason: error.to_string(),
                            }
                        } else {
                            malformed(error.to_string())
                        });
                    }
                };
                (self.descriptor.from_value)(&value)
                    .map_err(|error| malformed(error.to_string()))?
            }
        };
        if !rest.is_empty() {
            return Err(malformed(format!(
                "{} bytes left after the record",
                rest.len()
            )));
        }
        Ok(event)
    }
}

/// Splits a payload into schema id and Avro body.
pub fn split_frame(payload: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    match get_bytes_result(Some(payload)) {
        BytesResult::Valid(schema_id, body) => Ok((schema_id, body)),
        BytesResult::Null | BytesResult::Invalid(_) => Err(DecodeError::NotConfluentFraming {
            len: payload.len(),
            first_byte: payload.first().copied(),
        }),
    }
}

fn leak(schema: Schema) -> &'static Schema {
    Box::leak(Box::new(schema))
}

/// Decides how bodies written with `writer` are read into this build's types.
fn build_plan(schema_id: u32, writer: &'static Schema) -> Result<DecodePlan, DecodeError> {
    let record_name = writer
        .name()
        .map(|name| name.fullname(None))
        .unwrap_or_else(|| format!("a non-record schema ({writer:?})"));
    let Some(reader_schema) = catalogue().event(&record_name) else {
        return Err(DecodeError::UnknownEventType {
            schema_id,
            record_name,
        });
    };
    let descriptor = reader_schema.descriptor;
    let reader: &'static Schema = &reader_schema.schema;
    let datum_reader: &'static serde_avro_fast::Schema = &reader_schema.datum;
    let incompatible = |reason: String| DecodeError::IncompatibleReader {
        schema_id,
        event_type: descriptor.name,
        reason,
    };

    // Parsing canonical form keeps everything that decides the binary layout and drops docs and
    // defaults, which do not: equal forms mean the bytes map 1:1 onto this build's type.
    let read = if writer.canonical_form() == reader.canonical_form() {
        PlanReader::Direct(datum_reader)
    } else {
        // Partial compatibility (e.g. a union branch this build lacks) is accepted: only the
        // records that use the missing part fail, each with its own error.
        SchemaCompatibility::can_read(writer, reader)
            .map_err(|error| incompatible(error.to_string()))?;
        PlanReader::Resolving {
            resolving: Box::new(
                GenericDatumReader::builder(writer)
                    .reader_schema(reader)
                    .build()
                    .map_err(|error| incompatible(error.to_string()))?,
            ),
            writer_only: Box::new(
                GenericDatumReader::builder(writer)
                    .build()
                    .map_err(|error| incompatible(error.to_string()))?,
            ),
        }
    };
    Ok(DecodePlan {
        schema_id,
        descriptor,
        read,
    })
}
