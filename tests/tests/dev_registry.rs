//! The development registry against a real Confluent client (schema_registry_converter) and the
//! documented REST API, with its state in a topic on the real broker.

use std::time::Duration;

use apache_avro::types::Value;
use retail_codec::registry_settings;
use retail_integration_tests::{DevRegistry, unique_name};
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::{
    SrSettings, get_all_subjects, get_all_versions, get_schema_by_id, get_schema_by_subject,
    is_compatible_schema, post_schema,
};
use schema_registry_converter::schema_registry_common::{
    RawError, SchemaType, SubjectNameStrategy, SuppliedSchema,
};

const PAYMENT_V1: &str = r#"{"type":"record","name":"Payment","namespace":"test","fields":[{"name":"id","type":"string"},{"name":"amount","type":"long"}]}"#;
const PAYMENT_V2: &str = r#"{"type":"record","name":"Payment","namespace":"test","fields":[{"name":"id","type":"string"},{"name":"amount","type":"long"},{"name":"currency","type":"string","default":"EUR"}]}"#;
const PAYMENT_NO_DEFAULT: &str = r#"{"type":"record","name":"Payment","namespace":"test","fields":[{"name":"id","type":"string"},{"name":"amount","type":"long"},{"name":"fee","type":"long"}]}"#;

fn avro(schema: &str) -> SuppliedSchema {
    SuppliedSchema::new(None, SchemaType::Avro, schema.to_owned())
}

fn client(registry: &DevRegistry) -> SrSettings {
    registry_settings(&registry.url, None, Duration::from_secs(10)).expect("settings")
}

fn error_code(error: &schema_registry_converter::error::SRCError) -> Option<u32> {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<RawError>())
        .map(|raw| raw.error_code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confluent_client_registers_reads_and_checks_compatibility() {
    let registry = DevRegistry::start(&unique_name("_schemas")).await;
    let sr = client(&registry);

    let v1 = post_schema(&sr, "payments-value".into(), avro(PAYMENT_V1))
        .await
        .expect("register v1");
    let again = post_schema(&sr, "payments-value".into(), avro(PAYMENT_V1))
        .await
        .expect("register v1 again");
    assert_eq!(again.id, v1.id, "registering the same schema is idempotent");
    let same_schema_other_subject = post_schema(&sr, "audit-value".into(), avro(PAYMENT_V1))
        .await
        .expect("other subject");
    assert_eq!(
        same_schema_other_subject.id, v1.id,
        "one id per schema across subjects"
    );

    assert!(
        is_compatible_schema(&sr, "payments-value".into(), avro(PAYMENT_V2))
            .await
            .expect("check")
    );
    assert!(
        !is_compatible_schema(&sr, "payments-value".into(), avro(PAYMENT_NO_DEFAULT))
            .await
            .expect("check")
    );
    let refused = post_schema(&sr, "payments-value".into(), avro(PAYMENT_NO_DEFAULT))
        .await
        .expect_err("incompatible");
    assert_eq!(error_code(&refused), Some(409));
    let v2 = post_schema(&sr, "payments-value".into(), avro(PAYMENT_V2))
        .await
        .expect("register v2");
    assert_ne!(v2.id, v1.id);

    let by_id = get_schema_by_id(v1.id, &sr).await.expect("get by id");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&by_id.schema).expect("json"),
        serde_json::from_str::<serde_json::Value>(PAYMENT_V1).expect("json")
    );
    let latest = get_schema_by_subject(
        &sr,
        &SubjectNameStrategy::TopicNameStrategy("payments".into(), false),
    )
    .await
    .expect("latest");
    assert_eq!((latest.id, latest.version), (v2.id, Some(2)));
    let mut subjects = get_all_subjects(&sr).await.expect("subjects");
    subjects.sort();
    assert_eq!(subjects, ["audit-value", "payments-value"]);
    assert_eq!(
        get_all_versions(&sr, "payments-value".into())
            .await
            .expect("versions"),
        [1, 2]
    );

    let missing = get_schema_by_id(v2.id + 100, &sr)
        .await
        .expect_err("unknown id");
    assert_eq!(error_code(&missing), Some(40403));

    // The client's own encoder and decoder, through the registry.
    let encoder = AvroEncoder::new(sr.clone());
    let bytes = encoder
        .encode(
            vec![
                ("id", Value::String("p-1".into())),
                ("amount", Value::Long(1250)),
                ("currency", Value::String("SEK".into())),
            ],
            SubjectNameStrategy::TopicNameStrategy("payments".into(), false),
        )
        .await
        .expect("encode");
    assert_eq!(&bytes[1..5], &v2.id.to_be_bytes());
    let decoded = AvroDecoder::new(sr)
        .decode(Some(&bytes))
        .await
        .expect("decode");
    assert_eq!(
        decoded.value,
        Value::Record(vec![
            ("id".into(), Value::String("p-1".into())),
            ("amount".into(), Value::Long(1250)),
            ("currency".into(), Value::String("SEK".into())),
        ])
    );
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_registry_restart() {
    let schemas_topic = unique_name("_schemas");
    let first = DevRegistry::start(&schemas_topic).await;
    let sr = client(&first);
    let v1 = post_schema(&sr, "payments-value".into(), avro(PAYMENT_V1))
        .await
        .expect("v1");
    let v2 = post_schema(&sr, "payments-value".into(), avro(PAYMENT_V2))
        .await
        .expect("v2");
    let http = reqwest::Client::new();
    let put = http
        .put(format!("{}/config/payments-value", first.url))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .body(r#"{"compatibility":"FULL"}"#)
        .send()
        .await
        .expect("PUT config");
    assert_eq!(put.status(), 200);
    first.stop().await;

    let second = DevRegistry::start(&schemas_topic).await;
    let sr = client(&second);
    let latest = get_schema_by_subject(
        &sr,
        &SubjectNameStrategy::TopicNameStrategy("payments".into(), false),
    )
    .await
    .expect("latest after restart");
    assert_eq!((latest.id, latest.version), (v2.id, Some(2)));
    assert_eq!(
        get_schema_by_id(v1.id, &sr).await.expect("v1 by id").id,
        v1.id
    );
    let config: serde_json::Value = http
        .get(format!("{}/config/payments-value", second.url))
        .send()
        .await
        .expect("GET config")
        .json()
        .await
        .expect("json");
    assert_eq!(config["compatibilityLevel"], "FULL");
    // New ids continue after the replayed ones.
    let other = post_schema(&sr, "other-value".into(), avro(r#"{"type":"string"}"#))
        .await
        .expect("new schema");
    assert!(other.id > v2.id, "{} after {}", other.id, v2.id);
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_content_types_follow_the_confluent_api() {
    let registry = DevRegistry::start(&unique_name("_schemas")).await;
    let http = reqwest::Client::new();

    let response = http
        .get(format!("{}/schemas/ids/12345", registry.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 404);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok()),
        Some("application/vnd.schemaregistry.v1+json")
    );
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error_code"], 40403);

    let response = http
        .post(format!("{}/subjects/bad-value/versions", registry.url))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .body(r#"{"schema":"{\"type\":\"record\",\"name\":\"X\"}"}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.json::<serde_json::Value>().await.expect("json")["error_code"],
        42201
    );

    let response = http
        .get(format!(
            "{}/subjects/nothing-here/versions/latest",
            registry.url
        ))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<serde_json::Value>().await.expect("json")["error_code"],
        40401
    );
    registry.stop().await;
}
