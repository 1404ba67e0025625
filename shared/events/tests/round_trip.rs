//! Every event type round-trips through its composed schema, on both read paths the codec uses:
//! the datum path (writer schema == reader schema) and apache-avro's resolving `Value` path.
//! The datum writer's bytes are checked against apache-avro's writer, the reference encoder,
//! so the switch of per-record codec cannot change what is on the wire.

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use proptest::prelude::*;
use retail_events::{
    Event, EventType, catalogue, fraud, fulfilment, inventory, notification, payments, shipping,
    storefront, warehouse,
};

fn round_trip<E: EventType>(event: E) -> Result<(), TestCaseError> {
    let composed = catalogue().event(E::FULL_NAME).expect("event has a schema");
    let schema = &composed.schema;
    let reference_writer = GenericDatumWriter::builder(schema).build().expect("writer");
    let mut reference = Vec::new();
    reference_writer
        .write_ser(&mut reference, &event)
        .expect("apache-avro serialises the event against its own schema");

    let event: Event = event.into();
    let mut bytes = vec![0xAA];
    event
        .write_datum(&composed.datum, &mut bytes)
        .expect("event serialises against its own schema");
    prop_assert_eq!(bytes.first(), Some(&0xAA), "write_datum appends");
    let bytes = bytes.split_off(1);
    prop_assert_eq!(&bytes, &reference, "datum bytes differ from apache-avro's");

    let mut with_trailer = bytes.clone();
    with_trailer.extend_from_slice(b"next");
    let mut rest = with_trailer.as_slice();
    let direct = (event.descriptor().read_datum)(&mut rest, &composed.datum).expect("datum read");
    prop_assert_eq!(&direct, &event);
    prop_assert_eq!(
        rest,
        &b"next"[..],
        "the reader stops at the end of the datum"
    );

    let resolving_reader = GenericDatumReader::builder(schema)
        .reader_schema(schema)
        .build()
        .expect("reader");
    let value = resolving_reader
        .read_value(&mut bytes.as_slice())
        .expect("resolving read");
    let resolved = (event.descriptor().from_value)(&value).expect("from value");
    prop_assert_eq!(&resolved, &event);
    Ok(())
}

macro_rules! round_trip_tests {
    ($($test:ident: $type:ty;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            $(
                #[test]
                fn $test(event in any::<$type>()) {
                    round_trip(event)?;
                }
            )*
        }
    };
}

round_trip_tests! {
    order_placed: storefront::OrderPlaced;
    payment_authorized: payments::PaymentAuthorized;
    payment_failed: payments::PaymentFailed;
    stock_adjusted: warehouse::StockAdjusted;
    stock_reserved: inventory::StockReserved;
    stock_rejected: inventory::StockRejected;
    stock_released: inventory::StockReleased;
    low_stock: inventory::LowStock;
    sku_command: inventory::SkuCommand;
    sku_hold_answered: inventory::SkuHoldAnswered;
    fraud_check_requested: fraud::FraudCheckRequested;
    fraud_cleared: fraud::FraudCleared;
    fraud_flagged: fraud::FraudFlagged;
    fulfilment_started: fulfilment::FulfilmentStarted;
    order_packed: fulfilment::OrderPacked;
    order_cancelled: fulfilment::OrderCancelled;
    shipment_created: shipping::ShipmentCreated;
    notification_sent: notification::NotificationSent;
    notification_failed: notification::NotificationFailed;
}
