//! The codec against the live schema registry and broker: every event type of `schemas/` is
//! registered, produced, consumed and decoded by a codec that knows nothing but the registry's
//! address; evolution goes through the registry's compatibility check; registry faults are typed.

use std::time::Duration;

use apache_avro::Schema;
use apache_avro::types::{Record, Value};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use retail_codec::{Codec, DecodeError, RegistrationMode, RegistryError, registry_settings};
use retail_events::fulfilment::{CancellationReason, OrderCancelled};
use retail_events::{
    EVENT_TYPES, Envelope, Event, EventType, Timestamp, arbitrary_event, catalogue,
};
use retail_integration_tests::{
    DevRegistry, TIMEOUT, consumer, create_topic, producer, schema_registry_url, unique_name,
};
use schema_registry_converter::async_impl::schema_registry::post_schema;
use schema_registry_converter::schema_registry_common::{RawError, SchemaType, SuppliedSchema};

fn settings() -> retail_codec::SrSettings {
    registry_settings(&schema_registry_url(), None, Duration::from_secs(10))
        .expect("registry settings")
}

/// One arbitrary event of every type, the same on every run.
fn one_event_of_each_type() -> Vec<Event> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let mut events: Vec<Option<Event>> = EVENT_TYPES.iter().map(|_| None).collect();
    while events.iter().any(Option::is_none) {
        let event = arbitrary_event()
            .new_tree(&mut runner)
            .expect("strategy")
            .current();
        let index = event.descriptor().index;
        events[index].get_or_insert(event);
    }
    events.into_iter().flatten().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_type_is_registered_and_round_trips_through_the_broker() {
    let writer = Codec::connect(settings(), RegistrationMode::Register)
        .await
        .expect("register catalogue");
    // Registration is idempotent: a second start gets the same ids.
    let again = Codec::connect(settings(), RegistrationMode::Register)
        .await
        .expect("register again");
    let looked_up = Codec::connect(settings(), RegistrationMode::LookupOnly)
        .await
        .expect("look up");
    for descriptor in EVENT_TYPES {
        let id = writer.schema_id(descriptor).expect("registered");
        assert_eq!(again.schema_id(descriptor), Some(id), "{}", descriptor.name);
        assert_eq!(
            looked_up.schema_id(descriptor),
            Some(id),
            "{}",
            descriptor.name
        );
    }

    let topic = unique_name("codec-all-events");
    create_topic(&topic, 3, &[]).await;
    let producer = producer();
    let events = one_event_of_each_type();
    assert_eq!(events.len(), EVENT_TYPES.len());
    let mut buffer = Vec::new();
    for event in &events {
        writer.encode(event, &mut buffer).expect("encode");
        producer
            .send(
                FutureRecord::to(&topic).key(event.key()).payload(&buffer),
                TIMEOUT,
            )
            .await
            .expect("delivered");
    }

    // This codec registered nothing: every writer schema comes from the registry by id.
    let reader = Codec::new(Some(settings()), &[]);
    let consumer = consumer(&unique_name("group"));
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut decoded = Vec::new();
    while decoded.len() < events.len() {
        let message = tokio::time::timeout(TIMEOUT, consumer.recv())
            .await
            .expect("in time")
            .expect("record");
        let event = reader
            .decode(message.payload().expect("payload"))
            .await
            .expect("decodes");
        assert_eq!(message.key(), Some(event.key().as_bytes()));
        decoded.push(event);
    }
    decoded.sort_by_key(|event| event.descriptor().index);
    assert_eq!(decoded, events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subjects_follow_the_topic_record_name_strategy() {
    Codec::connect(settings(), RegistrationMode::Register)
        .await
        .expect("register catalogue");
    let subjects: Vec<String> = reqwest::get(format!("{}/subjects", schema_registry_url()))
        .await
        .expect("GET /subjects")
        .json()
        .await
        .expect("JSON list");
    for descriptor in EVENT_TYPES {
        let subject = format!("{}-{}", descriptor.topic.name(), descriptor.full_name);
        assert!(
            subjects.contains(&subject),
            "{subject} missing from {subjects:?}"
        );
    }
}

fn order_cancelled() -> OrderCancelled {
    OrderCancelled {
        envelope: Envelope::originating::<OrderCancelled>(
            "order-7",
            "fulfilment",
            Timestamp::from_micros(1_700_000_000_000_000),
        ),
        order_id: "order-7".into(),
        customer_id: "customer-7".into(),
        reason: CancellationReason::PaymentFailed,
        detail: "card declined".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_writer_registered_as_compatible_is_read_by_this_build() {
    let v1 = catalogue()
        .event(OrderCancelled::FULL_NAME)
        .expect("schema")
        .text
        .clone();
    let v2 = v1
        .replace(r#""TIMEOUT"]"#, r#""TIMEOUT","CUSTOMER_REQUEST"]"#)
        .replace(
            r#""name":"detail","type":"string"}"#,
            r#""name":"detail","type":"string"},{"name":"refund_minor","type":"long","default":0}"#,
        );
    assert!(v2.contains("refund_minor") && v2.contains("CUSTOMER_REQUEST"));
    let subject = unique_name("evolution-order-cancelled");
    let supplied = |schema: &str| SuppliedSchema::new(None, SchemaType::Avro, schema.to_owned());
    post_schema(&settings(), subject.clone(), supplied(&v1))
        .await
        .expect("v1 registers");
    let v2_id = post_schema(&settings(), subject.clone(), supplied(&v2))
        .await
        .expect("v2 is BACKWARD compatible")
        .id;

    // A breaking change is refused by the registry's compatibility check.
    let v3 = v1.replace(
        r#""name":"order_id","type":"string""#,
        r#""name":"order_id","type":"long""#,
    );
    let refused = post_schema(&settings(), subject.clone(), supplied(&v3))
        .await
        .expect_err("incompatible");
    let code = std::error::Error::source(&refused)
        .and_then(|source| source.downcast_ref::<RawError>())
        .map(|raw| raw.error_code);
    assert_eq!(code, Some(409), "{refused}");

    let v2_schema = Schema::parse_str(&v2).expect("v2 parses");
    let original = order_cancelled();
    let mut record = Record::new(&v2_schema).expect("record");
    record.put(
        "envelope",
        apache_avro::to_value(&original.envelope).expect("envelope"),
    );
    record.put("order_id", original.order_id.as_str());
    record.put("customer_id", original.customer_id.as_str());
    record.put("reason", Value::Enum(5, "CUSTOMER_REQUEST".into()));
    record.put("detail", original.detail.as_str());
    record.put("refund_minor", Value::Long(500));
    let body = apache_avro::writer::datum::GenericDatumWriter::builder(&v2_schema)
        .build()
        .and_then(|writer| writer.write_value_to_vec(record))
        .expect("v2 body");
    let mut payload = vec![0];
    payload.extend_from_slice(&v2_id.to_be_bytes());
    payload.extend_from_slice(&body);

    let codec = Codec::connect(settings(), RegistrationMode::Register)
        .await
        .expect("codec");
    let Event::OrderCancelled(read) = codec.decode(&payload).await.expect("v2 payload decodes")
    else {
        panic!("not an OrderCancelled");
    };
    assert_eq!(
        read.reason,
        CancellationReason::Unknown,
        "an unknown symbol reads as the default"
    );
    assert_eq!(
        OrderCancelled {
            reason: CancellationReason::PaymentFailed,
            ..read
        },
        original
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_faults_are_typed() {
    let codec = Codec::new(Some(settings()), &[]);
    let unknown_id = 2_000_000_000_u32;
    let mut payload = vec![0];
    payload.extend_from_slice(&unknown_id.to_be_bytes());
    payload.extend_from_slice(&[2, 0]);
    assert_eq!(
        codec.decode(&payload).await,
        Err(DecodeError::UnknownSchemaId {
            schema_id: unknown_id
        })
    );

    // Nothing listens on a port we just bound and released.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let unreachable = registry_settings(
        &format!("http://127.0.0.1:{closed_port}"),
        None,
        Duration::from_secs(2),
    )
    .expect("settings");
    let offline = Codec::new(Some(unreachable.clone()), &[]);
    let error = offline
        .decode(&[0, 0, 0, 0, 1, 2, 0])
        .await
        .expect_err("no registry");
    assert!(
        matches!(error, DecodeError::RegistryUnavailable { schema_id: 1, .. }),
        "{error:?}"
    );
    assert!(error.is_retriable());
    assert!(matches!(
        Codec::connect(unreachable, RegistrationMode::Register).await,
        Err(RegistryError::Unavailable { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_up_only_mode_refuses_to_register() {
    let schemas_topic = unique_name("_schemas-empty");
    let registry = DevRegistry::start(&schemas_topic).await;
    let empty = registry_settings(&registry.url, None, Duration::from_secs(10)).expect("settings");
    let result = Codec::connect(empty.clone(), RegistrationMode::LookupOnly).await;
    let Err(RegistryError::NotRegistered { subject }) = result else {
        panic!("expected NotRegistered, got {result:?}");
    };
    assert_eq!(subject, EVENT_TYPES[0].subject());
    let registered = Codec::connect(empty.clone(), RegistrationMode::Register)
        .await
        .expect("register");
    let looked_up = Codec::connect(empty, RegistrationMode::LookupOnly)
        .await
        .expect("now found");
    assert_eq!(
        looked_up.schema_id(&EVENT_TYPES[3]),
        registered.schema_id(&EVENT_TYPES[3])
    );
    registry.stop().await;
}
