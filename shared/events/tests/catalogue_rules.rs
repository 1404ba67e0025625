//! The rules of `schemas/README.md`, checked on every file, and the Rust event list checked
//! against the schemas.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use retail_events::catalogue::SCHEMA_FILES;
use retail_events::{Catalogue, EVENT_TYPES, Topic};
use serde_json::Value as Json;

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

fn avsc_files_on_disk(dir: &Path, prefix: &str, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("schemas/ is readable") {
        let entry = entry.expect("directory entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() {
            avsc_files_on_disk(&path, &format!("{prefix}{name}/"), found);
        } else if name.ends_with(".avsc") {
            found.insert(format!("{prefix}{name}"));
        }
    }
}

fn parsed_files() -> Vec<(&'static str, Json)> {
    SCHEMA_FILES
        .iter()
        .map(|&(path, text)| {
            (
                path,
                serde_json::from_str(text).expect("schema file is JSON"),
            )
        })
        .collect()
}

/// Calls `visit` on every JSON object that is a schema (a type definition), depth first.
fn walk_types(json: &Json, visit: &mut dyn FnMut(&serde_json::Map<String, Json>)) {
    match json {
        Json::Object(object) => {
            visit(object);
            for key in ["type", "items", "values"] {
                if let Some(child) = object.get(key) {
                    walk_types(child, visit);
                }
            }
            if let Some(Json::Array(fields)) = object.get("fields") {
                for field in fields {
                    if let Some(field_type) = field.get("type") {
                        walk_types(field_type, visit);
                    }
                }
            }
        }
        Json::Array(branches) => branches.iter().for_each(|branch| walk_types(branch, visit)),
        _ => {}
    }
}

#[test]
fn every_schema_file_on_disk_is_embedded_and_nothing_else() {
    let mut on_disk = BTreeSet::new();
    avsc_files_on_disk(&schemas_dir(), "", &mut on_disk);
    let embedded: BTreeSet<String> = SCHEMA_FILES
        .iter()
        .map(|(path, _)| (*path).to_owned())
        .collect();
    assert_eq!(on_disk, embedded);
    assert_eq!(embedded.len(), 32);
}

#[test]
fn each_file_defines_one_type_named_after_the_file_in_its_folder_namespace() {
    for (path, json) in parsed_files() {
        let (folder, file) = path.split_once('/').expect("path has a folder");
        assert_eq!(json["namespace"], format!("retail.{folder}"), "{path}");
        assert_eq!(
            format!("{}.avsc", json["name"].as_str().unwrap_or_default()),
            file,
            "{path}"
        );
        assert!(
            json.get("doc")
                .and_then(Json::as_str)
                .is_some_and(|doc| !doc.is_empty()),
            "{path} has no doc"
        );
    }
}

#[test]
fn every_enum_has_unknown_first_and_as_its_default() {
    let mut enums = 0;
    for (path, json) in parsed_files() {
        walk_types(&json, &mut |object| {
            if object.get("type") == Some(&Json::from("enum")) {
                enums += 1;
                let symbols = object["symbols"].as_array().expect("enum has symbols");
                assert_eq!(
                    symbols.first(),
                    Some(&Json::from("UNKNOWN")),
                    "{path}: {:?}",
                    object["name"]
                );
                assert_eq!(
                    object.get("default"),
                    Some(&Json::from("UNKNOWN")),
                    "{path}: {:?}",
                    object["name"]
                );
            }
        });
    }
    assert_eq!(
        enums, 13,
        "enum count changed: update this figure after checking the new enums"
    );
}

#[test]
fn no_schema_uses_floating_point() {
    for (path, text) in SCHEMA_FILES {
        assert!(
            !text.contains("\"float\"") && !text.contains("\"double\""),
            "{path} uses a float"
        );
    }
}

#[test]
fn every_event_schema_starts_with_the_envelope_and_carries_its_revision() {
    let files = parsed_files();
    let mut event_files = BTreeSet::new();
    for (path, json) in &files {
        if let Some(revision) = json.get("revision") {
            let full_name = format!(
                "{}.{}",
                json["namespace"].as_str().unwrap_or_default(),
                json["name"].as_str().unwrap_or_default()
            );
            let descriptor = EVENT_TYPES
                .iter()
                .find(|descriptor| descriptor.full_name == full_name)
                .unwrap_or_else(|| panic!("{path} has a revision but no Rust event type"));
            assert_eq!(
                revision.as_i64(),
                Some(i64::from(descriptor.revision)),
                "{path}"
            );
            assert_eq!(json["fields"][0]["name"], "envelope", "{path}");
            assert_eq!(
                json["fields"][0]["type"], "retail.common.Envelope",
                "{path}"
            );
            event_files.insert(full_name);
        }
    }
    let rust_events: BTreeSet<String> =
        EVENT_TYPES.iter().map(|d| d.full_name.to_owned()).collect();
    assert_eq!(event_files, rust_events);
    assert_eq!(rust_events.len(), 19);
}

#[test]
fn every_event_type_composes_to_a_self_contained_schema() {
    let catalogue = Catalogue::load().expect("catalogue loads");
    assert_eq!(catalogue.events().len(), EVENT_TYPES.len());
    for event in catalogue.events() {
        // Self-contained: parses on its own, and no dangling reference to another file remains.
        let reparsed =
            apache_avro::Schema::parse_str(&event.text).expect("composed schema parses alone");
        assert_eq!(reparsed.canonical_form(), event.schema.canonical_form());
        assert!(
            event.text.contains("\"name\":\"Envelope\""),
            "{}",
            event.descriptor.full_name
        );
    }
    // A type used twice in one event (Address in OrderPlaced) is defined once and referenced after.
    let order_placed = catalogue
        .event("retail.storefront.OrderPlaced")
        .expect("OrderPlaced");
    assert_eq!(order_placed.text.matches("\"name\":\"Address\"").count(), 1);
    assert!(
        order_placed
            .text
            .contains("\"type\":\"retail.common.Address\"")
    );
}

#[test]
fn the_readme_topic_table_matches_the_code() {
    let readme =
        std::fs::read_to_string(schemas_dir().join("README.md")).expect("schemas/README.md");
    let mut rows = BTreeSet::new();
    for line in readme.lines().filter(|line| line.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        // The topic table has five columns; the envelope table above it has two.
        if cells.len() != 5 {
            continue;
        }
        let topic = cells[0].trim_matches('`');
        let key = cells[1].trim_matches('`');
        let owner = cells[3];
        for event in cells[2]
            .split(',')
            .map(|name| name.trim().trim_matches('`'))
        {
            rows.insert((
                topic.to_owned(),
                key.to_owned(),
                event.to_owned(),
                owner.to_owned(),
            ));
        }
    }
    let expected: BTreeSet<(String, String, String, String)> = EVENT_TYPES
        .iter()
        .map(|d| {
            (
                d.topic.name().to_owned(),
                d.topic.key().field().to_owned(),
                d.name.to_owned(),
                d.topic.owner().to_owned(),
            )
        })
        .collect();
    assert_eq!(rows, expected);
    assert_eq!(
        Topic::ALL.len(),
        rows.iter().map(|row| &row.0).collect::<BTreeSet<_>>().len()
    );
}
