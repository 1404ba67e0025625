//! `retailctl schemas register` and `retailctl schemas check`: the catalogue's event schemas
//! under the subjects the workers use (`TopicRecordNameStrategy`, `<topic>-<record full name>`,
//! see `EventDescriptor::subject`), each composed into one self-contained schema exactly as the
//! workers register it (`retail_events::catalogue`).
//!
//! The schemas come from a `schemas/` folder (`--dir`, e.g. an edited checkout before a
//! release) or, without `--dir`, from the catalogue built into this binary.
//!
//! `check` asks the registry whether each local schema is compatible with the subject's latest
//! version (`POST /compatibility/subjects/{subject}/versions/latest?verbose=true`). That one
//! request is written here with `reqwest`: schema_registry_converter's `is_compatible_schema`
//! checks against the subject's level instead and returns no reasons.

use std::io::Write;
use std::path::{Path, PathBuf};

use retail_events::Catalogue;
use schema_registry_converter::async_impl::schema_registry::post_schema;
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};
use serde::Deserialize;

use crate::connection::Connection;
use crate::error::OpsError;

/// Flags of both `schemas` subcommands.
#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    #[command(flatten)]
    pub connection: Connection,

    /// A `schemas/` folder to read the `.avsc` files from [default: the schemas built into
    /// this binary].
    #[arg(long, env = "RETAILCTL_SCHEMAS_DIR")]
    pub dir: Option<PathBuf>,
}

/// Where the schemas were read, for the report.
fn source_label(dir: Option<&Path>) -> String {
    match dir {
        Some(dir) => dir.display().to_string(),
        None => "the catalogue built into retailctl".to_owned(),
    }
}

/// The catalogue from `dir`, or the embedded one.
pub fn load_catalogue(dir: Option<&Path>) -> Result<Catalogue, OpsError> {
    let Some(dir) = dir else {
        return Catalogue::load().map_err(|source| OpsError::Catalogue {
            dir: source_label(None),
            source,
        });
    };
    if !dir.is_dir() {
        return Err(OpsError::Usage(format!(
            "--dir (RETAILCTL_SCHEMAS_DIR) {}: not a folder",
            dir.display()
        )));
    }
    let mut files = Vec::new();
    collect_avsc(dir, dir, &mut files)?;
    if files.is_empty() {
        return Err(OpsError::Usage(format!(
            "--dir (RETAILCTL_SCHEMAS_DIR) {}: no .avsc files in it",
            dir.display()
        )));
    }
    files.sort();
    Catalogue::from_files(
        files
            .iter()
            .map(|(path, text)| (path.as_str(), text.as_str())),
    )
    .map_err(|source| OpsError::Catalogue {
        dir: dir.display().to_string(),
        source,
    })
}

/// `(path below root, text)` of every `.avsc` file under `dir`.
fn collect_avsc(
    root: &Path,
    dir: &Path,
    files: &mut Vec<(String, String)>,
) -> Result<(), OpsError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| OpsError::Io { path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_dir() {
            collect_avsc(root, &path, files)?;
        } else if path
            .extension()
            .is_some_and(|extension| extension == "avsc")
        {
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            let relative = path.strip_prefix(root).unwrap_or(&path);
            files.push((relative.display().to_string(), text));
        }
    }
    Ok(())
}

/// Registers every event type's schema; idempotent (an identical schema keeps its id).
pub async fn register(args: &SchemaArgs, out: &mut impl Write) -> Result<(), OpsError> {
    let catalogue = load_catalogue(args.dir.as_deref())?;
    let connection = &args.connection;
    let settings = connection.registry_settings()?;
    connection.registry_subjects(&settings).await?;
    writeln!(
        out,
        "registering {} schemas from {} at {}",
        catalogue.events().len(),
        source_label(args.dir.as_deref()),
        connection.registry_url_shown()
    )?;
    let mut refused = Vec::new();
    for event in catalogue.events() {
        let subject = event.descriptor.subject();
        let supplied = SuppliedSchema::new(None, SchemaType::Avro, event.text.clone());
        match post_schema(&settings, subject.clone(), supplied).await {
            Ok(registered) => writeln!(out, "registered  {subject}  id {}", registered.id)?,
            Err(error) if error.retriable => {
                return Err(OpsError::RegistryUnreachable {
                    url: connection.registry_url_shown(),
                    reason: format!("registering {subject}: {error}"),
                });
            }
            Err(error) => {
                writeln!(out, "REFUSED     {subject}  {error}")?;
                refused.push(format!("{subject} ({error})"));
            }
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(OpsError::NotRegistered {
            count: refused.len(),
            subjects: refused.join("; "),
        })
    }
}

/// The verdict for one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The local schema can be registered: compatible with the latest version.
    Compatible,
    /// The subject has no version yet: nothing to be compatible with.
    New,
    /// The registry would refuse the local schema, with its reasons.
    Incompatible { messages: Vec<String> },
}

/// The registry's answer to a compatibility request.
#[derive(Debug, Deserialize)]
struct CompatibilityAnswer {
    is_compatible: bool,
    #[serde(default)]
    messages: Vec<String>,
}

/// A Confluent error body.
#[derive(Debug, Deserialize)]
struct RegistryErrorBody {
    error_code: u32,
    #[serde(default)]
    message: String,
}

/// Asks the registry whether `schema` is compatible with `subject`'s latest version.
async fn check_subject(
    client: &reqwest::Client,
    connection: &Connection,
    subject: &str,
    schema: &str,
) -> Result<Verdict, OpsError> {
    let base = connection.schema_registry_url.trim_end_matches('/');
    let url = format!("{base}/compatibility/subjects/{subject}/versions/latest?verbose=true");
    let mut request = client
        .post(url)
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .json(&serde_json::json!({ "schema": schema, "schemaType": "AVRO" }));
    if let Some(credentials) = &connection.schema_registry_basic_auth {
        let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        request = request.basic_auth(user, Some(password));
    }
    let unreachable = |reason: String| OpsError::RegistryUnreachable {
        url: connection.registry_url_shown(),
        reason,
    };
    let response = request
        .send()
        .await
        .map_err(|error| unreachable(format!("checking {subject}: {error}")))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|error| unreachable(format!("checking {subject}: {error}")))?;
    if status.is_success() {
        let answer: CompatibilityAnswer =
            serde_json::from_str(&body).map_err(|error| OpsError::RegistryRefused {
                url: connection.registry_url_shown(),
                what: format!("the compatibility check of {subject}"),
                reason: format!("unexpected answer {body:?}: {error}"),
            })?;
        return Ok(if answer.is_compatible {
            Verdict::Compatible
        } else {
            Verdict::Incompatible {
                messages: answer.messages,
            }
        });
    }
    match serde_json::from_str::<RegistryErrorBody>(&body) {
        // 40401: subject not found; 40402: version not found.
        Ok(error) if matches!(error.error_code, 40401 | 40402) => Ok(Verdict::New),
        Ok(error) if status.is_server_error() => Err(unreachable(format!(
            "checking {subject}: {} {}",
            error.error_code, error.message
        ))),
        Ok(error) => Err(OpsError::RegistryRefused {
            url: connection.registry_url_shown(),
            what: format!("the compatibility check of {subject}"),
            reason: format!("{} {}", error.error_code, error.message),
        }),
        Err(_) => Err(unreachable(format!(
            "checking {subject}: HTTP {status}: {body}"
        ))),
    }
}

/// Checks every event type's local schema against its subject's latest version; fails listing
/// the incompatible subjects.
pub async fn check(args: &SchemaArgs, out: &mut impl Write) -> Result<(), OpsError> {
    let catalogue = load_catalogue(args.dir.as_deref())?;
    let connection = &args.connection;
    let settings = connection.registry_settings()?;
    let existing = connection.registry_subjects(&settings).await?;
    let client =
        retail_codec::registry_client_builder(connection.schema_registry_ca_file.as_deref())
            .map_err(|error| OpsError::Usage(error.to_string()))?
            .timeout(connection.timeout)
            .build()
            .map_err(|error| OpsError::Usage(format!("HTTP client: {error}")))?;
    writeln!(
        out,
        "checking {} schemas from {} against {}",
        catalogue.events().len(),
        source_label(args.dir.as_deref()),
        connection.registry_url_shown()
    )?;
    let mut incompatible = Vec::new();
    for event in catalogue.events() {
        let subject = event.descriptor.subject();
        // A subject with no version has nothing to be compatible with (registries differ in
        // what a compatibility request against it answers: 40401 or "compatible").
        let verdict = if existing.contains(&subject) {
            check_subject(&client, connection, &subject, &event.text).await?
        } else {
            Verdict::New
        };
        match verdict {
            Verdict::Compatible => writeln!(out, "compatible    {subject}")?,
            Verdict::New => writeln!(out, "new           {subject} (no version registered yet)")?,
            Verdict::Incompatible { messages } => {
                writeln!(out, "INCOMPATIBLE  {subject}")?;
                for message in &messages {
                    writeln!(out, "    {message}")?;
                }
                incompatible.push(subject);
            }
        }
    }
    if incompatible.is_empty() {
        Ok(())
    } else {
        Err(OpsError::Incompatible {
            count: incompatible.len(),
            subjects: incompatible.join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository_schemas() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
    }

    #[test]
    fn the_repository_folder_composes_like_the_embedded_catalogue() {
        let from_dir = load_catalogue(Some(&repository_schemas())).expect("schemas/ loads");
        let embedded = load_catalogue(None).expect("embedded loads");
        assert_eq!(from_dir.events().len(), embedded.events().len());
        for (dir_event, embedded_event) in from_dir.events().iter().zip(embedded.events()) {
            assert_eq!(
                dir_event.descriptor.subject(),
                embedded_event.descriptor.subject()
            );
            assert_eq!(
                dir_event.schema.canonical_form(),
                embedded_event.schema.canonical_form()
            );
        }
    }

    #[test]
    fn an_empty_or_missing_folder_is_a_clear_error() {
        let empty = std::env::temp_dir().join(format!("retailctl-empty-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&empty).expect("temp dir");
        let error = load_catalogue(Some(&empty)).expect_err("no files");
        assert!(error.to_string().contains("no .avsc files"), "{error}");
        std::fs::remove_dir(&empty).expect("cleanup");

        let error = load_catalogue(Some(Path::new("/nonexistent/schemas"))).expect_err("missing");
        assert!(
            error.to_string().contains("/nonexistent/schemas"),
            "{error}"
        );
    }
}
