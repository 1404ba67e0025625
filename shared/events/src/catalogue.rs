//! The Avro schemas of `schemas/`, embedded at compile time and composed into the self-contained
//! schema of each event type that producers register.
//!
//! `schemas/` holds one named type per file and refers to other files' types by full name (the
//! way data teams read them). The Schema Registry gets one self-contained schema per event type:
//! each referenced type is inlined at its first use, in document order, which is where Avro
//! requires a named type to be defined. This keeps the registry free of schema references (which
//! not every client handles), while the shared types still evolve in one place.

use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

use apache_avro::Schema;
use serde_json::Value as Json;

use crate::event::{EVENT_TYPES, EventDescriptor};

/// Every file of `schemas/`, by path below it. A test fails if a file is missing here.
macro_rules! schema_files {
    ($($path:literal),* $(,)?) => {
        &[$( ($path, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/", $path))), )*]
    };
}

/// `(path below schemas/, file text)` of every schema file.
pub static SCHEMA_FILES: &[(&str, &str)] = schema_files![
    "common/Address.avsc",
    "common/Customer.avsc",
    "common/DeliverySpeed.avsc",
    "common/Envelope.avsc",
    "common/Money.avsc",
    "common/StockLine.avsc",
    "storefront/OrderLine.avsc",
    "storefront/OrderPlaced.avsc",
    "payments/PaymentAuthorized.avsc",
    "payments/PaymentFailed.avsc",
    "warehouse/StockAdjusted.avsc",
    "inventory/LowStock.avsc",
    "inventory/ShortLine.avsc",
    "inventory/SkuCommand.avsc",
    "inventory/SkuHoldAnswered.avsc",
    "inventory/StockRejected.avsc",
    "inventory/StockReleased.avsc",
    "inventory/StockReserved.avsc",
    "fraud/FraudCheckRequested.avsc",
    "fraud/FraudCleared.avsc",
    "fraud/FraudFlagged.avsc",
    "fraud/FraudSignal.avsc",
    "fulfilment/CancellationReason.avsc",
    "fulfilment/FulfilmentStarted.avsc",
    "fulfilment/OrderCancelled.avsc",
    "fulfilment/OrderPacked.avsc",
    "shipping/ShipmentCreated.avsc",
    "shipping/ShippingLabel.avsc",
    "notification/NotificationChannel.avsc",
    "notification/NotificationFailed.avsc",
    "notification/NotificationKind.avsc",
    "notification/NotificationSent.avsc",
];

/// Why a catalogue is unusable. For the embedded one, always a defect in `schemas/` or in the
/// Rust event list, caught by this crate's tests; for files read at run time
/// ([`Catalogue::from_files`], e.g. an operator checking an edited `schemas/` folder), a defect
/// in those files.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("schema file {path} is not JSON: {source}")]
    NotJson {
        path: String,
        source: serde_json::Error,
    },
    #[error("schema file {path} does not define one named type with a name and namespace")]
    NotNamed { path: String },
    #[error("schema file {path} defines {full_name}, which another file also defines")]
    Duplicate { path: String, full_name: String },
    #[error("event type {full_name} has no schema file")]
    MissingEvent { full_name: &'static str },
    #[error("composed schema of {full_name} does not parse: {source}")]
    Invalid {
        full_name: &'static str,
        source: Box<apache_avro::Error>,
    },
    #[error("composed schema of {full_name} does not parse for the datum codec: {source}")]
    InvalidForDatum {
        full_name: &'static str,
        source: serde_avro_fast::schema::SchemaError,
    },
}

/// A named type as written in one file of `schemas/`.
#[derive(Debug, Clone)]
pub struct NamedSchema {
    /// Path below `schemas/`.
    pub path: String,
    /// The file's JSON.
    pub json: Json,
}

/// An event type's self-contained schema.
#[derive(Debug)]
pub struct EventSchema {
    /// The event type.
    pub descriptor: &'static EventDescriptor,
    /// The composed schema text, as registered.
    pub text: String,
    /// The composed schema, parsed.
    pub schema: Schema,
    /// The same schema, parsed for the per-record datum reader and writer
    /// ([`EventDescriptor::read_datum`], [`Event::write_datum`](crate::Event::write_datum)).
    pub datum: serde_avro_fast::Schema,
}

/// All schemas: the named types as written, and each event type's composed schema.
#[derive(Debug)]
pub struct Catalogue {
    named: BTreeMap<String, NamedSchema>,
    events: Vec<EventSchema>,
}

impl Catalogue {
    /// Parses and composes the embedded schemas.
    pub fn load() -> Result<Self, CatalogueError> {
        Self::from_files(SCHEMA_FILES.iter().copied())
    }

    /// Parses and composes the event types' schemas from `(path below schemas/, file text)`
    /// pairs read elsewhere, e.g. an edited `schemas/` folder whose compatibility an operator
    /// checks before a release. Every event type of this build must have its file.
    pub fn from_files<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, CatalogueError> {
        let mut named = BTreeMap::new();
        for (path, text) in files {
            let json: Json =
                serde_json::from_str(text).map_err(|source| CatalogueError::NotJson {
                    path: path.to_owned(),
                    source,
                })?;
            let full_name = full_name_of(&json).ok_or_else(|| CatalogueError::NotNamed {
                path: path.to_owned(),
            })?;
            if named.contains_key(&full_name) {
                return Err(CatalogueError::Duplicate {
                    path: path.to_owned(),
                    full_name,
                });
            }
            let path = path.to_owned();
            named.insert(full_name, NamedSchema { path, json });
        }

        let mut events = Vec::with_capacity(EVENT_TYPES.len());
        for descriptor in EVENT_TYPES {
            let full_name = descriptor.full_name;
            if !named.contains_key(full_name) {
                return Err(CatalogueError::MissingEvent { full_name });
            }
            let mut defined = HashSet::new();
            let composed =
                inline_references(Json::String(full_name.to_owned()), &named, &mut defined);
            let text = composed.to_string();
            let schema = Schema::parse_str(&text).map_err(|source| CatalogueError::Invalid {
                full_name,
                source: Box::new(source),
            })?;
            let datum = text
                .parse()
                .map_err(|source| CatalogueError::InvalidForDatum { full_name, source })?;
            events.push(EventSchema {
                descriptor,
                text,
                schema,
                datum,
            });
        }
        Ok(Self { named, events })
    }

    /// Every event type's composed schema, in catalogue order.
    pub fn events(&self) -> &[EventSchema] {
        &self.events
    }

    /// The composed schema of the event type with this Avro full name.
    pub fn event(&self, full_name: &str) -> Option<&EventSchema> {
        self.events
            .iter()
            .find(|event| event.descriptor.full_name == full_name)
    }

    /// Every named type as written in `schemas/`, by full name.
    pub fn named_types(&self) -> &BTreeMap<String, NamedSchema> {
        &self.named
    }
}

/// The embedded catalogue, loaded once per process.
///
/// # Panics
/// If the embedded schemas are inconsistent, which this crate's tests rule out before a build
/// ships.
pub fn catalogue() -> &'static Catalogue {
    static CATALOGUE: LazyLock<Catalogue> = LazyLock::new(|| {
        Catalogue::load()
            .unwrap_or_else(|error| panic!("embedded schema catalogue is broken: {error}"))
    });
    &CATALOGUE
}

/// `namespace.name` of a file's top-level named type.
fn full_name_of(json: &Json) -> Option<String> {
    let name = json.get("name")?.as_str()?;
    let namespace = json.get("namespace")?.as_str()?;
    Some(format!("{namespace}.{name}"))
}

/// Replaces the first use of each catalogue type's full name with its definition.
///
/// Only the keys that can hold a type (`type`, `items`, `values`, `fields`, union arrays) are
/// walked, so a string default that happens to equal a type name is left alone. References must
/// be full names; a short name is not inlined and the composed schema then fails to parse.
fn inline_references(
    json: Json,
    named: &BTreeMap<String, NamedSchema>,
    defined: &mut HashSet<String>,
) -> Json {
    match json {
        Json::String(name) => match named.get(&name) {
            Some(definition) if defined.insert(name.clone()) => {
                inline_references(definition.json.clone(), named, defined)
            }
            _ => Json::String(name),
        },
        Json::Array(items) => Json::Array(
            items
                .into_iter()
                .map(|item| inline_references(item, named, defined))
                .collect(),
        ),
        Json::Object(mut object) => {
            for key in ["type", "items", "values", "fields"] {
                if let Some(child) = object.remove(key) {
                    object.insert(key.to_owned(), inline_references(child, named, defined));
                }
            }
            Json::Object(object)
        }
        other => other,
    }
}
