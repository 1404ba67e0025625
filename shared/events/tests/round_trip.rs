//! Every event type round-trips through its composed schema, on both read paths the codec uses:
//! the direct serde path (writer schema == reader schema) and the resolving `Value` path.

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use proptest::prelude::*;
use retail_events::{
    Event, EventType, catalogue, fraud, fulfilment, inventory, notification, payments, shipping,
    storefront, warehouse,
};

fn round_trip<E: EventType>(event: E) -> Result<(), TestCaseError> {
    let schema = &catalogue()
        .event(E::FULL_NAME)
        .expect("event has a schema")
        .schema;
    let event: Event = event.into();
    let writer = GenericDatumWriter::builder(schema).build().expect("writer");
    let mut bytes = Vec::new();
    event
        .write_avro(&writer, &mut bytes)
        .expect("event serialises against its own schema");

    let direct_reader = GenericDatumReader::builder(schema).build().expect("reader");
    let mut rest = bytes.as_slice();
    let direct = (event.descriptor().read_direct)(&direct_reader, &mut rest).expect("direct read");
    prop_assert_eq!(&direct, &event);
    prop_assert!(rest.is_empty(), "{} bytes left over", rest.len());

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
    fraud_cleared: fraud::FraudCleared;
    fraud_flagged: fraud::FraudFlagged;
    fulfilment_started: fulfilment::FulfilmentStarted;
    order_packed: fulfilment::OrderPacked;
    order_cancelled: fulfilment::OrderCancelled;
    shipment_created: shipping::ShipmentCreated;
    notification_sent: notification::NotificationSent;
    notification_failed: notification::NotificationFailed;
}
