//! The codec without a registry: wire format, round trips of every event type, hostile input,
//! and schema evolution in both directions.

use apache_avro::Schema;
use apache_avro::types::{Record, Value};
use proptest::prelude::*;
use retail_codec::{Codec, DecodeError, EncodeError};
use retail_events::fulfilment::{CancellationReason, OrderCancelled};
use retail_events::{Envelope, Event, EventType, Timestamp, arbitrary_event, catalogue};

mod common;
use common::offline_codec;

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(future)
}

fn order_cancelled() -> OrderCancelled {
    let mut envelope = Envelope::originating::<OrderCancelled>(
        "order-1",
        "fulfilment",
        Timestamp::from_micros(1_700_000_000_000_000),
    );
    envelope.event_id = "5f0c1b8e-2a44-4c1e-9d3a-7b6e0f1a2c3d"
        .parse()
        .expect("uuid");
    OrderCancelled {
        envelope,
        order_id: "order-1".into(),
        customer_id: "customer-9".into(),
        reason: CancellationReason::Timeout,
        detail: "no payment answer within 15 minutes".into(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_event_round_trips_in_the_confluent_wire_format(event in arbitrary_event()) {
        let codec = offline_codec();
        let bytes = codec.encode_to_vec(&event).expect("encodes");
        let schema_id = 101 + event.descriptor().index as u32;
        prop_assert_eq!(bytes[0], 0);
        prop_assert_eq!(&bytes[1..5], &schema_id.to_be_bytes());
        let decoded = block_on(codec.decode(&bytes)).expect("decodes");
        prop_assert_eq!(decoded, event);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = block_on(offline_codec().decode(&bytes));
    }

    #[test]
    fn corrupted_or_truncated_valid_payloads_fail_cleanly(
        event in arbitrary_event(),
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let codec = offline_codec();
        let bytes = codec.encode_to_vec(&event).expect("encodes");

        let truncated = &bytes[..cut.index(bytes.len())];
        let error = block_on(codec.decode(truncated)).expect_err("a truncated payload never decodes");
        prop_assert!(error.is_message_fault(), "{error}");

        let mut corrupted = bytes.clone();
        for (position, value) in flips {
            let index = position.index(corrupted.len());
            corrupted[index] = value;
        }
        // Corruption may by chance still be a valid record; it must never panic, and an error
        // must be a message fault (the offline codec has no registry to blame).
        if let Err(error) = block_on(codec.decode(&corrupted)) {
            prop_assert!(error.is_message_fault(), "{error}");
        }
    }
}

#[test]
fn framing_errors_are_typed() {
    let codec = offline_codec();
    assert_eq!(
        block_on(codec.decode(&[])),
        Err(DecodeError::NotConfluentFraming {
            len: 0,
            first_byte: None
        })
    );
    assert_eq!(
        block_on(codec.decode(&[0, 0, 0])),
        Err(DecodeError::NotConfluentFraming {
            len: 3,
            first_byte: Some(0)
        })
    );
    assert_eq!(
        block_on(codec.decode(br#"{"order_id":"1"}"#)),
        Err(DecodeError::NotConfluentFraming {
            len: 16,
            first_byte: Some(b'{')
        })
    );
    assert_eq!(
        block_on(codec.decode(&[0, 0, 0, 0, 7, 2])),
        Err(DecodeError::UnknownSchemaId { schema_id: 7 })
    );
}

#[test]
fn trailing_and_missing_bytes_are_malformed_bodies() {
    let codec = offline_codec();
    let event: Event = order_cancelled().into();
    let mut bytes = codec.encode_to_vec(&event).expect("encodes");
    let schema_id = codec.schema_id(event.descriptor()).expect("registered");

    bytes.push(0x42);
    let Err(DecodeError::MalformedBody {
        schema_id: id,
        event_type,
        reason,
    }) = block_on(codec.decode(&bytes))
    else {
        panic!("trailing byte accepted");
    };
    assert_eq!((id, event_type), (schema_id, "OrderCancelled"));
    assert!(reason.contains("1 bytes left"), "{reason}");

    bytes.truncate(bytes.len() - 4);
    assert!(matches!(
        block_on(codec.decode(&bytes)),
        Err(DecodeError::MalformedBody {
            event_type: "OrderCancelled",
            ..
        })
    ));
}

#[test]
fn encoding_an_unregistered_type_is_an_error() {
    let codec = Codec::new(None, &[]);
    assert_eq!(
        codec.encode_to_vec(&order_cancelled().into()),
        Err(EncodeError::Unregistered {
            event_type: "OrderCancelled"
        })
    );
}

/// OrderCancelled revision 2: a new enum symbol and a new field with a default.
fn order_cancelled_v2() -> Schema {
    let v1 = &catalogue()
        .event(OrderCancelled::FULL_NAME)
        .expect("schema")
        .text;
    let v2 = v1
        .replace(r#""TIMEOUT"]"#, r#""TIMEOUT","CUSTOMER_REQUEST"]"#)
        .replace(
            r#"{"doc":"Human-readable explanation for support staff.","name":"detail","type":"string"}"#,
            r#"{"doc":"Human-readable explanation for support staff.","name":"detail","type":"string"},{"name":"refund_minor","type":"long","default":0}"#,
        );
    assert_ne!(&v2, v1);
    assert!(
        v2.contains("refund_minor") && v2.contains("CUSTOMER_REQUEST"),
        "edit did not apply: {v2}"
    );
    Schema::parse_str(&v2).expect("v2 parses")
}

fn write_v2(schema: &Schema, reason: (u32, &str)) -> Vec<u8> {
    let v1 = order_cancelled();
    let envelope = apache_avro::to_value(&v1.envelope).expect("envelope value");
    let mut record = Record::new(schema).expect("record schema");
    record.put("envelope", envelope);
    record.put("order_id", v1.order_id.as_str());
    record.put("customer_id", v1.customer_id.as_str());
    record.put("reason", Value::Enum(reason.0, reason.1.to_owned()));
    record.put("detail", v1.detail.as_str());
    record.put("refund_minor", Value::Long(1999));
    let body = apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .and_then(|writer| writer.write_value_to_vec(record))
        .expect("v2 datum");
    let mut payload = vec![0, 0, 0, 0, 200];
    payload.extend_from_slice(&body);
    payload
}

#[test]
fn a_v1_reader_decodes_events_written_with_v2() {
    let codec = offline_codec();
    let v2 = order_cancelled_v2();
    codec.add_writer_schema(200, &v2);

    let decoded = block_on(codec.decode(&write_v2(&v2, (4, "TIMEOUT"))))
        .expect("v2 decodes with the v1 reader");
    assert_eq!(decoded, Event::OrderCancelled(order_cancelled()));

    // A symbol this build does not know reads as the enum's default.
    let Event::OrderCancelled(unknown) =
        block_on(codec.decode(&write_v2(&v2, (5, "CUSTOMER_REQUEST")))).expect("decodes")
    else {
        panic!("wrong type");
    };
    assert_eq!(unknown.reason, CancellationReason::Unknown);
}

#[test]
fn a_v2_reader_decodes_events_written_with_v1_filling_defaults() {
    let codec = offline_codec();
    let event: Event = order_cancelled().into();
    let payload = codec.encode_to_vec(&event).expect("encodes");
    let v1 = &catalogue()
        .event(OrderCancelled::FULL_NAME)
        .expect("schema")
        .schema;
    let v2 = order_cancelled_v2();

    let reader = apache_avro::reader::datum::GenericDatumReader::builder(v1)
        .reader_schema(&v2)
        .build()
        .expect("reader");
    let Value::Record(fields) = reader
        .read_value(&mut &payload[5..])
        .expect("v1 bytes read as v2")
    else {
        panic!("not a record");
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.clone())
    };
    assert_eq!(field("refund_minor"), Some(Value::Long(0)));
    assert_eq!(field("reason"), Some(Value::Enum(4, "TIMEOUT".into())));
    assert!(apache_avro::schema_compatibility::SchemaCompatibility::mutual_read(v1, &v2).is_ok());
}

#[test]
fn an_incompatible_writer_schema_is_reported_as_such() {
    let codec = offline_codec();
    let v1 = &catalogue()
        .event(OrderCancelled::FULL_NAME)
        .expect("schema")
        .text;
    let broken = Schema::parse_str(&v1.replace(
        r#""name":"order_id","type":"string""#,
        r#""name":"order_id","type":"long""#,
    ))
    .expect("parses");
    codec.add_writer_schema(300, &broken);
    let error = block_on(codec.decode(&[0, 0, 0, 1, 44, 0])).expect_err("incompatible");
    assert!(
        matches!(
            error,
            DecodeError::IncompatibleReader {
                schema_id: 300,
                event_type: "OrderCancelled",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.class(), "incompatible_reader");
    assert!(!error.is_retriable());
}

#[test]
fn a_record_outside_the_catalogue_is_an_unknown_event_type() {
    let codec = offline_codec();
    let other = Schema::parse_str(r#"{"type":"record","name":"Heartbeat","namespace":"ops","fields":[{"name":"beat","type":"long"}]}"#)
        .expect("parses");
    codec.add_writer_schema(400, &other);
    assert_eq!(
        block_on(codec.decode(&[0, 0, 0, 1, 144, 6])),
        Err(DecodeError::UnknownEventType {
            schema_id: 400,
            record_name: "ops.Heartbeat".into()
        })
    );
}

#[test]
fn a_hostile_length_prefix_is_refused_without_allocating_it() {
    let codec = offline_codec();
    let event: Event = order_cancelled().into();
    let mut payload = codec.encode_to_vec(&event).expect("encodes")[..5].to_vec();
    // The envelope's first field is a string: claim it is 2^40 bytes long (zig-zag varint).
    let mut length: u64 = (1u64 << 40) << 1;
    while length >= 0x80 {
        payload.push((length as u8 & 0x7f) | 0x80);
        length >>= 7;
    }
    payload.push(length as u8);
    payload.extend_from_slice(b"abc");
    let error = block_on(codec.decode(&payload)).expect_err("refused");
    assert!(
        matches!(error, DecodeError::MalformedBody { .. }),
        "{error:?}"
    );
}
