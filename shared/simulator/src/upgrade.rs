//! A storefront upgraded mid-run (`--order-schema-v2-from`): from a given order on, `OrderPlaced`
//! is written with the next revision of its schema, registered under the same subject. Revision
//! 2 adds an optional `gift_message` (default null), a change the catalogue's evolution rules
//! allow (`schemas/README.md`). Consumers built against revision 1 read it through schema
//! resolution and never see the new field.

use apache_avro::Schema;
use apache_avro::types::Value;
use retail_codec::{RegistryError, SrSettings};
use retail_events::storefront::OrderPlaced;
use retail_events::{EventType, catalogue};

/// The revision this module writes.
pub const REVISION: i64 = 2;

/// The added field.
pub const GIFT_MESSAGE: &str = "gift_message";

/// Why revision 2 could not be built or written.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The catalogue's `OrderPlaced` schema is not the JSON object this module extends.
    #[error("extending the OrderPlaced schema: {0}")]
    Schema(String),
    /// The registry refused revision 2 or could not be reached.
    #[error("registering OrderPlaced revision 2: {0}")]
    Registry(#[from] RegistryError),
    /// An order did not fit revision 2.
    #[error("writing an OrderPlaced with revision 2: {0}")]
    Write(String),
}

/// Revision 2 of `OrderPlaced`: the catalogue's revision 1 with `gift_message` appended.
///
/// # Errors
/// The catalogue's schema text is not a record schema.
pub fn schema_text() -> Result<String, UpgradeError> {
    let v1 = &revision_1()?.text;
    let mut schema: serde_json::Value =
        serde_json::from_str(v1).map_err(|error| UpgradeError::Schema(error.to_string()))?;
    let record = schema
        .as_object_mut()
        .ok_or_else(|| UpgradeError::Schema("not a JSON object".into()))?;
    record
        .get_mut("fields")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or_else(|| UpgradeError::Schema("no fields".into()))?
        .push(serde_json::json!({
            "name": GIFT_MESSAGE,
            "type": ["null", "string"],
            "default": null,
            "doc": "A message to print on the packing slip, if the customer wrote one (revision 2)."
        }));
    record.insert("revision".into(), REVISION.into());
    Ok(schema.to_string())
}

/// Writes `OrderPlaced` records with revision 2.
#[derive(Debug)]
pub struct OrderPlacedV2 {
    schema: Schema,
    schema_id: u32,
}

impl OrderPlacedV2 {
    /// Registers revision 2 under `OrderPlaced`'s subject (the registry's compatibility check
    /// applies) and returns a writer for it.
    ///
    /// # Errors
    /// The schema cannot be built, or the registry refuses it or is unreachable.
    pub async fn register(settings: &SrSettings) -> Result<Self, UpgradeError> {
        let text = schema_text()?;
        let schema =
            Schema::parse_str(&text).map_err(|error| UpgradeError::Schema(error.to_string()))?;
        let subject = revision_1()?.descriptor.subject();
        let schema_id = retail_codec::register(settings, &subject, &text).await?;
        tracing::info!(subject = %subject, schema_id, "OrderPlaced revision 2 registered");
        Ok(Self { schema, schema_id })
    }

    /// The Confluent-framed record of `order`, written with revision 2, with a gift message.
    ///
    /// # Errors
    /// The order does not fit the schema (a defect).
    pub fn encode(&self, order: &OrderPlaced) -> Result<Vec<u8>, UpgradeError> {
        let write = |error: apache_avro::Error| UpgradeError::Write(error.to_string());
        let Value::Record(mut fields) = apache_avro::to_value(order).map_err(write)? else {
            return Err(UpgradeError::Write("an order is not a record".into()));
        };
        fields.push((
            GIFT_MESSAGE.to_owned(),
            Value::Union(
                1,
                Box::new(Value::String(format!(
                    "Enjoy it! (order {})",
                    order.order_id
                ))),
            ),
        ));
        let value = Value::Record(fields).resolve(&self.schema).map_err(write)?;
        let body = apache_avro::writer::datum::GenericDatumWriter::builder(&self.schema)
            .build()
            .and_then(|writer| writer.write_value_to_vec(value))
            .map_err(write)?;
        let mut framed = Vec::with_capacity(retail_codec::HEADER_LEN + body.len());
        framed.push(0);
        framed.extend_from_slice(&self.schema_id.to_be_bytes());
        framed.extend_from_slice(&body);
        Ok(framed)
    }
}

/// The catalogue's `OrderPlaced`: revision 1, its text and its subject.
fn revision_1() -> Result<&'static retail_events::EventSchema, UpgradeError> {
    catalogue()
        .event(OrderPlaced::FULL_NAME)
        .ok_or_else(|| UpgradeError::Schema("OrderPlaced is not in the catalogue".into()))
}

#[cfg(test)]
mod tests {
    use apache_avro::reader::datum::GenericDatumReader;
    use retail_events::Timestamp;

    use super::*;
    use crate::plan::{MixRates, PlanSettings, generate};

    #[test]
    fn a_revision_2_record_reads_back_as_the_order_with_a_revision_1_reader() {
        let settings = PlanSettings {
            orders: 5,
            rate_per_second: 10.0,
            mix: MixRates {
                payment_failure: 0.0,
                fraud: 0.0,
                out_of_stock: 0.0,
                missing_payment: 0.0,
                scarce: 0.0,
            },
            payment_delay_min: std::time::Duration::from_millis(1),
            payment_delay_max: std::time::Duration::from_millis(2),
            ample_margin: 5,
        };
        let order = generate(&settings, 3).orders[0].order_placed(Timestamp::from_micros(1));
        let v2 = Schema::parse_str(&schema_text().expect("v2")).expect("parses");
        let writer = OrderPlacedV2 {
            schema: v2.clone(),
            schema_id: 77,
        };
        let framed = writer.encode(&order).expect("encodes");
        assert_eq!(framed[..5], [0, 0, 0, 0, 77]);
        let body = &mut &framed[5..];

        let as_v2 = GenericDatumReader::builder(&v2)
            .build()
            .and_then(|reader| reader.read_value(&mut &framed[5..]))
            .expect("reads as revision 2");
        let Value::Record(fields) = as_v2 else {
            panic!("a record");
        };
        assert_eq!(
            fields.last(),
            Some(&(
                GIFT_MESSAGE.to_owned(),
                Value::Union(
                    1,
                    Box::new(Value::String(format!(
                        "Enjoy it! (order {})",
                        order.order_id
                    )))
                )
            ))
        );

        let v1 = &catalogue()
            .event(OrderPlaced::FULL_NAME)
            .expect("v1")
            .schema;
        let resolved = GenericDatumReader::builder(&v2)
            .reader_schema(v1)
            .build()
            .and_then(|reader| reader.read_value(body))
            .expect("resolves to revision 1");
        let read: OrderPlaced = apache_avro::from_value(&resolved).expect("an OrderPlaced");
        assert_eq!(read, order);
        assert!(body.is_empty(), "the whole body is read");
    }

    #[test]
    fn revision_2_appends_an_optional_field_with_a_default_and_resolves_to_revision_1() {
        let v2 = Schema::parse_str(&schema_text().expect("v2")).expect("parses");
        let v1 = &catalogue()
            .event(OrderPlaced::FULL_NAME)
            .expect("v1")
            .schema;
        let Schema::Record(record) = &v2 else {
            panic!("a record");
        };
        let added = record.fields.last().expect("fields");
        assert_eq!(added.name, GIFT_MESSAGE);
        assert_eq!(added.default, Some(serde_json::Value::Null));
        // Both directions: readers of either revision read the other's records.
        apache_avro::schema_compatibility::SchemaCompatibility::can_read(&v2, v1)
            .expect("a revision 1 reader reads revision 2");
        apache_avro::schema_compatibility::SchemaCompatibility::can_read(v1, &v2)
            .expect("a revision 2 reader reads revision 1");
    }
}
