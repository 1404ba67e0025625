//! HTTP-level tests: the real router served on 127.0.0.1:0 over an in-memory log, driven with
//! reqwest like a client would. No broker needed.

use std::time::Duration;

use reqwest::Method;
use retail_dev_registry::compatibility::CompatibilityLevel;
use retail_dev_registry::log::{InjectedFailure, LogError};
use retail_dev_registry::{Config, LogRecord, MemoryLog, RunError, Store, router};
use serde_json::{Value, json};

const V1_JSON: &str = "application/vnd.schemaregistry.v1+json";

/// A registry served on an ephemeral port, with a handle on its log.
struct TestRegistry {
    base: String,
    client: reqwest::Client,
    log: MemoryLog,
    server: tokio::task::JoinHandle<()>,
}

/// One HTTP exchange, body parsed as JSON (`Value::Null` for an empty body).
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    text: String,
    json: Value,
}

impl Reply {
    fn error_code(&self) -> Option<i64> {
        self.json.get("error_code").and_then(Value::as_i64)
    }

    fn message(&self) -> &str {
        self.json
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    #[track_caller]
    fn assert_ok(&self, expected: Value) {
        assert_eq!(self.status, 200, "{self:?}");
        assert_eq!(self.json, expected, "{self:?}");
    }

    #[track_caller]
    fn assert_error(&self, status: u16, error_code: i64) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.error_code(), Some(error_code), "{self:?}");
        assert!(!self.message().is_empty(), "{self:?}");
        assert_eq!(self.content_type, V1_JSON, "{self:?}");
    }
}

impl TestRegistry {
    async fn start() -> Self {
        Self::start_with(Store::new(CompatibilityLevel::Backward)).await
    }

    async fn start_with(store: Store) -> Self {
        let log = MemoryLog::new();
        let app = router(store, log.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("has an address");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serves");
        });
        TestRegistry {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            log,
            server,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Option<String>,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("request is answered");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("body is readable");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|error| panic!("not json ({error}): {text}"))
        };
        Reply {
            status,
            content_type,
            text,
            json,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, None).await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(V1_JSON), Some(body.to_string()))
            .await
    }

    async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PUT, path, Some(V1_JSON), Some(body.to_string()))
            .await
    }

    async fn register(&self, subject: &str, schema: &str) -> Reply {
        self.post(
            &format!("/subjects/{subject}/versions"),
            json!({ "schema": schema }),
        )
        .await
    }

    async fn must_register(&self, subject: &str, schema: &str) -> i64 {
        let reply = self.register(subject, schema).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.json["id"].as_i64().expect("id is a number")
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn order(extra_fields: &str) -> String {
    format!(
        r#"{{"type":"record","name":"Order","namespace":"retail","fields":[{{"name":"id","type":"string"}}{extra_fields}]}}"#
    )
}

const WITH_QTY_DEFAULT: &str = r#",{"name":"qty","type":"int","default":0}"#;
const WITH_QTY: &str = r#",{"name":"qty","type":"int"}"#;

#[tokio::test]
async fn root_and_schema_types() {
    let registry = TestRegistry::start().await;
    let root = registry.get("/").await;
    root.assert_ok(json!({}));
    assert_eq!(root.content_type, V1_JSON);
    let types = registry.get("/schemas/types").await;
    types.assert_ok(json!(["AVRO"]));
    assert_eq!(types.content_type, V1_JSON);
}

#[tokio::test]
async fn register_is_idempotent_and_ids_are_shared_across_subjects() {
    let registry = TestRegistry::start().await;
    registry
        .register("orders-value", &order(""))
        .await
        .assert_ok(json!({"id": 1}));
    // Same schema, other whitespace and key order: same id, nothing written.
    let reformatted =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&order("")).expect("json"))
            .expect("pretty");
    registry
        .register("orders-value", &reformatted)
        .await
        .assert_ok(json!({"id": 1}));
    assert_eq!(registry.log.records().len(), 1);
    // Same schema under another subject: same id, version 1 there.
    registry
        .register("audit-value", &order(""))
        .await
        .assert_ok(json!({"id": 1}));
    registry
        .register("orders-value", &order(WITH_QTY_DEFAULT))
        .await
        .assert_ok(json!({"id": 2}));
    assert_eq!(registry.log.records().len(), 3);
    let Some(LogRecord::Schema(last)) = registry.log.records().pop() else {
        panic!("expected a schema record");
    };
    assert_eq!(
        (last.subject.as_str(), last.version, last.id),
        ("orders-value", 2, 2)
    );

    registry
        .get("/subjects/orders-value/versions")
        .await
        .assert_ok(json!([1, 2]));
    registry
        .get("/subjects/audit-value/versions/latest")
        .await
        .assert_ok(json!({"subject": "audit-value", "version": 1, "id": 1, "schema": order("")}));
}

#[tokio::test]
async fn schemas_by_id() {
    let registry = TestRegistry::start().await;
    registry.must_register("a", &order("")).await;
    registry.must_register("b", &order("")).await;

    let by_id = registry.get("/schemas/ids/1").await;
    by_id.assert_ok(json!({"schema": order("")}));
    assert!(by_id.json.get("schemaType").is_none(), "omitted for AVRO");
    registry
        .get("/schemas/ids/1?deleted=true&subject=a&fetchMaxId=false")
        .await
        .assert_ok(json!({"schema": order("")}));

    let raw = registry.get("/schemas/ids/1/schema").await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.text, order(""));
    assert_eq!(raw.content_type, V1_JSON);

    registry
        .get("/schemas/ids/1/versions")
        .await
        .assert_ok(json!([{"subject": "a", "version": 1}, {"subject": "b", "version": 1}]));
    registry
        .get("/schemas/ids/1/subjects")
        .await
        .assert_ok(json!(["a", "b"]));

    registry
        .get("/schemas/ids/99")
        .await
        .assert_error(404, 40403);
    registry
        .get("/schemas/ids/99/versions")
        .await
        .assert_error(404, 40403);
    registry
        .get("/schemas/ids/99/subjects")
        .await
        .assert_error(404, 40403);
    registry
        .get("/schemas/ids/99/schema")
        .await
        .assert_error(404, 40403);
    registry
        .get("/schemas/ids/abc")
        .await
        .assert_error(404, 404);
}

#[tokio::test]
async fn every_accepted_content_type_works() {
    let registry = TestRegistry::start().await;
    let body = json!({"schema": order("")}).to_string();
    for content_type in [
        Some(V1_JSON),
        Some("application/vnd.schemaregistry+json"),
        Some("application/json"),
        Some("application/octet-stream"),
        None,
    ] {
        let reply = registry
            .send(
                Method::POST,
                "/subjects/s/versions",
                content_type,
                Some(body.clone()),
            )
            .await;
        reply.assert_ok(json!({"id": 1}));
        assert_eq!(reply.content_type, V1_JSON);
    }
}

#[tokio::test]
async fn invalid_registrations_are_refused() {
    let registry = TestRegistry::start().await;
    let not_avro = registry
        .register("s", r#"{"type":"record","name":"R"}"#)
        .await;
    not_avro.assert_error(422, 42201);
    registry.register("s", "{").await.assert_error(422, 42201);
    registry
        .post("/subjects/s/versions", json!({}))
        .await
        .assert_error(422, 42201);

    let protobuf = registry
        .post(
            "/subjects/s/versions",
            json!({"schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF"}),
        )
        .await;
    protobuf.assert_error(422, 42201);
    assert!(protobuf.message().contains("Avro only"), "{protobuf:?}");

    let references = registry
        .post(
            "/subjects/s/versions",
            json!({"schema": order(""), "references": [{"name": "x", "subject": "y", "version": 1}]}),
        )
        .await;
    references.assert_error(422, 42201);
    assert!(
        references
            .message()
            .contains("references are not supported"),
        "{references:?}"
    );

    // Explicit AVRO, empty references, metadata and ruleSet are all fine.
    registry
        .post(
            "/subjects/s/versions",
            json!({"schema": order(""), "schemaType": "AVRO", "references": [], "metadata": null, "ruleSet": null}),
        )
        .await
        .assert_ok(json!({"id": 1}));

    registry
        .send(
            Method::POST,
            "/subjects/s/versions",
            Some(V1_JSON),
            Some("{not json".into()),
        )
        .await
        .assert_error(400, 400);
    registry
        .post("/subjects/s/versions", json!({"schema": 5}))
        .await
        .assert_error(422, 422);
    assert_eq!(registry.log.records().len(), 1);
}

#[tokio::test]
async fn incompatible_schemas_get_409() {
    let registry = TestRegistry::start().await;
    registry.must_register("orders-value", &order("")).await;
    let reply = registry.register("orders-value", &order(WITH_QTY)).await;
    reply.assert_error(409, 409);
    assert!(
        reply.message().starts_with(
            "Schema being registered is incompatible with an earlier schema for subject \"orders-value\""
        ),
        "{reply:?}"
    );
    assert!(reply.message().contains("qty"), "{reply:?}");
    assert_eq!(registry.log.records().len(), 1);
}

#[tokio::test]
async fn subject_versions_and_version_selectors() {
    let registry = TestRegistry::start().await;
    registry.must_register("s", &order("")).await;
    registry.must_register("s", &order(WITH_QTY_DEFAULT)).await;

    let v2 = json!({"subject": "s", "version": 2, "id": 2, "schema": order(WITH_QTY_DEFAULT)});
    registry
        .get("/subjects/s/versions/2")
        .await
        .assert_ok(v2.clone());
    registry
        .get("/subjects/s/versions/latest")
        .await
        .assert_ok(v2.clone());
    registry.get("/subjects/s/versions/-1").await.assert_ok(v2);
    registry
        .get("/subjects/s/versions/1")
        .await
        .assert_ok(json!({"subject": "s", "version": 1, "id": 1, "schema": order("")}));

    for bad in ["0", "-2", "abc", "1.5"] {
        registry
            .get(&format!("/subjects/s/versions/{bad}"))
            .await
            .assert_error(422, 42202);
    }
    registry
        .get("/subjects/s/versions/9")
        .await
        .assert_error(404, 40402);
    registry
        .get("/subjects/nope/versions/1")
        .await
        .assert_error(404, 40401);
    registry
        .get("/subjects/nope/versions")
        .await
        .assert_error(404, 40401);

    let raw = registry.get("/subjects/s/versions/1/schema").await;
    assert_eq!((raw.status, raw.text.as_str()), (200, order("").as_str()));
    assert_eq!(raw.content_type, V1_JSON);
    registry
        .get("/subjects/s/versions/latest/referencedby")
        .await
        .assert_ok(json!([]));
    registry
        .get("/subjects/s/versions/9/referencedby")
        .await
        .assert_error(404, 40402);
}

#[tokio::test]
async fn subject_names_are_percent_decoded() {
    let registry = TestRegistry::start().await;
    registry
        .register("com.example.Order-value", &order(""))
        .await
        .assert_ok(json!({"id": 1}));
    registry
        .register("team%2Forders%20v1", &order(""))
        .await
        .assert_ok(json!({"id": 1}));
    registry
        .get("/subjects")
        .await
        .assert_ok(json!(["com.example.Order-value", "team/orders v1"]));
    registry
        .get("/subjects/team%2Forders%20v1/versions/1")
        .await
        .assert_ok(
            json!({"subject": "team/orders v1", "version": 1, "id": 1, "schema": order("")}),
        );
}

#[tokio::test]
async fn lookup_under_a_subject() {
    let registry = TestRegistry::start().await;
    registry.must_register("s", &order("")).await;
    registry.must_register("s", &order(WITH_QTY_DEFAULT)).await;
    registry
        .post("/subjects/s", json!({"schema": order(WITH_QTY_DEFAULT)}))
        .await
        .assert_ok(
            json!({"subject": "s", "id": 2, "version": 2, "schema": order(WITH_QTY_DEFAULT)}),
        );
    registry
        .post("/subjects/s", json!({"schema": order(WITH_QTY)}))
        .await
        .assert_error(404, 40403);
    registry
        .post("/subjects/other", json!({"schema": order("")}))
        .await
        .assert_error(404, 40401);
    registry
        .post("/subjects/s", json!({"schema": "nope"}))
        .await
        .assert_error(422, 42201);

    registry
        .delete("/subjects/s/versions/1")
        .await
        .assert_ok(json!(1));
    registry
        .post("/subjects/s", json!({"schema": order("")}))
        .await
        .assert_error(404, 40403);
    registry
        .post("/subjects/s?deleted=true", json!({"schema": order("")}))
        .await
        .assert_ok(json!({"subject": "s", "id": 1, "version": 1, "schema": order("")}));
}

#[tokio::test]
async fn listing_subjects_with_deleted_and_prefix() {
    let registry = TestRegistry::start().await;
    registry.must_register("orders-value", &order("")).await;
    registry.must_register("orders-key", &order("")).await;
    registry.must_register("payments-value", &order("")).await;
    registry.get("/subjects").await.assert_ok(json!([
        "orders-key",
        "orders-value",
        "payments-value"
    ]));
    registry
        .get("/subjects?subjectPrefix=orders")
        .await
        .assert_ok(json!(["orders-key", "orders-value"]));
    registry
        .delete("/subjects/orders-key")
        .await
        .assert_ok(json!([1]));
    registry
        .get("/subjects?subjectPrefix=orders")
        .await
        .assert_ok(json!(["orders-value"]));
    registry
        .get("/subjects?subjectPrefix=orders&deleted=true")
        .await
        .assert_ok(json!(["orders-key", "orders-value"]));
}

#[tokio::test]
async fn soft_and_permanent_subject_deletion() {
    let registry = TestRegistry::start().await;
    registry.must_register("s", &order("")).await;
    registry.must_register("s", &order(WITH_QTY_DEFAULT)).await;

    registry
        .delete("/subjects/s?permanent=true")
        .await
        .assert_error(404, 40405);
    registry
        .delete("/subjects/s")
        .await
        .assert_ok(json!([1, 2]));
    registry
        .delete("/subjects/s")
        .await
        .assert_error(404, 40404);
    registry
        .get("/subjects/s/versions")
        .await
        .assert_error(404, 40401);
    registry
        .get("/subjects/s/versions?deleted=true")
        .await
        .assert_ok(json!([1, 2]));
    registry
        .get("/subjects/s/versions/1")
        .await
        .assert_error(404, 40401);
    registry
        .get("/subjects/s/versions/1?deleted=true")
        .await
        .assert_ok(json!({"subject": "s", "version": 1, "id": 1, "schema": order("")}));
    // Soft-deleted schemas stay readable by id.
    registry
        .get("/schemas/ids/2")
        .await
        .assert_ok(json!({"schema": order(WITH_QTY_DEFAULT)}));
    registry
        .get("/schemas/ids/2/versions")
        .await
        .assert_ok(json!([]));
    registry
        .get("/schemas/ids/2/versions?deleted=true")
        .await
        .assert_ok(json!([{"subject": "s", "version": 2}]));

    registry
        .delete("/subjects/s?permanent=true")
        .await
        .assert_ok(json!([1, 2]));
    registry
        .get("/schemas/ids/2")
        .await
        .assert_error(404, 40403);
    registry
        .get("/subjects/s/versions?deleted=true")
        .await
        .assert_error(404, 40401);
    registry
        .delete("/subjects/s")
        .await
        .assert_error(404, 40401);
    // Two soft-delete rewrites then two tombstones after the two registrations.
    let records = registry.log.records();
    assert_eq!(records.len(), 6);
    assert!(matches!(
        records[5],
        LogRecord::SchemaTombstone { version: 2, .. }
    ));
}

#[tokio::test]
async fn soft_and_permanent_version_deletion() {
    let registry = TestRegistry::start().await;
    registry.must_register("s", &order("")).await;
    registry.must_register("s", &order(WITH_QTY_DEFAULT)).await;

    registry
        .delete("/subjects/s/versions/1?permanent=true")
        .await
        .assert_error(404, 40407);
    registry
        .delete("/subjects/s/versions/1")
        .await
        .assert_ok(json!(1));
    registry
        .delete("/subjects/s/versions/1")
        .await
        .assert_error(404, 40406);
    registry
        .delete("/subjects/s/versions/1?permanent=true")
        .await
        .assert_ok(json!(1));
    registry
        .delete("/subjects/s/versions/1")
        .await
        .assert_error(404, 40402);
    registry
        .delete("/subjects/s/versions/zero")
        .await
        .assert_error(422, 42202);
    registry
        .delete("/subjects/nope/versions/1")
        .await
        .assert_error(404, 40401);
    registry
        .delete("/subjects/s/versions/latest")
        .await
        .assert_ok(json!(2));
    // The next registration continues after the soft-deleted version 2.
    registry.must_register("s", &order(WITH_QTY)).await;
    registry
        .get("/subjects/s/versions?deleted=true")
        .await
        .assert_ok(json!([2, 3]));
}

#[tokio::test]
async fn global_and_subject_config() {
    let registry = TestRegistry::start().await;
    registry
        .get("/config")
        .await
        .assert_ok(json!({"compatibilityLevel": "BACKWARD"}));
    registry
        .put("/config", json!({"compatibility": "FULL"}))
        .await
        .assert_ok(json!({"compatibility": "FULL"}));
    registry
        .get("/config")
        .await
        .assert_ok(json!({"compatibilityLevel": "FULL"}));
    registry
        .put("/config", json!({"compatibility": "SIDEWAYS"}))
        .await
        .assert_error(422, 42203);
    registry
        .put("/config", json!({}))
        .await
        .assert_error(422, 42203);

    registry.get("/config/s").await.assert_error(404, 40408);
    registry
        .get("/config/s?defaultToGlobal=true")
        .await
        .assert_ok(json!({"compatibilityLevel": "FULL"}));
    registry
        .put("/config/s", json!({"compatibility": "none"}))
        .await
        .assert_ok(json!({"compatibility": "NONE"}));
    registry
        .get("/config/s")
        .await
        .assert_ok(json!({"compatibilityLevel": "NONE"}));
    // NONE lets anything through for this subject.
    registry.must_register("s", &order("")).await;
    registry.must_register("s", &order(WITH_QTY)).await;
    registry
        .delete("/config/s")
        .await
        .assert_ok(json!({"compatibilityLevel": "NONE"}));
    registry.delete("/config/s").await.assert_error(404, 40408);
    registry
        .delete("/config")
        .await
        .assert_ok(json!({"compatibilityLevel": "FULL"}));
    registry
        .get("/config")
        .await
        .assert_ok(json!({"compatibilityLevel": "BACKWARD"}));
}

#[tokio::test]
async fn compatibility_checks() {
    let registry = TestRegistry::start().await;
    // Nothing registered: compatible.
    registry
        .post(
            "/compatibility/subjects/s/versions/latest",
            json!({"schema": order(WITH_QTY)}),
        )
        .await
        .assert_ok(json!({"is_compatible": true}));
    registry
        .post(
            "/compatibility/subjects/s/versions",
            json!({"schema": order(WITH_QTY)}),
        )
        .await
        .assert_ok(json!({"is_compatible": true}));

    registry.must_register("s", &order("")).await;
    registry.must_register("s", &order(WITH_QTY_DEFAULT)).await;
    registry
        .post(
            "/compatibility/subjects/s/versions/1",
            json!({"schema": order(WITH_QTY)}),
        )
        .await
        .assert_ok(json!({"is_compatible": false}));
    let verbose = registry
        .post(
            "/compatibility/subjects/s/versions/1?verbose=true",
            json!({"schema": order(WITH_QTY)}),
        )
        .await;
    assert_eq!(verbose.status, 200);
    assert_eq!(verbose.json["is_compatible"], json!(false));
    let messages = verbose.json["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{verbose:?}");
    registry
        .post(
            "/compatibility/subjects/s/versions/latest?verbose=true",
            json!({"schema": order(WITH_QTY)}),
        )
        .await
        .assert_ok(json!({"is_compatible": true, "messages": []}));
    registry
        .post(
            "/compatibility/subjects/s/versions",
            json!({"schema": order(WITH_QTY)}),
        )
        .await
        .assert_ok(json!({"is_compatible": true}));
    registry
        .put("/config/s", json!({"compatibility": "BACKWARD_TRANSITIVE"}))
        .await
        .assert_ok(json!({"compatibility": "BACKWARD_TRANSITIVE"}));
    registry
        .post(
            "/compatibility/subjects/s/versions",
            json!({"schema": order(WITH_QTY)}),
        )
        .await
        .assert_ok(json!({"is_compatible": false}));

    registry
        .post(
            "/compatibility/subjects/s/versions/9",
            json!({"schema": order("")}),
        )
        .await
        .assert_error(404, 40402);
    registry
        .post(
            "/compatibility/subjects/s/versions/0",
            json!({"schema": order("")}),
        )
        .await
        .assert_error(422, 42202);
    registry
        .post(
            "/compatibility/subjects/s/versions/latest",
            json!({"schema": "{"}),
        )
        .await
        .assert_error(422, 42201);
    // Checks never write.
    assert_eq!(registry.log.records().len(), 3);
}

#[tokio::test]
async fn log_failures_map_to_5xx_and_leave_state_alone() {
    let registry = TestRegistry::start().await;
    registry.log.fail_next_append(0, InjectedFailure::Store);
    registry
        .register("s", &order(""))
        .await
        .assert_error(500, 50001);
    registry
        .get("/subjects/s/versions")
        .await
        .assert_error(404, 40401);

    registry.log.fail_next_append(0, InjectedFailure::Timeout);
    registry
        .put("/config", json!({"compatibility": "FULL"}))
        .await
        .assert_error(500, 50002);
    registry
        .get("/config")
        .await
        .assert_ok(json!({"compatibilityLevel": "BACKWARD"}));

    // A failure halfway through a multi-record write applies exactly the durable prefix.
    registry.must_register("s", &order("")).await;
    registry.must_register("s", &order(WITH_QTY_DEFAULT)).await;
    registry.log.fail_next_append(1, InjectedFailure::Store);
    registry
        .delete("/subjects/s")
        .await
        .assert_error(500, 50001);
    registry
        .get("/subjects/s/versions")
        .await
        .assert_ok(json!([2]));
    registry.delete("/subjects/s").await.assert_ok(json!([2]));
}

#[tokio::test]
async fn concurrent_registrations_get_sequential_ids() {
    let registry = TestRegistry::start().await;
    registry
        .put("/config", json!({"compatibility": "NONE"}))
        .await
        .assert_ok(json!({"compatibility": "NONE"}));
    let replies = futures_join_all(&registry, 12).await;
    let mut ids: Vec<i64> = replies
        .iter()
        .map(|reply| reply.json["id"].as_i64().expect("id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=12).collect::<Vec<_>>());
    let versions = registry.get("/subjects/s/versions").await;
    versions.assert_ok(json!((1..=12).collect::<Vec<_>>()));
}

/// Registers `count` distinct schemas under one subject concurrently.
async fn futures_join_all(registry: &TestRegistry, count: usize) -> Vec<Reply> {
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..count {
        let client = registry.client.clone();
        let url = format!("{}/subjects/s/versions", registry.base);
        let schema = order(&format!(
            r#",{{"name":"f{index}","type":"int","default":0}}"#
        ));
        tasks.spawn(async move {
            let response = client
                .post(url)
                .header("content-type", V1_JSON)
                .body(json!({ "schema": schema }).to_string())
                .send()
                .await
                .expect("answered");
            let status = response.status().as_u16();
            let text = response.text().await.expect("body");
            Reply {
                status,
                content_type: String::new(),
                json: serde_json::from_str(&text).expect("json"),
                text,
            }
        });
    }
    let mut replies = Vec::new();
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.expect("task completes");
        assert_eq!(reply.status, 200, "{reply:?}");
        replies.push(reply);
    }
    replies
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let registry = TestRegistry::start().await;
    registry.get("/nope").await.assert_error(404, 404);
    registry
        .send(Method::PUT, "/subjects", Some(V1_JSON), Some("{}".into()))
        .await
        .assert_error(405, 405);
}

#[tokio::test]
async fn state_replayed_from_records_is_served() {
    // What `run` does after replaying the topic: the router serves the replayed store.
    let mut store = Store::new(CompatibilityLevel::Backward);
    let source = TestRegistry::start().await;
    source.must_register("s", &order("")).await;
    source.must_register("s", &order(WITH_QTY_DEFAULT)).await;
    source
        .delete("/subjects/s/versions/1")
        .await
        .assert_ok(json!(1));
    source
        .put("/config/s", json!({"compatibility": "FULL"}))
        .await
        .assert_ok(json!({"compatibility": "FULL"}));
    for record in source.log.records() {
        store.apply(&record);
    }
    let restarted = TestRegistry::start_with(store).await;
    restarted
        .get("/subjects/s/versions")
        .await
        .assert_ok(json!([2]));
    restarted
        .get("/subjects/s/versions?deleted=true")
        .await
        .assert_ok(json!([1, 2]));
    restarted
        .get("/config/s")
        .await
        .assert_ok(json!({"compatibilityLevel": "FULL"}));
    restarted
        .register("s", &order(r#",{"name":"x","type":"int","default":1}"#))
        .await
        .assert_ok(json!({"id": 3}));
}

fn unreachable_broker_config(kafka_timeout_ms: u64) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        // Port 1 on loopback: nothing listens there, connections are refused at once.
        bootstrap_servers: "127.0.0.1:1".into(),
        schemas_topic: "_schemas".into(),
        schemas_topic_replication: 1,
        default_compatibility: CompatibilityLevel::Backward,
        kafka_timeout_ms,
    }
}

#[tokio::test]
async fn run_fails_when_the_broker_is_unreachable() {
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        retail_dev_registry::run(unreachable_broker_config(500), std::future::pending()),
    )
    .await
    .expect("gives up within its kafka timeout");
    assert!(
        matches!(result, Err(RunError::Log(LogError::CreateTopic { .. }))),
        "{result:?}"
    );
}

#[tokio::test]
async fn run_stops_during_startup_when_asked() {
    // Startup would wait up to 60 s for the broker; shutdown must not.
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(5),
        retail_dev_registry::run(unreachable_broker_config(60_000), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }),
    )
    .await
    .expect("returns promptly");
    assert!(result.is_ok(), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
