//! The errors the REST API answers with, mapped to Confluent's HTTP status and `error_code`.
//!
//! Messages follow Confluent's wording where clients or people are likely to match on it (e.g.
//! `Subject 'x' not found.`); the codes are the ones listed in Confluent's `Errors.java`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::compatibility::InvalidCompatibilityLevel;

/// A request the registry refuses or could not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The subject has no versions visible to the request.
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// The subject exists but the requested version does not (or is hidden as soft-deleted).
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    /// No schema with this id (`Some(id)`), or no version of the subject with this schema.
    #[error("{}", schema_not_found_message(*.0))]
    SchemaNotFound(Option<u32>),
    /// A soft delete of a subject whose versions are all soft-deleted already.
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    /// A permanent delete of a subject that still has live versions.
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    /// A soft delete of a version that is soft-deleted already.
    #[error(
        "Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete permanently"
    )]
    VersionSoftDeleted {
        /// Subject of the version.
        subject: String,
        /// The version as requested.
        version: String,
    },
    /// A permanent delete of a version that is still live.
    #[error(
        "Subject '{subject}' Version {version} was not deleted first before being permanently deleted"
    )]
    VersionNotSoftDeleted {
        /// Subject of the version.
        subject: String,
        /// The version as requested.
        version: String,
    },
    /// `GET`/`DELETE /config/{subject}` for a subject without its own level.
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectCompatibilityNotConfigured(String),
    /// The schema text is not a valid Avro schema, or uses something this registry lacks.
    #[error("{0}")]
    InvalidSchema(String),
    /// A version path segment that is neither a positive integer, `-1` nor `latest`.
    #[error(
        "The specified version '{0}' is not a valid version id. Allowed values are between \
         [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion(String),
    /// `PUT /config` with a level that does not exist.
    #[error(transparent)]
    InvalidCompatibilityLevel(#[from] InvalidCompatibilityLevel),
    /// The schema breaks the subject's compatibility level.
    #[error(
        "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", \
         details: [{}]",
        .messages.join(", ")
    )]
    IncompatibleSchema {
        /// Subject being registered under.
        subject: String,
        /// One message per failed comparison.
        messages: Vec<String>,
    },
    /// The request body is not the JSON this endpoint takes.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed JSON of the wrong shape (e.g. a number where a string belongs).
    #[error("{0}")]
    UnprocessableEntity(String),
    /// A path that exists in no route, or an id that is not a number (JAX-RS answers 404 too).
    #[error("HTTP 404 Not Found")]
    NotFound,
    /// A route that exists, with another method.
    #[error("HTTP 405 Method Not Allowed")]
    MethodNotAllowed,
    /// Writing to the `_schemas` topic failed.
    #[error("{0}")]
    Store(String),
    /// Writing to the `_schemas` topic timed out; the write may or may not have landed.
    #[error("{0}")]
    OperationTimeout(String),
}

impl RegistryError {
    /// HTTP status Confluent answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            RegistryError::SubjectNotFound(_)
            | RegistryError::VersionNotFound(_)
            | RegistryError::SchemaNotFound(_)
            | RegistryError::SubjectSoftDeleted(_)
            | RegistryError::SubjectNotSoftDeleted(_)
            | RegistryError::VersionSoftDeleted { .. }
            | RegistryError::VersionNotSoftDeleted { .. }
            | RegistryError::SubjectCompatibilityNotConfigured(_)
            | RegistryError::NotFound => StatusCode::NOT_FOUND,
            RegistryError::InvalidSchema(_)
            | RegistryError::InvalidVersion(_)
            | RegistryError::InvalidCompatibilityLevel(_)
            | RegistryError::UnprocessableEntity(_) => StatusCode::UNPROCESSABLE_ENTITY,
            RegistryError::IncompatibleSchema { .. } => StatusCode::CONFLICT,
            RegistryError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RegistryError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            RegistryError::Store(_) | RegistryError::OperationTimeout(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// Confluent's `error_code` field.
    pub fn error_code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound(_) => 40401,
            RegistryError::VersionNotFound(_) => 40402,
            RegistryError::SchemaNotFound(_) => 40403,
            RegistryError::SubjectSoftDeleted(_) => 40404,
            RegistryError::SubjectNotSoftDeleted(_) => 40405,
            RegistryError::VersionSoftDeleted { .. } => 40406,
            RegistryError::VersionNotSoftDeleted { .. } => 40407,
            RegistryError::SubjectCompatibilityNotConfigured(_) => 40408,
            RegistryError::InvalidSchema(_) => 42201,
            RegistryError::InvalidVersion(_) => 42202,
            RegistryError::InvalidCompatibilityLevel(_) => 42203,
            // Older Confluent releases (and most clients' docs) use the bare HTTP status here;
            // newer ones answer 40901. Clients key on the HTTP status 409 either way.
            RegistryError::IncompatibleSchema { .. } => 409,
            RegistryError::BadRequest(_) => 400,
            RegistryError::UnprocessableEntity(_) => 422,
            RegistryError::NotFound => 404,
            RegistryError::MethodNotAllowed => 405,
            RegistryError::Store(_) => 50001,
            RegistryError::OperationTimeout(_) => 50002,
        }
    }

    /// Short, bounded name for logs (`error_type` field).
    pub fn kind(&self) -> &'static str {
        match self {
            RegistryError::SubjectNotFound(_) => "subject_not_found",
            RegistryError::VersionNotFound(_) => "version_not_found",
            RegistryError::SchemaNotFound(_) => "schema_not_found",
            RegistryError::SubjectSoftDeleted(_) => "subject_soft_deleted",
            RegistryError::SubjectNotSoftDeleted(_) => "subject_not_soft_deleted",
            RegistryError::VersionSoftDeleted { .. } => "version_soft_deleted",
            RegistryError::VersionNotSoftDeleted { .. } => "version_not_soft_deleted",
            RegistryError::SubjectCompatibilityNotConfigured(_) => "compatibility_not_configured",
            RegistryError::InvalidSchema(_) => "invalid_schema",
            RegistryError::InvalidVersion(_) => "invalid_version",
            RegistryError::InvalidCompatibilityLevel(_) => "invalid_compatibility_level",
            RegistryError::IncompatibleSchema { .. } => "incompatible_schema",
            RegistryError::BadRequest(_) => "bad_request",
            RegistryError::UnprocessableEntity(_) => "unprocessable_entity",
            RegistryError::NotFound => "not_found",
            RegistryError::MethodNotAllowed => "method_not_allowed",
            RegistryError::Store(_) => "store",
            RegistryError::OperationTimeout(_) => "operation_timeout",
        }
    }
}

fn schema_not_found_message(id: Option<u32>) -> String {
    match id {
        Some(id) => format!("Schema {id} not found"),
        None => "Schema not found".to_owned(),
    }
}

/// The JSON body of every error response.
#[derive(Debug, serde::Serialize)]
struct ErrorBody {
    error_code: u32,
    message: String,
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error_type = self.kind(), error = %self, "request failed");
        } else {
            tracing::debug!(error_type = self.kind(), error = %self, "request refused");
        }
        let body = ErrorBody {
            error_code: self.error_code(),
            message: self.to_string(),
        };
        (status, axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_match_confluent() {
        let cases = [
            (RegistryError::SubjectNotFound("s".into()), 404, 40401),
            (RegistryError::VersionNotFound("2".into()), 404, 40402),
            (RegistryError::SchemaNotFound(Some(7)), 404, 40403),
            (RegistryError::SubjectSoftDeleted("s".into()), 404, 40404),
            (RegistryError::SubjectNotSoftDeleted("s".into()), 404, 40405),
            (
                RegistryError::VersionSoftDeleted {
                    subject: "s".into(),
                    version: "1".into(),
                },
                404,
                40406,
            ),
            (
                RegistryError::VersionNotSoftDeleted {
                    subject: "s".into(),
                    version: "1".into(),
                },
                404,
                40407,
            ),
            (
                RegistryError::SubjectCompatibilityNotConfigured("s".into()),
                404,
                40408,
            ),
            (RegistryError::InvalidSchema("bad".into()), 422, 42201),
            (RegistryError::InvalidVersion("0".into()), 422, 42202),
            (
                RegistryError::InvalidCompatibilityLevel(InvalidCompatibilityLevel("X".into())),
                422,
                42203,
            ),
            (
                RegistryError::IncompatibleSchema {
                    subject: "s".into(),
                    messages: vec![],
                },
                409,
                409,
            ),
            (RegistryError::Store("x".into()), 500, 50001),
            (RegistryError::OperationTimeout("x".into()), 500, 50002),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
            assert_eq!(error.error_code(), code, "{error:?}");
        }
    }

    #[test]
    fn incompatible_message_uses_confluent_wording() {
        let error = RegistryError::IncompatibleSchema {
            subject: "orders-value".into(),
            messages: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            error.to_string(),
            "Schema being registered is incompatible with an earlier schema for subject \
             \"orders-value\", details: [a, b]"
        );
    }
}
