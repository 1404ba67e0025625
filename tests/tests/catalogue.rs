//! The topic catalogue for data teams, `schemas/asyncapi.yaml`, checked against the code it
//! describes, in both directions, so that neither can change without the other:
//! - its channels are the catalogue's topics (`retail_events::Topic`) plus every worker stage's
//!   dead-letter and changelog topics, named as the runtime names them;
//! - each topic's messages are the event types the catalogue puts on it, with their `.avsc` files,
//!   record keys, Schema Registry subjects (the codec's naming) and revisions;
//! - who writes and who reads each topic is what every worker stage's handler says
//!   (`inputs()` / `outputs()`), built with default flags as the workers' `main.rs` build them;
//! - the topic configs and partition/replica defaults are the runtime's;
//! - the dead-letter headers are the runtime's.
//!
//! No broker needed. The document's validity as AsyncAPI 3.0 is checked by `tests/asyncapi/check`
//! (the official JSON schema), which `tests/run` runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use clap::{Args, Parser};
use retail_events::catalogue::SCHEMA_FILES;
use retail_events::{EVENT_TYPES, EventDescriptor, Topic};
use retail_runtime::dead_letter::DeadLetter;
use retail_runtime::topics::{
    CHANGELOG_TOPIC_CONFIGS, DEAD_LETTER_TOPIC_CONFIGS, EVENT_TOPIC_CONFIGS, TopicNames,
};
use retail_runtime::{Handler, RuntimeConfig};
use serde_json::Value as Json;

/// The document, relative to the repository root.
const DOCUMENT: &str = "schemas/asyncapi.yaml";

/// The systems outside the project that write the catalogue topics `Topic::owner` names.
const EXTERNAL_SYSTEMS: &[&str] = &["storefront", "payments", "warehouse"];

/// What the external systems read. Not derivable from code: the simulator plays the warehouse,
/// which restocks on `LowStock` (`shared/simulator/src/run.rs`).
const EXTERNAL_READS: &[(&str, Topic)] = &[("warehouse", Topic::InventoryStockLevels)];

/// The Avro schema format every event payload declares.
const AVRO_FORMAT: &str = "application/vnd.apache.avro;version=1.9.0";

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The document as JSON.
fn document() -> Json {
    let path = repository().join(DOCUMENT);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not valid YAML: {error}", path.display()))
}

/// `value`, or what it refers to if it is a local `$ref` (`#/...`).
fn resolve<'a>(doc: &'a Json, value: &'a Json) -> &'a Json {
    match value.get("$ref").and_then(Json::as_str) {
        Some(reference) => {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{reference} is not a local reference"));
            doc.pointer(pointer)
                .unwrap_or_else(|| panic!("{reference} points at nothing in {DOCUMENT}"))
        }
        None => value,
    }
}

/// `value[key]` as a string, or a failure naming `what`.
fn text<'a>(value: &'a Json, key: &str, what: &str) -> &'a str {
    value
        .get(key)
        .and_then(Json::as_str)
        .unwrap_or_else(|| panic!("{what}: `{key}` is missing or not a string"))
}

/// The entries of an object, or a failure naming `what`.
fn entries<'a>(value: &'a Json, what: &str) -> &'a serde_json::Map<String, Json> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("{what} is missing or not a mapping"))
}

/// A list of strings, or a failure naming `what`.
fn strings(value: Option<&Json>, what: &str) -> BTreeSet<String> {
    value
        .and_then(Json::as_array)
        .unwrap_or_else(|| panic!("{what} is missing or not a list"))
        .iter()
        .map(|item| {
            item.as_str()
                .unwrap_or_else(|| panic!("{what}: {item} is not a string"))
                .to_owned()
        })
        .collect()
}

/// Fails with what is missing and what is unexpected, if the two sets differ.
fn assert_same<T: Ord + std::fmt::Debug>(expected: &BTreeSet<T>, found: &BTreeSet<T>, what: &str) {
    let missing: Vec<_> = expected.difference(found).collect();
    let unexpected: Vec<_> = found.difference(expected).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "{what} in {DOCUMENT} differ from the code:\n  missing:    {missing:?}\n  unexpected: {unexpected:?}"
    );
}

/// One stage of a worker, as its `main.rs` builds and runs it.
#[derive(Debug)]
struct StageInfo {
    /// The worker's name (`retail_runtime::run*`'s `worker`), an application in the document.
    worker: &'static str,
    /// The stage's consumer group with the default `--group-id`, which names its own topics.
    group: String,
    inputs: Vec<Topic>,
    outputs: Vec<Topic>,
    store: Option<&'static str>,
}

impl StageInfo {
    /// As `retail_runtime::Stage::new(stage, handler)` in `worker` runs it.
    fn of<H: Handler>(worker: &'static str, stage: &str, handler: &H) -> Self {
        let group = if stage.is_empty() {
            worker.to_owned()
        } else {
            format!("{worker}.{stage}")
        };
        Self {
            worker,
            group,
            inputs: handler.inputs(),
            outputs: handler.outputs(),
            store: H::STORE,
        }
    }

    fn names(&self) -> TopicNames {
        TopicNames {
            prefix: String::new(),
            group_id: self.group.clone(),
        }
    }

    fn dead_letter(&self) -> String {
        self.names().dead_letter()
    }

    fn changelog(&self) -> Option<String> {
        self.store.map(|store| self.names().changelog(store))
    }
}

#[derive(Parser)]
struct InventoryCli {
    #[command(flatten)]
    inventory: inventory::InventoryConfig,
}

#[derive(Parser)]
struct FraudCli {
    #[command(flatten)]
    fraud: fraud::FraudConfig,
}

#[derive(Parser)]
struct FulfilmentCli {
    #[command(flatten)]
    fulfilment: fulfilment::FulfilmentConfig,
}

#[derive(Parser)]
struct ShippingCli {
    #[command(flatten)]
    shipping: shipping::ShippingArgs,
}

#[derive(Parser)]
struct NotificationCli {
    #[command(flatten)]
    runtime: RuntimeConfig,
    #[command(flatten)]
    notification: notification::NotificationArgs,
}

/// Every stage of every worker, built from default flags the way the workers' `main.rs` do.
fn stages() -> Vec<StageInfo> {
    let inventory = InventoryCli::try_parse_from(["inventory"]).expect("inventory defaults");
    let fraud_cli = FraudCli::try_parse_from(["fraud"]).expect("fraud defaults");
    let rules = fraud_cli.fraud.rules().expect("default fraud rules");
    let fulfilment_cli = FulfilmentCli::try_parse_from(["fulfilment"]).expect("defaults");
    let fulfilment = fulfilment::Fulfilment::new(&fulfilment_cli.fulfilment)
        .expect("default fulfilment settings");
    let shipping = ShippingCli::try_parse_from(["shipping"])
        .expect("shipping defaults")
        .shipping
        .handler()
        .expect("default shipping rules");
    // The log channel writes nowhere; the default file channel would create a directory.
    let notification_cli =
        NotificationCli::try_parse_from(["notification", "--channel", "log"]).expect("defaults");
    let notification = notification_cli
        .notification
        .handler(&notification_cli.runtime)
        .expect("default notification settings");
    vec![
        StageInfo::of(
            "inventory",
            "orders",
            &inventory::OrderStage::new(&inventory.inventory),
        ),
        StageInfo::of(
            "inventory",
            "stock",
            &inventory::StockStage::new(&inventory.inventory),
        ),
        StageInfo::of(fraud::WORKER, "orders", &fraud::OrdersStage),
        StageInfo::of(
            fraud::WORKER,
            "customers",
            &fraud::CustomersStage::new(rules),
        ),
        StageInfo::of("fulfilment", "", &fulfilment),
        StageInfo::of("shipping", "", &shipping),
        StageInfo::of("notification", "", &notification),
    ]
}

/// What a channel is, by what names and creates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Event,
    DeadLetter,
    Changelog,
}

/// Every topic the code knows, by address: its kind, its writer (application and stage group,
/// when a worker writes it) and its readers (application, stage group).
#[derive(Debug)]
struct Expected {
    kind: Kind,
    owner: String,
    owner_group: Option<String>,
    readers: BTreeSet<(String, Option<String>)>,
}

fn expected_topics(stages: &[StageInfo]) -> BTreeMap<String, Expected> {
    let mut topics: BTreeMap<String, Expected> = Topic::ALL
        .iter()
        .map(|topic| {
            let writers: Vec<&StageInfo> = stages
                .iter()
                .filter(|stage| stage.outputs.contains(topic))
                .collect();
            let owner_group = match writers.as_slice() {
                [] => None,
                [writer] => Some(writer.group.clone()),
                _ => panic!("{topic} has more than one writing stage: {writers:?}"),
            };
            if let Some(writer) = writers.first() {
                assert_eq!(
                    writer.worker,
                    topic.owner(),
                    "{topic}: the catalogue's owner is not the worker that writes it"
                );
            } else {
                assert!(
                    EXTERNAL_SYSTEMS.contains(&topic.owner()),
                    "{topic}: no worker writes it and its owner {} is not an external system",
                    topic.owner()
                );
            }
            let mut readers: BTreeSet<(String, Option<String>)> = stages
                .iter()
                .filter(|stage| stage.inputs.contains(topic))
                .map(|stage| (stage.worker.to_owned(), Some(stage.group.clone())))
                .collect();
            readers.extend(
                EXTERNAL_READS
                    .iter()
                    .filter(|(_, read)| read == topic)
                    .map(|(system, _)| ((*system).to_owned(), None)),
            );
            let expected = Expected {
                kind: Kind::Event,
                owner: topic.owner().to_owned(),
                owner_group,
                readers,
            };
            (topic.name().to_owned(), expected)
        })
        .collect();
    for stage in stages {
        let own = |kind, readers| Expected {
            kind,
            owner: stage.worker.to_owned(),
            owner_group: Some(stage.group.clone()),
            readers,
        };
        topics.insert(stage.dead_letter(), own(Kind::DeadLetter, BTreeSet::new()));
        if let Some(changelog) = stage.changelog() {
            // The stage reads its changelog back when it is assigned partitions, with a
            // consumer of its own that joins no group (`retail_runtime::restore`).
            let readers = BTreeSet::from([(stage.worker.to_owned(), None)]);
            topics.insert(changelog, own(Kind::Changelog, readers));
        }
    }
    topics
}

fn channels(doc: &Json) -> &serde_json::Map<String, Json> {
    entries(&doc["channels"], "channels")
}

/// The channel whose address is `address`.
fn channel<'a>(doc: &'a Json, address: &str) -> &'a Json {
    channels(doc)
        .get(address)
        .unwrap_or_else(|| panic!("{DOCUMENT} has no channel {address}"))
}

/// The messages of a channel, by message name.
fn channel_messages<'a>(doc: &'a Json, address: &str) -> BTreeMap<String, &'a Json> {
    entries(
        &channel(doc, address)["messages"],
        &format!("channel {address}: messages"),
    )
    .values()
    .map(|message| {
        let message = resolve(doc, message);
        let name = text(message, "name", &format!("a message of {address}")).to_owned();
        (name, message)
    })
    .collect()
}

fn descriptors_of(topic: Topic) -> impl Iterator<Item = &'static EventDescriptor> {
    EVENT_TYPES
        .iter()
        .filter(move |descriptor| descriptor.topic == topic)
}

#[test]
fn every_topic_is_a_channel_and_every_channel_a_topic() {
    let doc = document();
    let expected: BTreeSet<String> = expected_topics(&stages()).into_keys().collect();
    let mut found = BTreeSet::new();
    for (id, channel) in channels(&doc) {
        let address = text(channel, "address", &format!("channel {id}"));
        assert_eq!(id, address, "channel ids are the topic names");
        found.insert(address.to_owned());
    }
    assert_same(&expected, &found, "channels (topics)");
    for topic in Topic::ALL {
        let version = topic.name().rsplit('.').next().unwrap_or_default();
        assert!(
            version.starts_with('v') && version[1..].parse::<u32>().is_ok(),
            "{topic}: a catalogue topic's name ends in its major version (.v1)"
        );
    }
}

#[test]
fn each_topic_carries_its_event_types_with_their_avro_schemas() {
    let doc = document();
    let schema_files: BTreeSet<&str> = SCHEMA_FILES.iter().map(|(path, _)| *path).collect();
    for topic in Topic::ALL {
        let expected: BTreeSet<String> = descriptors_of(*topic)
            .map(|descriptor| descriptor.name.to_owned())
            .collect();
        let messages = channel_messages(&doc, topic.name());
        let found: BTreeSet<String> = messages.keys().cloned().collect();
        assert_same(&expected, &found, &format!("messages of {topic}"));

        for descriptor in descriptors_of(*topic) {
            let what = format!("message {} of {topic}", descriptor.name);
            let payload = &messages[descriptor.name]["payload"];
            assert_eq!(
                text(payload, "schemaFormat", &what),
                AVRO_FORMAT,
                "{what}: schemaFormat"
            );
            // retail.<folder>.<Name> lives in schemas/<folder>/<Name>.avsc.
            let (namespace, name) = descriptor
                .full_name
                .rsplit_once('.')
                .expect("full names have a namespace");
            let folder = namespace.strip_prefix("retail.").expect("retail namespace");
            let file = format!("{folder}/{name}.avsc");
            let reference = text(&payload["schema"], "$ref", &what);
            assert_eq!(
                reference,
                format!("./{file}"),
                "{what}: the payload refers to the type's .avsc"
            );
            assert!(
                schema_files.contains(file.as_str()),
                "{what}: {file} is not one of the catalogue's schema files"
            );
            let path = repository().join("schemas").join(&file);
            let avsc: Json = serde_json::from_str(
                &std::fs::read_to_string(&path)
                    .unwrap_or_else(|error| panic!("{what}: reading {}: {error}", path.display())),
            )
            .unwrap_or_else(|error| panic!("{what}: {} is not JSON: {error}", path.display()));
            assert_eq!(
                format!(
                    "{}.{}",
                    text(&avsc, "namespace", &file),
                    text(&avsc, "name", &file)
                ),
                descriptor.full_name,
                "{what}: {file} defines another type"
            );
        }
    }
    // No message in components that no topic carries.
    let mut expected: BTreeSet<String> = EVENT_TYPES.iter().map(|d| d.name.to_owned()).collect();
    expected.extend(["DeadLetter".to_owned(), "StateChange".to_owned()]);
    let found: BTreeSet<String> = entries(&doc["components"]["messages"], "components/messages")
        .keys()
        .cloned()
        .collect();
    assert_same(&expected, &found, "components/messages");
}

#[test]
fn keys_subjects_and_revisions_are_the_codecs() {
    let doc = document();
    for descriptor in EVENT_TYPES {
        let topic = descriptor.topic;
        let messages = channel_messages(&doc, topic.name());
        let Some(message) = messages.get(descriptor.name) else {
            panic!("{topic} has no message {}", descriptor.name);
        };
        let what = format!("message {}", descriptor.name);
        let kafka = &message["bindings"]["kafka"];
        let key = resolve(&doc, &kafka["key"]);
        assert_eq!(
            text(key, "type", &what),
            "string",
            "{what}: keys are strings"
        );
        assert_eq!(
            text(key, "x-partition-key", &what),
            topic.key().field(),
            "{what}: the key of {topic}"
        );
        assert_eq!(
            text(message, "x-schema-registry-subject", &what),
            descriptor.subject(),
            "{what}: the codec's subject (TopicRecordNameStrategy)"
        );
        assert_eq!(
            text(kafka, "schemaLookupStrategy", &what),
            "TopicRecordNameStrategy",
            "{what}: subject naming"
        );
        assert_eq!(
            text(kafka, "schemaIdLocation", &what),
            "payload",
            "{what}: the Confluent wire format carries the schema id in the value"
        );
        assert_eq!(
            message["x-revision"].as_i64(),
            Some(i64::from(descriptor.revision)),
            "{what}: x-revision is the event type's revision"
        );
    }
}

/// `(application, action, address, consumer group of a receive)` of every operation.
type Operation = (String, String, String, Option<String>);

fn operations(doc: &Json) -> BTreeSet<Operation> {
    let tags = entries(&doc["components"]["tags"], "components/tags");
    entries(&doc["operations"], "operations")
        .iter()
        .map(|(id, operation)| {
            let what = format!("operation {id}");
            let action = text(operation, "action", &what).to_owned();
            let address = text(resolve(doc, &operation["channel"]), "address", &what).to_owned();
            let applications = operation["tags"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: tags (its application) missing"));
            let [application] = applications.as_slice() else {
                panic!("{what}: exactly one application tag, found {applications:?}");
            };
            let application = text(resolve(doc, application), "name", &what).to_owned();
            assert!(
                tags.contains_key(&application),
                "{what}: {application} is not an application in components/tags"
            );
            let group = operation
                .pointer("/bindings/kafka/groupId/enum")
                .map(|groups| {
                    let groups = strings(Some(groups), &format!("{what}: groupId"));
                    assert_eq!(groups.len(), 1, "{what}: one consumer group");
                    groups.into_iter().next().unwrap_or_default()
                });
            if let Some(messages) = operation.get("messages") {
                // Operations may narrow their channel's messages, never add to them.
                let channel = channel_messages(doc, &address);
                for message in messages.as_array().into_iter().flatten() {
                    let name = text(resolve(doc, message), "name", &what);
                    assert!(
                        channel.contains_key(name),
                        "{what}: {name} is not a message of {address}"
                    );
                }
            }
            (application, action, address, group)
        })
        .collect()
}

#[test]
fn writers_and_readers_are_the_handlers_inputs_and_outputs() {
    let doc = document();
    let stages = stages();
    let topics = expected_topics(&stages);

    // Who sends and receives what, in operations.
    let mut expected: BTreeSet<Operation> = BTreeSet::new();
    for (address, topic) in &topics {
        expected.insert((topic.owner.clone(), "send".into(), address.clone(), None));
        for (reader, group) in &topic.readers {
            expected.insert((
                reader.clone(),
                "receive".into(),
                address.clone(),
                group.clone(),
            ));
        }
    }
    assert_same(
        &expected,
        &operations(&doc),
        "operations (application, action, topic, consumer group)",
    );

    // The same, summed up on each channel.
    for (address, topic) in &topics {
        let channel = channel(&doc, address);
        let what = format!("channel {address}");
        assert_eq!(
            text(channel, "x-owner", &what),
            topic.owner,
            "{what}: x-owner"
        );
        let stage = topic
            .owner_group
            .as_deref()
            .and_then(|group| group.strip_prefix(&format!("{}.", topic.owner)));
        assert_eq!(
            channel.get("x-owner-stage").and_then(Json::as_str),
            stage,
            "{what}: x-owner-stage is the writing stage of a worker with stages"
        );
        let readers: BTreeSet<String> = topic.readers.iter().map(|(app, _)| app.clone()).collect();
        assert_same(
            &readers,
            &strings(channel.get("x-consumers"), &format!("{what}: x-consumers")),
            &format!("x-consumers of {address}"),
        );
        // Internal: a worker's own topic, or an event topic only its writing worker reads.
        let internal = match topic.kind {
            Kind::Event => !readers.is_empty() && readers.iter().all(|app| *app == topic.owner),
            Kind::DeadLetter | Kind::Changelog => true,
        };
        assert_eq!(
            channel["x-internal"].as_bool(),
            Some(internal),
            "{what}: x-internal"
        );
    }

    // The applications: the workers and the external systems, nothing else.
    let mut applications: BTreeMap<String, &str> = stages
        .iter()
        .map(|stage| (stage.worker.to_owned(), "worker"))
        .collect();
    applications.extend(
        EXTERNAL_SYSTEMS
            .iter()
            .map(|system| ((*system).to_owned(), "external")),
    );
    let tags = entries(&doc["components"]["tags"], "components/tags");
    let found: BTreeMap<String, &str> = tags
        .iter()
        .map(|(id, tag)| {
            let what = format!("tag {id}");
            assert_eq!(text(tag, "name", &what), id, "{what}: name is its id");
            (id.clone(), text(tag, "x-kind", &what))
        })
        .collect();
    assert_eq!(found, applications, "applications (components/tags)");
}

/// The runtime's default of one of its flags, whatever the environment says.
fn runtime_default(flag: &str) -> i64 {
    let command = RuntimeConfig::augment_args(clap::Command::new("worker"));
    let argument = command
        .get_arguments()
        .find(|argument| argument.get_long() == Some(flag))
        .unwrap_or_else(|| panic!("the runtime has no --{flag}"));
    let [default] = argument.get_default_values() else {
        panic!("--{flag} has no single default");
    };
    default
        .to_str()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("--{flag}: default {default:?} is not a number"))
}

/// A binding's `topicConfiguration` as the runtime writes topic configs: `cleanup.policy` as
/// comma-separated text, numbers as decimal text.
fn topic_configs(kafka: &Json, what: &str) -> BTreeSet<(String, String)> {
    let Some(configs) = kafka.get("topicConfiguration") else {
        return BTreeSet::new();
    };
    entries(configs, &format!("{what}: topicConfiguration"))
        .iter()
        .map(|(name, value)| {
            let value = match value {
                Json::Array(items) => items
                    .iter()
                    .map(|item| item.as_str().unwrap_or_default().to_owned())
                    .collect::<Vec<_>>()
                    .join(","),
                Json::String(text) => text.clone(),
                other => other.to_string(),
            };
            (name.clone(), value)
        })
        .collect()
}

#[test]
fn topic_configs_are_the_runtimes() {
    let doc = document();
    let partitions = runtime_default("topic-partitions");
    let replicas = runtime_default("topic-replication");
    for (address, topic) in expected_topics(&stages()) {
        let what = format!("channel {address}");
        let channel = channel(&doc, &address);
        let kafka = &resolve(&doc, &channel["bindings"])["kafka"];
        let runtime = match topic.kind {
            Kind::Event => EVENT_TOPIC_CONFIGS,
            Kind::DeadLetter => DEAD_LETTER_TOPIC_CONFIGS,
            Kind::Changelog => CHANGELOG_TOPIC_CONFIGS,
        };
        let runtime: BTreeSet<(String, String)> = runtime
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let documented = topic_configs(kafka, &what);
        assert_same(
            &runtime,
            &documented,
            &format!("topic configs of {address} ({:?} topic)", topic.kind),
        );
        // Changelogs get their inputs' partition count, which is this default unless changed.
        assert_eq!(
            kafka["partitions"].as_i64(),
            Some(partitions),
            "{what}: --topic-partitions default"
        );
        assert_eq!(
            kafka["replicas"].as_i64(),
            Some(replicas),
            "{what}: --topic-replication default"
        );
        let retention = text(channel, "x-retention", &what);
        let compacted = documented.contains(&("cleanup.policy".into(), "compact".into()));
        let timed = documented.iter().any(|(name, _)| name == "retention.ms");
        let expected_start = match (compacted, timed) {
            (true, _) => "compacted",
            (false, false) => "broker default",
            (false, true) => "retention.ms",
        };
        assert!(
            retention.starts_with(expected_start),
            "{what}: x-retention {retention:?} should start with {expected_start:?}"
        );
    }
}

#[test]
fn dead_letter_headers_are_the_runtimes() {
    let doc = document();
    let message = &doc["components"]["messages"]["DeadLetter"];
    let headers = resolve(&doc, &message["headers"]);
    let dead_letter = DeadLetter {
        error_class: "malformed_body".into(),
        message: "reason".into(),
        topic: "storefront.orders.v1".into(),
        partition: 0,
        offset: 1,
        timestamp: Some(2),
        worker: "inventory".into(),
        attempts: 1,
    };
    let all: BTreeSet<String> = dead_letter
        .headers()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let always: BTreeSet<String> = DeadLetter {
        timestamp: None,
        ..dead_letter
    }
    .headers()
    .into_iter()
    .map(|(name, _)| name)
    .collect();
    let documented: BTreeSet<String> = entries(&headers["properties"], "DeadLetter headers")
        .keys()
        .cloned()
        .collect();
    assert_same(&all, &documented, "DeadLetter headers");
    assert_same(
        &always,
        &strings(headers.get("required"), "DeadLetter required headers"),
        "DeadLetter required headers",
    );
}
