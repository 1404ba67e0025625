//! The HTTP layer: Confluent Schema Registry REST routes on top of [`Store`] and a [`SchemaLog`].
//!
//! Handlers only translate HTTP to store calls and back. Reads take a short lock on the store.
//! Writes go through `AppState::write`, which serializes them, appends the planned records to
//! the log and applies them only once they are durable.
//!
//! Every response (errors and unknown routes included) carries
//! `Content-Type: application/vnd.schemaregistry.v1+json`. Request bodies are parsed as JSON
//! whatever their content type, so clients sending `application/json`,
//! `application/vnd.schemaregistry+json` or the v1 type all work.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compatibility::CompatibilityLevel;
use crate::error::RegistryError;
use crate::log::SchemaLog;
use crate::store::{CandidateSchema, Planned, Store, SubjectVersion, VersionSelector};

/// The media type of every response.
pub const SCHEMA_REGISTRY_V1_JSON: &str = "application/vnd.schemaregistry.v1+json";

/// Builds the REST router over `store` (already replayed) and `log`.
pub fn router<L: SchemaLog>(store: Store, log: L) -> Router {
    let state = AppState {
        shared: Arc::new(Shared {
            store: RwLock::new(store),
            log,
            writer: tokio::sync::Mutex::new(()),
        }),
    };
    Router::new()
        .route("/", get(root))
        .route("/schemas/types", get(schema_types))
        .route("/schemas/ids/{id}", get(schema_by_id::<L>))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id::<L>))
        .route("/schemas/ids/{id}/versions", get(versions_by_id::<L>))
        .route("/schemas/ids/{id}/subjects", get(subjects_by_id::<L>))
        .route("/subjects", get(list_subjects::<L>))
        .route(
            "/subjects/{subject}",
            post(lookup_schema::<L>).delete(delete_subject::<L>),
        )
        .route(
            "/subjects/{subject}/versions",
            get(list_versions::<L>).post(register_schema::<L>),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version::<L>).delete(delete_version::<L>),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema::<L>),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by::<L>),
        )
        .route(
            "/config",
            get(get_global_config::<L>)
                .put(put_global_config::<L>)
                .delete(delete_global_config::<L>),
        )
        .route(
            "/config/{subject}",
            get(get_subject_config::<L>)
                .put(put_subject_config::<L>)
                .delete(delete_subject_config::<L>),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_against_level::<L>),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_against_version::<L>),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(finish_response))
        .with_state(state)
}

/// State shared by all handlers.
#[derive(Debug)]
struct AppState<L> {
    shared: Arc<Shared<L>>,
}

// Not derived: deriving would require `L: Clone`.
impl<L> Clone for AppState<L> {
    fn clone(&self) -> Self {
        AppState {
            shared: Arc::clone(&self.shared),
        }
    }
}

#[derive(Debug)]
struct Shared<L> {
    /// The registry state. A std lock: it is never held across an `.await`.
    store: RwLock<Store>,
    /// Where writes become durable.
    log: L,
    /// Serializes writes so that each plan sees the state left by the previous write, which is
    /// what makes id and version assignment sequential.
    writer: tokio::sync::Mutex<()>,
}

impl<L: SchemaLog> AppState<L> {
    fn read<T>(&self, read: impl FnOnce(&Store) -> T) -> T {
        // Store methods do not panic halfway through a mutation, so a poisoned lock still
        // guards consistent state.
        let store = self
            .shared
            .store
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        read(&store)
    }

    /// Plans against the current state, appends the planned records, then applies them.
    ///
    /// Runs in its own task so that a client hanging up mid-request cannot cancel the write
    /// between "durable in Kafka" and "applied in memory".
    async fn write<T, F>(&self, plan: F) -> Result<T, RegistryError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<Planned<T>, RegistryError> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let task = tokio::spawn(async move {
            let _writer = shared.writer.lock().await;
            let Planned { outcome, records } = {
                let store = shared.store.read().unwrap_or_else(PoisonError::into_inner);
                plan(&store)?
            };
            if records.is_empty() {
                return Ok(outcome);
            }
            let appended = shared.log.append(&records).await;
            let durable = match &appended {
                Ok(()) => records.len(),
                Err(error) => error.delivered,
            };
            {
                let mut store = shared.store.write().unwrap_or_else(PoisonError::into_inner);
                for record in &records[..durable] {
                    store.apply(record);
                }
            }
            appended?;
            Ok(outcome)
        });
        task.await
            .map_err(|error| RegistryError::Store(format!("write task failed: {error}")))?
    }
}

// ------------------------------------------------------------------------------------------------
// Extractors and bodies
// ------------------------------------------------------------------------------------------------

/// Path parameters; a rejection becomes a JSON error like every other failure.
struct PathParams<T>(T);

impl<S, T> FromRequestParts<S> for PathParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = RegistryError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| PathParams(value))
            .map_err(|rejection| RegistryError::BadRequest(rejection.body_text()))
    }
}

/// Query parameters, read leniently like JAX-RS does (`?deleted=TRUE` is true, anything but
/// `true` is false, unknown parameters are ignored).
struct Params(HashMap<String, String>);

impl Params {
    fn flag(&self, name: &str) -> bool {
        self.0
            .get(name)
            .is_some_and(|value| value.eq_ignore_ascii_case("true"))
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = RegistryError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .map(|Query(params)| Params(params))
            .map_err(|rejection| RegistryError::BadRequest(rejection.body_text()))
    }
}

/// Body of register, lookup and compatibility requests. `metadata`, `ruleSet` and other fields
/// are accepted and ignored.
#[derive(Debug, Deserialize)]
struct SchemaRequest {
    #[serde(default)]
    schema: Option<String>,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<Value>>,
}

impl SchemaRequest {
    fn candidate(body: &Bytes) -> Result<CandidateSchema, RegistryError> {
        let request: SchemaRequest = parse_body(body)?;
        CandidateSchema::new(
            request.schema.as_deref().unwrap_or_default(),
            request.schema_type.as_deref(),
            request.references.as_deref().unwrap_or_default(),
        )
    }
}

/// Body of `PUT /config[/{subject}]`.
#[derive(Debug, Deserialize)]
struct ConfigRequest {
    #[serde(default, alias = "compatibilityLevel")]
    compatibility: Option<String>,
}

impl ConfigRequest {
    fn level(body: &Bytes) -> Result<CompatibilityLevel, RegistryError> {
        let request: ConfigRequest = parse_body(body)?;
        let text = request.compatibility.unwrap_or_default();
        Ok(text.parse::<CompatibilityLevel>()?)
    }
}

/// JSON whatever the content type: malformed JSON is a 400, well-formed JSON of the wrong
/// shape a 422, as with Confluent.
fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, RegistryError> {
    serde_json::from_slice(body).map_err(|error| {
        if error.is_data() {
            RegistryError::UnprocessableEntity(format!("Invalid request body: {error}"))
        } else {
            RegistryError::BadRequest(format!("Invalid JSON in request body: {error}"))
        }
    })
}

fn parse_id(text: &str) -> Result<u32, RegistryError> {
    text.parse::<u32>().map_err(|_| RegistryError::NotFound)
}

/// `{"subject","version","id","schema"}`, in Confluent's field order.
#[derive(Debug, Serialize)]
struct VersionResponse {
    subject: String,
    version: u32,
    id: u32,
    schema: String,
}

impl From<SubjectVersion> for VersionResponse {
    fn from(version: SubjectVersion) -> Self {
        VersionResponse {
            subject: version.subject,
            version: version.version,
            id: version.id,
            schema: version.schema,
        }
    }
}

#[derive(Debug, Serialize)]
struct IdResponse {
    id: u32,
}

#[derive(Debug, Serialize)]
struct SchemaResponse {
    schema: String,
}

#[derive(Debug, Serialize)]
struct SubjectVersionPair {
    subject: String,
    version: u32,
}

#[derive(Debug, Serialize)]
struct CompatibilityLevelResponse {
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: CompatibilityLevel,
}

#[derive(Debug, Serialize)]
struct CompatibilityUpdateResponse {
    compatibility: CompatibilityLevel,
}

#[derive(Debug, Serialize)]
struct CompatibilityCheckResponse {
    is_compatible: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<String>>,
}

/// A schema text as the body: it is JSON already.
fn raw_schema(schema: String) -> Response {
    (StatusCode::OK, schema).into_response()
}

// ------------------------------------------------------------------------------------------------
// Handlers
// ------------------------------------------------------------------------------------------------

async fn root() -> Json<Value> {
    Json(Value::Object(serde_json::Map::new()))
}

async fn schema_types() -> Json<[&'static str; 1]> {
    Json(["AVRO"])
}

async fn schema_by_id<L: SchemaLog>(
    State(state): State<AppState<L>>,
    PathParams(id): PathParams<String>,
) -> Result<Json<SchemaResponse>, RegistryError> {
    // `deleted`, `subject`, `fetchMaxId` and `format` are accepted and ignored: soft-deleted
    // schemas are always readable by id, and there is only one format for Avro.
    let id = parse_id(&id)?;
    let schema = state.read(|store| store.schema_by_id(id).map(str::to_owned))?;
    Ok(Json(SchemaResponse { schema }))
}

async fn raw_schema_by_id<L: SchemaLog>(
    State(state): State<AppState<L>>,
    PathParams(id): PathParams<String>,
) -> Result<Response, RegistryError> {
    let id = parse_id(&id)?;
    let schema = state.read(|store| store.schema_by_id(id).map(str::to_owned))?;
    Ok(raw_schema(schema))
}

async fn versions_by_id<L: SchemaLog>(
    State(state): State<AppState<L>>,
    PathParams(id): PathParams<String>,
    params: Params,
) -> Result<Json<Vec<SubjectVersionPair>>, RegistryError> {
    let id = parse_id(&id)?;
    let pairs = state.read(|store| store.versions_for_id(id, params.flag("deleted")))?;
    Ok(Json(
        pairs
            .into_iter()
            .map(|(subject, version)| SubjectVersionPair { subject, version })
            .collect(),
    ))
}

async fn subjects_by_id<L: SchemaLog>(
    State(state): State<AppState<L>>,
    PathParams(id): PathParams<String>,
    params: Params,
) -> Result<Json<Vec<String>>, RegistryError> {
    let id = parse_id(&id)?;
    let subjects = state.read(|store| store.subjects_for_id(id, params.flag("deleted")))?;
    Ok(Json(subjects))
}

async fn list_subjects<L: SchemaLog>(
    State(state): State<AppState<L>>,
    params: Params,
) -> Json<Vec<String>> {
    let prefix = params
        .text("subjectPrefix")
        .filter(|prefix| !prefix.is_empty());
    Json(state.read(|store| store.subjects(params.flag("deleted"), prefix)))
}

async fn lookup_schema<L: SchemaLog>(
    State(state): State<AppState<L>>,
    PathParams(subject): PathParams<String>,
    params: Params,
    body: Bytes,
) -> Result<Json<VersionResponse>, RegistryError> {
    let candidate = SchemaRequest::candidate(&body)?;
    let found = state.read(|store| store.lookup(&subject, &candidate, params.flag("deleted")))?;
    Ok(Json(found.into()))
}

async fn register_schema<L: SchemaLog>(
    State(state): State<AppState<L>>,
    PathParams(subject): PathParams<String>,
    body: Bytes,
) -> Result<Json<IdResponse>, RegistryError> {
    let candidate = SchemaRequest::candidate(&body)?;
    let plan_subject = subject.clone();
    let registered = state
        .write(move |store| {
            let planned = store.plan_register(&plan_subject, &candidate)?;
            let is_new = !planned.records.is_empty();
            Ok(Planned {
                outcome: (planned.outcome, is_new),
                records: planned.records,
            })
        })
        .await;
    match registered {
        Ok((registered, true)) => {
            tracing::info!(
                %subject,
                version = registered.version,
                schema_id = registered.id,
                "schema registered"
            );
            Ok(Json(IdResponse { id: registered.id }))
        }
        Ok((registered, false)) => {
            tracing::debug!(
                %subject,
                version = registered.version,
                schema_id = registered.id,
                "schema already registered"
            );
            Ok(Json(IdResponse { id: registered.id }))
        }
        Err(error) => Err(error),
    }
}

async fn list_versions<L: SchemaLog>(
    State(state): State<AppState<L>>,
    PathParams(subject): PathParams<String>,
    params: Params,
) -> Result<Json<Vec<u32>>, RegistryError> {
    let versions = state.read(|store| store.versions(&subject, params.flag("deleted")))?;
    Ok(Json(versions))
}

async fn get_version<L: SchemaLog>(
    State(state): State<AppState<L>>,
    PathParams((subject, version)): PathParams<(String, String)>,
    params: Params,
) -> Result<Json<VersionResponse>, RegistryError> {
    let selector: VersionSelector = version.parse()?;
    let found = state.read(|store| store.version(&subject, selector, params.flag("deleted")))?;
    Ok(Json(found.into()))
}

async fn get_version_schema<L: SchemaLog>(
    State(state): State<AppState<L>>,
    PathParams((subject, version)): PathParams<(String, String)>,
    params: Params,
) -> Result<Response, RegistryError> {
    let selector: VersionSelector = version.parse()?;
    let found = state.read(|store| store.version(&subject, selector, params.flag("deleted")))?;
    Ok(raw_schema(found.schema))
}

async fn referenced_by<L: SchemaLog>(
    State(state): State<AppState<L>>,
    PathParams((subject, version)): PathParams<(String, String)>,
) -> Result<Json<Vec<u32>>, RegistryError> {
    // References are not supported, so nothing can refer to anything; the version must exist.
    let selector: VersionSelector = version.parse()?;
    state.read(|store| store.version(&subject, selector, true))?;
    Ok(Json(Vec::new()))
}

async fn delete_subject<L: SchemaLog>(
    State(state): State<AppState<L>>,
    PathParams(subject): PathParams<String>,
    params: Params,
) -> Result<Json<Vec<u32>>, RegistryError> {
    let permanent = params.flag("permanent");
    let plan_subject = subject.clone();
    let versions = state
        .write(move |store| store.plan_delete_subject(&plan_subject, permanent))
        .await?;
    tracing::info!(%subject, permanent, versions = ?versions, "subject deleted");
    Ok(Json(versions))
}

async fn delete_version<L: SchemaLog>(
    State(state): State<AppState<L>>,
    PathParams((subject, version)): PathParams<(String, String)>,
    params: Params,
) -> Result<Json<u32>, RegistryError> {
    let selector: VersionSelector = version.parse()?;
    let permanent = params.flag("permanent");
    let plan_subject = subject.clone();
    let deleted = state
        .write(move |store| store.plan_delete_version(&plan_subject, selector, permanent))
        .await?;
    tracing::info!(%subject, version = deleted, permanent, "schema version deleted");
    Ok(Json(deleted))
}

async fn get_global_config<L: SchemaLog>(
    State(state): State<AppState<L>>,
) -> Json<CompatibilityLevelResponse> {
    Json(CompatibilityLevelResponse {
        compatibility_level: state.read(Store::global_compatibility),
    })
}

async fn put_global_config<L: SchemaLog>(
    State(state): State<AppState<L>>,
    body: Bytes,
) -> Result<Json<CompatibilityUpdateResponse>, RegistryError> {
    let level = ConfigRequest::level(&body)?;
    let level = state
        .write(move |store| Ok(store.plan_set_compatibility(None, level)))
        .await?;
    tracing::info!(compatibility = %level, "global compatibility set");
    Ok(Json(CompatibilityUpdateResponse {
        compatibility: level,
    }))
}

async fn delete_global_config<L: SchemaLog>(
    State(state): State<AppState<L>>,
) -> Result<Json<CompatibilityLevelResponse>, RegistryError> {
    let previous = state
        .write(|store| Ok(store.plan_delete_global_compatibility()))
        .await?;
    tracing::info!(previous = %previous, "global compatibility reset to the default");
    Ok(Json(CompatibilityLevelResponse {
        compatibility_level: previous,
    }))
}

async fn get_subject_config<L: SchemaLog>(
    State(state): State<AppState<L>>,
    PathParams(subject): PathParams<String>,
    params: Params,
) -> Result<Json<CompatibilityLevelResponse>, RegistryError> {
    let default_to_global = params.flag("defaultToGlobal");
    let level = state.read(|store| match store.subject_compatibility(&subject) {
        Some(level) => Ok(level),
        None if default_to_global => Ok(store.global_compatibility()),
        None => Err(RegistryError::SubjectCompatibilityNotConfigured(
            subject.clone(),
        )),
    })?;
    Ok(Json(CompatibilityLevelResponse {
        compatibility_level: level,
    }))
}

async fn put_subject_config<L: SchemaLog>(
    State(state): State<AppState<L>>,
    PathParams(subject): PathParams<String>,
    body: Bytes,
) -> Result<Json<CompatibilityUpdateResponse>, RegistryError> {
    let level = ConfigRequest::level(&body)?;
    let plan_subject = subject.clone();
    let level = state
        .write(move |store| Ok(store.plan_set_compatibility(Some(&plan_subject), level)))
        .await?;
    tracing::info!(%subject, compatibility = %level, "subject compatibility set");
    Ok(Json(CompatibilityUpdateResponse {
        compatibility: level,
    }))
}

async fn delete_subject_config<L: SchemaLog>(
    State(state): State<AppState<L>>,
    PathParams(subject): PathParams<String>,
) -> Result<Json<CompatibilityLevelResponse>, RegistryError> {
    let plan_subject = subject.clone();
    let previous = state
        .write(move |store| store.plan_delete_subject_compatibility(&plan_subject))
        .await?;
    tracing::info!(%subject, previous = %previous, "subject compatibility removed");
    Ok(Json(CompatibilityLevelResponse {
        compatibility_level: previous,
    }))
}

async fn check_against_level<L: SchemaLog>(
    State(state): State<AppState<L>>,
    PathParams(subject): PathParams<String>,
    params: Params,
    body: Bytes,
) -> Result<Json<CompatibilityCheckResponse>, RegistryError> {
    check_compatibility(&state, &subject, None, &params, &body)
}

async fn check_against_version<L: SchemaLog>(
    State(state): State<AppState<L>>,
    PathParams((subject, version)): PathParams<(String, String)>,
    params: Params,
    body: Bytes,
) -> Result<Json<CompatibilityCheckResponse>, RegistryError> {
    let selector: VersionSelector = version.parse()?;
    check_compatibility(&state, &subject, Some(selector), &params, &body)
}

fn check_compatibility<L: SchemaLog>(
    state: &AppState<L>,
    subject: &str,
    against: Option<VersionSelector>,
    params: &Params,
    body: &Bytes,
) -> Result<Json<CompatibilityCheckResponse>, RegistryError> {
    let candidate = SchemaRequest::candidate(body)?;
    let messages = state.read(|store| store.check_compatibility(subject, against, &candidate))?;
    Ok(Json(CompatibilityCheckResponse {
        is_compatible: messages.is_empty(),
        messages: params.flag("verbose").then_some(messages),
    }))
}

async fn not_found() -> RegistryError {
    RegistryError::NotFound
}

async fn method_not_allowed() -> RegistryError {
    RegistryError::MethodNotAllowed
}

/// Sets the registry media type on every response and logs the request at debug level.
async fn finish_response(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(SCHEMA_REGISTRY_V1_JSON),
    );
    tracing::debug!(%method, %path, status = response.status().as_u16(), "request served");
    response
}
