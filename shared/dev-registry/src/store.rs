//! The registry's state and every Confluent rule, as a pure state machine (no I/O).
//!
//! State changes in two steps so that memory never runs ahead of the log:
//!
//! 1. a `plan_*` method validates a request against the current state and returns the
//!    [`LogRecord`]s that would carry it out (possibly none, e.g. re-registering an existing
//!    schema) together with the answer for the client;
//! 2. once the log has durably stored those records, [`Store::apply`] folds each into the state.
//!
//! Replaying the topic from the beginning calls the same [`Store::apply`], so a restarted registry
//! ends up in the state it had before. Planning assumes nobody else appends between plan and apply:
//! the HTTP layer serializes writes, and the registry is single-instance.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use apache_avro::Schema;
use serde_json::Value;

use crate::compatibility::{self, CompatibilityLevel, RegisteredSchema};
use crate::error::RegistryError;
use crate::record::{LogRecord, SchemaRecord};

/// Confluent ids and versions are Java ints.
const MAX_ID: u32 = i32::MAX as u32;

/// A version path segment: a number, or `latest` / `-1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSelector {
    /// The highest version (among the ones the request may see).
    Latest,
    /// A specific version, from 1.
    Number(u32),
}

impl FromStr for VersionSelector {
    type Err = RegistryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "latest" || text == "-1" {
            return Ok(VersionSelector::Latest);
        }
        match text.parse::<i32>() {
            Ok(number) if number > 0 => Ok(VersionSelector::Number(number.unsigned_abs())),
            _ => Err(RegistryError::InvalidVersion(text.to_owned())),
        }
    }
}

/// A schema submitted by a client, validated and parsed once.
#[derive(Debug, Clone)]
pub struct CandidateSchema {
    /// The text as submitted; stored as-is when the schema gets a new id.
    text: String,
    /// The text as JSON: equality of schemas is equality of these values, which ignores
    /// whitespace and key order but not docs or defaults (Avro's parsing canonical form would
    /// strip defaults, and a new default is a real change).
    json: Value,
    /// The parsed Avro schema, for compatibility checks.
    avro: Schema,
}

impl CandidateSchema {
    /// Validates a schema from a request body.
    ///
    /// Only Avro is supported (`schema_type` absent or `AVRO`), and no schema references: the dev
    /// registry does not resolve them, so a non-empty `references` list is refused rather than
    /// silently registering a schema whose named types cannot be resolved.
    pub fn new(
        text: &str,
        schema_type: Option<&str>,
        references: &[Value],
    ) -> Result<Self, RegistryError> {
        if let Some(schema_type) = schema_type
            && schema_type != "AVRO"
        {
            return Err(RegistryError::InvalidSchema(format!(
                "Schema type {schema_type} is not supported: the dev registry supports Avro only"
            )));
        }
        if !references.is_empty() {
            return Err(RegistryError::InvalidSchema(
                "Schema references are not supported by the dev registry".to_owned(),
            ));
        }
        if text.trim().is_empty() {
            return Err(RegistryError::InvalidSchema("Empty schema".to_owned()));
        }
        let json: Value = serde_json::from_str(text).map_err(|error| {
            RegistryError::InvalidSchema(format!("Invalid schema: not valid JSON: {error}"))
        })?;
        let avro = Schema::parse_str(text)
            .map_err(|error| RegistryError::InvalidSchema(format!("Invalid schema: {error}")))?;
        Ok(CandidateSchema {
            text: text.to_owned(),
            json,
            avro,
        })
    }

    /// The submitted text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// One version of a subject, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectVersion {
    /// Subject name.
    pub subject: String,
    /// Version within the subject.
    pub version: u32,
    /// Registry-wide schema id.
    pub id: u32,
    /// Schema text.
    pub schema: String,
    /// Whether the version is soft-deleted.
    pub deleted: bool,
}

/// The outcome of a successful plan: what to answer, and what to append before answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned<T> {
    /// What the client is told once `records` are durable.
    pub outcome: T,
    /// Records to append (in order) and then apply; empty when nothing changes.
    pub records: Vec<LogRecord>,
}

/// Where a registration landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    /// Schema id (reused when an equal schema exists anywhere in the registry).
    pub id: u32,
    /// Version within the subject.
    pub version: u32,
}

/// A subject's version as kept in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VersionEntry {
    /// Schema id; the text lives in [`Store::schemas`] so that shared ids share one text.
    id: u32,
    /// Soft-deleted versions are hidden unless a request asks for deleted ones.
    deleted: bool,
}

/// A schema as kept in memory, by id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoredSchema {
    /// Text served by `GET /schemas/ids/{id}`.
    text: String,
    /// Parsed text, for equality with candidates (see [`CandidateSchema`]).
    json: Value,
}

/// All registry state; see the module docs for how it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    /// The level from the command line, used while the log holds no global CONFIG record.
    default_compatibility: CompatibilityLevel,
    /// Global level set with `PUT /config`.
    global_compatibility: Option<CompatibilityLevel>,
    /// Subject levels set with `PUT /config/{subject}`.
    subject_compatibility: BTreeMap<String, CompatibilityLevel>,
    /// Subject -> version -> entry; includes soft-deleted versions, drops hard-deleted ones.
    /// Subjects without any entry are removed so listings need no extra filtering.
    subjects: BTreeMap<String, BTreeMap<u32, VersionEntry>>,
    /// Id -> schema, for every id some version (soft-deleted included) still refers to.
    schemas: BTreeMap<u32, StoredSchema>,
    /// Highest id ever applied. Not lowered by hard deletes, so a running registry never hands
    /// out an id twice (after compaction and a restart a hard-deleted id can come back, exactly
    /// as with Confluent).
    max_id: u32,
}

impl Store {
    /// An empty registry whose global level is `default_compatibility` until set otherwise.
    pub fn new(default_compatibility: CompatibilityLevel) -> Self {
        Store {
            default_compatibility,
            global_compatibility: None,
            subject_compatibility: BTreeMap::new(),
            subjects: BTreeMap::new(),
            schemas: BTreeMap::new(),
            max_id: 0,
        }
    }

    // ----------------------------------------------------------------------------------------
    // Applying records
    // ----------------------------------------------------------------------------------------

    /// Folds one durable record into the state. Never fails: records read back from the topic
    /// may come from elsewhere, and one odd record must not stop the registry from starting.
    pub fn apply(&mut self, record: &LogRecord) {
        match record {
            LogRecord::Schema(schema) => self.apply_schema(schema),
            LogRecord::SchemaTombstone { subject, version } => {
                let removed = self
                    .subjects
                    .get_mut(subject)
                    .and_then(|versions| versions.remove(version));
                if self.subjects.get(subject).is_some_and(BTreeMap::is_empty) {
                    self.subjects.remove(subject);
                }
                if let Some(entry) = removed {
                    self.forget_id_if_unused(entry.id);
                }
            }
            LogRecord::Config {
                subject: None,
                compatibility,
            } => self.global_compatibility = Some(*compatibility),
            LogRecord::Config {
                subject: Some(subject),
                compatibility,
            } => {
                self.subject_compatibility
                    .insert(subject.clone(), *compatibility);
            }
            LogRecord::ConfigTombstone { subject: None } => self.global_compatibility = None,
            LogRecord::ConfigTombstone {
                subject: Some(subject),
            } => {
                self.subject_compatibility.remove(subject);
            }
        }
    }

    fn apply_schema(&mut self, record: &SchemaRecord) {
        let json: Value = match serde_json::from_str(&record.schema) {
            Ok(json) => json,
            Err(error) => {
                tracing::warn!(
                    subject = %record.subject,
                    version = record.version,
                    schema_id = record.id,
                    %error,
                    "skipping schema record whose schema is not json"
                );
                return;
            }
        };
        match self.schemas.get(&record.id) {
            Some(existing) if existing.json != json => {
                // Only possible if something other than this registry wrote the topic. The first
                // text wins so that the id keeps meaning what readers already cached.
                tracing::warn!(
                    subject = %record.subject,
                    version = record.version,
                    schema_id = record.id,
                    "schema record reuses an id for a different schema; keeping the first"
                );
            }
            Some(_) => {}
            None => {
                self.schemas.insert(
                    record.id,
                    StoredSchema {
                        text: record.schema.clone(),
                        json,
                    },
                );
            }
        }
        self.max_id = self.max_id.max(record.id);
        let previous = self
            .subjects
            .entry(record.subject.clone())
            .or_default()
            .insert(
                record.version,
                VersionEntry {
                    id: record.id,
                    deleted: record.deleted,
                },
            );
        if let Some(previous) = previous
            && previous.id != record.id
        {
            self.forget_id_if_unused(previous.id);
        }
    }

    fn forget_id_if_unused(&mut self, id: u32) {
        let used = self
            .subjects
            .values()
            .flat_map(BTreeMap::values)
            .any(|entry| entry.id == id);
        if !used {
            self.schemas.remove(&id);
        }
    }

    // ----------------------------------------------------------------------------------------
    // Reads
    // ----------------------------------------------------------------------------------------

    /// The schema text for an id; soft-deleted versions keep their id readable.
    pub fn schema_by_id(&self, id: u32) -> Result<&str, RegistryError> {
        self.schemas
            .get(&id)
            .map(|schema| schema.text.as_str())
            .ok_or(RegistryError::SchemaNotFound(Some(id)))
    }

    /// `(subject, version)` pairs using an id.
    pub fn versions_for_id(
        &self,
        id: u32,
        include_deleted: bool,
    ) -> Result<Vec<(String, u32)>, RegistryError> {
        self.schema_by_id(id)?;
        Ok(self
            .subjects
            .iter()
            .flat_map(|(subject, versions)| {
                versions
                    .iter()
                    .filter(move |(_, entry)| entry.id == id && (include_deleted || !entry.deleted))
                    .map(move |(version, _)| (subject.clone(), *version))
            })
            .collect())
    }

    /// Subjects using an id, sorted and without duplicates.
    pub fn subjects_for_id(
        &self,
        id: u32,
        include_deleted: bool,
    ) -> Result<Vec<String>, RegistryError> {
        let subjects: BTreeSet<String> = self
            .versions_for_id(id, include_deleted)?
            .into_iter()
            .map(|(subject, _)| subject)
            .collect();
        Ok(subjects.into_iter().collect())
    }

    /// Sorted subjects with at least one visible version, optionally only those starting with
    /// `prefix`.
    pub fn subjects(&self, include_deleted: bool, prefix: Option<&str>) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(subject, _)| prefix.is_none_or(|prefix| subject.starts_with(prefix)))
            .filter(|(_, versions)| {
                versions
                    .values()
                    .any(|entry| include_deleted || !entry.deleted)
            })
            .map(|(subject, _)| subject.clone())
            .collect()
    }

    /// Visible versions of a subject, ascending; `SubjectNotFound` when there are none.
    pub fn versions(
        &self,
        subject: &str,
        include_deleted: bool,
    ) -> Result<Vec<u32>, RegistryError> {
        let versions: Vec<u32> = self
            .visible(subject, include_deleted)
            .map(|(version, _)| version)
            .collect();
        if versions.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        Ok(versions)
    }

    /// One version of a subject.
    pub fn version(
        &self,
        subject: &str,
        selector: VersionSelector,
        include_deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let found = match selector {
            VersionSelector::Latest => self.visible(subject, include_deleted).next_back(),
            VersionSelector::Number(number) => self
                .visible(subject, include_deleted)
                .find(|(version, _)| *version == number),
        };
        match found {
            Some((version, entry)) => self.subject_version(subject, version, entry),
            None if self.visible(subject, include_deleted).next().is_none() => {
                Err(RegistryError::SubjectNotFound(subject.to_owned()))
            }
            None => Err(RegistryError::VersionNotFound(selector_text(selector))),
        }
    }

    /// The (highest) visible version of a subject whose schema equals `candidate`.
    pub fn lookup(
        &self,
        subject: &str,
        candidate: &CandidateSchema,
        include_deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        if self.visible(subject, include_deleted).next().is_none() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        let found = self
            .visible(subject, include_deleted)
            .rev()
            .find(|(_, entry)| self.schema_equals(entry.id, candidate));
        match found {
            Some((version, entry)) => self.subject_version(subject, version, entry),
            None => Err(RegistryError::SchemaNotFound(None)),
        }
    }

    /// The global level: `PUT /config` if set, else the configured default.
    pub fn global_compatibility(&self) -> CompatibilityLevel {
        self.global_compatibility
            .unwrap_or(self.default_compatibility)
    }

    /// The subject's own level, if one is set.
    pub fn subject_compatibility(&self, subject: &str) -> Option<CompatibilityLevel> {
        self.subject_compatibility.get(subject).copied()
    }

    /// The level registrations under `subject` are checked with.
    pub fn effective_compatibility(&self, subject: &str) -> CompatibilityLevel {
        self.subject_compatibility(subject)
            .unwrap_or_else(|| self.global_compatibility())
    }

    /// Compatibility of `candidate` with the subject, under the subject's effective level.
    ///
    /// `against: None` checks the versions the level requires (all live versions for transitive
    /// levels, the latest otherwise); `Some(selector)` checks exactly that one live version.
    /// A subject without live versions (or `latest` of one) is compatible with anything.
    /// Returns the failure messages; empty means compatible.
    pub fn check_compatibility(
        &self,
        subject: &str,
        against: Option<VersionSelector>,
        candidate: &CandidateSchema,
    ) -> Result<Vec<String>, RegistryError> {
        let level = self.effective_compatibility(subject);
        match against {
            None => self.check_against_live_versions(subject, level, candidate),
            Some(VersionSelector::Latest) => match self.visible(subject, false).next_back() {
                None => Ok(Vec::new()),
                Some((version, entry)) => {
                    let schema = self.parse_stored(entry.id)?;
                    Ok(compatibility::check_one(
                        level,
                        &candidate.avro,
                        RegisteredSchema {
                            version,
                            schema: &schema,
                        },
                    ))
                }
            },
            Some(VersionSelector::Number(number)) => {
                let Some((version, entry)) = self
                    .visible(subject, false)
                    .find(|(version, _)| *version == number)
                else {
                    return Err(RegistryError::VersionNotFound(number.to_string()));
                };
                let schema = self.parse_stored(entry.id)?;
                Ok(compatibility::check_one(
                    level,
                    &candidate.avro,
                    RegisteredSchema {
                        version,
                        schema: &schema,
                    },
                ))
            }
        }
    }

    fn check_against_live_versions(
        &self,
        subject: &str,
        level: CompatibilityLevel,
        candidate: &CandidateSchema,
    ) -> Result<Vec<String>, RegistryError> {
        if level == CompatibilityLevel::None {
            return Ok(Vec::new());
        }
        let live: Vec<(u32, Schema)> = self
            .visible(subject, false)
            .map(|(version, entry)| Ok((version, self.parse_stored(entry.id)?)))
            .collect::<Result<_, RegistryError>>()?;
        let registered: Vec<RegisteredSchema<'_>> = live
            .iter()
            .map(|(version, schema)| RegisteredSchema {
                version: *version,
                schema,
            })
            .collect();
        Ok(compatibility::check(level, &candidate.avro, &registered))
    }

    // ----------------------------------------------------------------------------------------
    // Plans
    // ----------------------------------------------------------------------------------------

    /// `POST /subjects/{subject}/versions`.
    ///
    /// * A live version with an equal schema: its id, nothing written (idempotent).
    /// * Otherwise the schema must be compatible with the live versions under the subject's
    ///   level (`IncompatibleSchema` if not).
    /// * The id is that of an equal schema anywhere in the registry (soft-deleted versions
    ///   included), else one more than the highest id so far.
    /// * The version is one more than the highest version the subject still has, soft-deleted
    ///   ones included (hard-deleted versions are gone, as in Confluent).
    pub fn plan_register(
        &self,
        subject: &str,
        candidate: &CandidateSchema,
    ) -> Result<Planned<Registered>, RegistryError> {
        if let Some((version, entry)) = self
            .visible(subject, false)
            .rev()
            .find(|(_, entry)| self.schema_equals(entry.id, candidate))
        {
            return Ok(Planned {
                outcome: Registered {
                    id: entry.id,
                    version,
                },
                records: Vec::new(),
            });
        }
        let messages = self.check_against_live_versions(
            subject,
            self.effective_compatibility(subject),
            candidate,
        )?;
        if !messages.is_empty() {
            return Err(RegistryError::IncompatibleSchema {
                subject: subject.to_owned(),
                messages,
            });
        }
        let existing = self
            .schemas
            .iter()
            .find(|(_, stored)| stored.json == candidate.json);
        let (id, text) = match existing {
            // Reuse the stored text too, so that every record of an id carries the same text.
            Some((id, stored)) => (*id, stored.text.clone()),
            None => (self.next_id()?, candidate.text.clone()),
        };
        let version = self
            .visible(subject, true)
            .next_back()
            .map_or(Ok(1), |(version, _)| next_number(version, "version"))?;
        Ok(Planned {
            outcome: Registered { id, version },
            records: vec![LogRecord::Schema(SchemaRecord {
                subject: subject.to_owned(),
                version,
                id,
                schema: text,
                deleted: false,
            })],
        })
    }

    /// `DELETE /subjects/{subject}[?permanent=true]`; the outcome is the deleted versions.
    ///
    /// A soft delete marks every live version deleted (`SubjectSoftDeleted` if none is live); a
    /// permanent delete requires every version to be soft-deleted first (`SubjectNotSoftDeleted`)
    /// and writes a tombstone per version.
    pub fn plan_delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Planned<Vec<u32>>, RegistryError> {
        if self.visible(subject, true).next().is_none() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        if permanent {
            if self.visible(subject, false).next().is_some() {
                return Err(RegistryError::SubjectNotSoftDeleted(subject.to_owned()));
            }
            let versions: Vec<u32> = self
                .visible(subject, true)
                .map(|(version, _)| version)
                .collect();
            let records = versions
                .iter()
                .map(|version| LogRecord::SchemaTombstone {
                    subject: subject.to_owned(),
                    version: *version,
                })
                .collect();
            return Ok(Planned {
                outcome: versions,
                records,
            });
        }
        let live: Vec<(u32, VersionEntry)> = self.visible(subject, false).collect();
        if live.is_empty() {
            return Err(RegistryError::SubjectSoftDeleted(subject.to_owned()));
        }
        let records = live
            .iter()
            .map(|(version, entry)| self.soft_delete_record(subject, *version, *entry))
            .collect::<Result<_, _>>()?;
        Ok(Planned {
            outcome: live.into_iter().map(|(version, _)| version).collect(),
            records,
        })
    }

    /// `DELETE /subjects/{subject}/versions/{version}[?permanent=true]`; the outcome is the
    /// deleted version.
    ///
    /// `latest` means the latest live version for a soft delete (the latest soft-deleted one if
    /// none is live) and the latest version of any kind for a permanent delete.
    pub fn plan_delete_version(
        &self,
        subject: &str,
        selector: VersionSelector,
        permanent: bool,
    ) -> Result<Planned<u32>, RegistryError> {
        let found = match selector {
            VersionSelector::Number(number) => self
                .visible(subject, true)
                .find(|(version, _)| *version == number),
            VersionSelector::Latest if permanent => self.visible(subject, true).next_back(),
            VersionSelector::Latest => self
                .visible(subject, false)
                .next_back()
                .or_else(|| self.visible(subject, true).next_back()),
        };
        let Some((version, entry)) = found else {
            if self.visible(subject, true).next().is_none() {
                return Err(RegistryError::SubjectNotFound(subject.to_owned()));
            }
            return Err(RegistryError::VersionNotFound(selector_text(selector)));
        };
        match (permanent, entry.deleted) {
            (false, true) => Err(RegistryError::VersionSoftDeleted {
                subject: subject.to_owned(),
                version: version.to_string(),
            }),
            (true, false) => Err(RegistryError::VersionNotSoftDeleted {
                subject: subject.to_owned(),
                version: version.to_string(),
            }),
            (false, false) => Ok(Planned {
                outcome: version,
                records: vec![self.soft_delete_record(subject, version, entry)?],
            }),
            (true, true) => Ok(Planned {
                outcome: version,
                records: vec![LogRecord::SchemaTombstone {
                    subject: subject.to_owned(),
                    version,
                }],
            }),
        }
    }

    /// `PUT /config` (`subject: None`) or `PUT /config/{subject}`.
    pub fn plan_set_compatibility(
        &self,
        subject: Option<&str>,
        level: CompatibilityLevel,
    ) -> Planned<CompatibilityLevel> {
        Planned {
            outcome: level,
            records: vec![LogRecord::Config {
                subject: subject.map(str::to_owned),
                compatibility: level,
            }],
        }
    }

    /// `DELETE /config/{subject}`; the outcome is the level that was removed.
    pub fn plan_delete_subject_compatibility(
        &self,
        subject: &str,
    ) -> Result<Planned<CompatibilityLevel>, RegistryError> {
        let level = self
            .subject_compatibility(subject)
            .ok_or_else(|| RegistryError::SubjectCompatibilityNotConfigured(subject.to_owned()))?;
        Ok(Planned {
            outcome: level,
            records: vec![LogRecord::ConfigTombstone {
                subject: Some(subject.to_owned()),
            }],
        })
    }

    /// `DELETE /config`: back to the configured default; the outcome is the level before.
    pub fn plan_delete_global_compatibility(&self) -> Planned<CompatibilityLevel> {
        Planned {
            outcome: self.global_compatibility(),
            records: vec![LogRecord::ConfigTombstone { subject: None }],
        }
    }

    // ----------------------------------------------------------------------------------------
    // Helpers
    // ----------------------------------------------------------------------------------------

    /// Versions of `subject` ascending, soft-deleted ones only if `include_deleted`.
    fn visible(
        &self,
        subject: &str,
        include_deleted: bool,
    ) -> impl DoubleEndedIterator<Item = (u32, VersionEntry)> + '_ {
        self.subjects
            .get(subject)
            .into_iter()
            .flat_map(|versions| versions.iter())
            .filter(move |(_, entry)| include_deleted || !entry.deleted)
            .map(|(version, entry)| (*version, *entry))
    }

    fn schema_equals(&self, id: u32, candidate: &CandidateSchema) -> bool {
        self.schemas
            .get(&id)
            .is_some_and(|stored| stored.json == candidate.json)
    }

    fn stored(&self, id: u32) -> Result<&StoredSchema, RegistryError> {
        // Every version's id has a schema (apply keeps them in step); an error here means a bug.
        self.schemas.get(&id).ok_or_else(|| {
            RegistryError::Store(format!("schema id {id} is missing from the store"))
        })
    }

    fn parse_stored(&self, id: u32) -> Result<Schema, RegistryError> {
        let stored = self.stored(id)?;
        Schema::parse_str(&stored.text).map_err(|error| {
            RegistryError::Store(format!("stored schema id {id} does not parse: {error}"))
        })
    }

    fn subject_version(
        &self,
        subject: &str,
        version: u32,
        entry: VersionEntry,
    ) -> Result<SubjectVersion, RegistryError> {
        Ok(SubjectVersion {
            subject: subject.to_owned(),
            version,
            id: entry.id,
            schema: self.stored(entry.id)?.text.clone(),
            deleted: entry.deleted,
        })
    }

    fn soft_delete_record(
        &self,
        subject: &str,
        version: u32,
        entry: VersionEntry,
    ) -> Result<LogRecord, RegistryError> {
        Ok(LogRecord::Schema(SchemaRecord {
            subject: subject.to_owned(),
            version,
            id: entry.id,
            schema: self.stored(entry.id)?.text.clone(),
            deleted: true,
        }))
    }

    fn next_id(&self) -> Result<u32, RegistryError> {
        next_number(self.max_id, "schema id")
    }
}

fn next_number(current: u32, what: &str) -> Result<u32, RegistryError> {
    current
        .checked_add(1)
        .filter(|next| *next <= MAX_ID)
        .ok_or_else(|| RegistryError::Store(format!("no {what} left after {current}")))
}

fn selector_text(selector: VersionSelector) -> String {
    match selector {
        VersionSelector::Latest => "latest".to_owned(),
        VersionSelector::Number(number) => number.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::record::{Decoded, decode, encode};

    /// A store plus every record it applied, as the log would hold them.
    struct Harness {
        store: Store,
        log: Vec<LogRecord>,
    }

    impl Harness {
        fn new() -> Self {
            Harness {
                store: Store::new(CompatibilityLevel::Backward),
                log: Vec::new(),
            }
        }

        fn commit<T>(&mut self, planned: Planned<T>) -> T {
            for record in &planned.records {
                self.store.apply(record);
            }
            self.log.extend(planned.records);
            planned.outcome
        }

        fn register(&mut self, subject: &str, schema: &str) -> Result<Registered, RegistryError> {
            let candidate = candidate(schema);
            let planned = self.store.plan_register(subject, &candidate)?;
            Ok(self.commit(planned))
        }

        fn must_register(&mut self, subject: &str, schema: &str) -> Registered {
            self.register(subject, schema).expect("registers")
        }

        fn delete_subject(
            &mut self,
            subject: &str,
            permanent: bool,
        ) -> Result<Vec<u32>, RegistryError> {
            let planned = self.store.plan_delete_subject(subject, permanent)?;
            Ok(self.commit(planned))
        }

        fn delete_version(
            &mut self,
            subject: &str,
            version: &str,
            permanent: bool,
        ) -> Result<u32, RegistryError> {
            let selector = version.parse()?;
            let planned = self
                .store
                .plan_delete_version(subject, selector, permanent)?;
            Ok(self.commit(planned))
        }

        fn set_level(&mut self, subject: Option<&str>, level: CompatibilityLevel) {
            let planned = self.store.plan_set_compatibility(subject, level);
            self.commit(planned);
        }
    }

    fn candidate(schema: &str) -> CandidateSchema {
        CandidateSchema::new(schema, None, &[]).expect("test schema is valid")
    }

    fn order(extra_fields: &str) -> String {
        format!(
            r#"{{"type":"record","name":"Order","namespace":"retail","fields":[{{"name":"id","type":"string"}}{extra_fields}]}}"#
        )
    }

    const WITH_QTY_DEFAULT: &str = r#",{"name":"qty","type":"int","default":0}"#;
    const WITH_QTY: &str = r#",{"name":"qty","type":"int"}"#;

    #[test]
    fn version_selectors_follow_confluent() {
        assert_eq!("latest".parse(), Ok(VersionSelector::Latest));
        assert_eq!("-1".parse(), Ok(VersionSelector::Latest));
        assert_eq!("1".parse(), Ok(VersionSelector::Number(1)));
        assert_eq!(
            "2147483647".parse(),
            Ok(VersionSelector::Number(2_147_483_647))
        );
        for bad in ["0", "-2", "abc", "", "1.5", "2147483648", "Latest"] {
            assert_eq!(
                bad.parse::<VersionSelector>(),
                Err(RegistryError::InvalidVersion(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn candidates_must_be_avro_without_references() {
        let schema = order("");
        assert!(CandidateSchema::new(&schema, Some("AVRO"), &[]).is_ok());
        let protobuf = CandidateSchema::new(&schema, Some("PROTOBUF"), &[]);
        assert!(
            matches!(&protobuf, Err(RegistryError::InvalidSchema(message)) if message.contains("Avro only")),
            "{protobuf:?}"
        );
        let reference = serde_json::json!({"name": "x", "subject": "y", "version": 1});
        let with_refs = CandidateSchema::new(&schema, None, &[reference]);
        assert!(
            matches!(&with_refs, Err(RegistryError::InvalidSchema(message)) if message.contains("references are not supported")),
            "{with_refs:?}"
        );
        for bad in [
            "",
            "{",
            r#"{"type":"record","name":"R"}"#,
            r#""nosuchtype""#,
        ] {
            assert!(
                matches!(
                    CandidateSchema::new(bad, None, &[]),
                    Err(RegistryError::InvalidSchema(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn ids_and_versions_start_at_one_and_grow() {
        let mut harness = Harness::new();
        assert_eq!(
            harness.must_register("orders-value", &order("")),
            Registered { id: 1, version: 1 }
        );
        assert_eq!(
            harness.must_register("orders-value", &order(WITH_QTY_DEFAULT)),
            Registered { id: 2, version: 2 }
        );
        assert_eq!(
            harness.store.versions("orders-value", false),
            Ok(vec![1, 2])
        );
        assert_eq!(harness.log.len(), 2);
    }

    #[test]
    fn registering_an_equal_schema_again_returns_its_id_and_writes_nothing() {
        let mut harness = Harness::new();
        harness.must_register("s", &order(""));
        harness.must_register("s", &order(WITH_QTY_DEFAULT));
        // Same JSON, different whitespace and key order.
        let reformatted = r#"{ "namespace": "retail", "name": "Order", "type": "record",
            "fields": [ { "type": "string", "name": "id" } ] }"#;
        let planned = harness
            .store
            .plan_register("s", &candidate(reformatted))
            .expect("plans");
        assert_eq!(planned.outcome, Registered { id: 1, version: 1 });
        assert!(planned.records.is_empty());
    }

    #[test]
    fn defaults_and_docs_make_schemas_different() {
        let mut harness = Harness::new();
        harness.set_level(None, CompatibilityLevel::None);
        let with_default = order(r#",{"name":"qty","type":"int","default":1}"#);
        let other_default = order(r#",{"name":"qty","type":"int","default":2}"#);
        let with_doc = order(r#",{"name":"qty","type":"int","default":1,"doc":"how many"}"#);
        assert_eq!(harness.must_register("s", &with_default).id, 1);
        assert_eq!(harness.must_register("s", &other_default).id, 2);
        assert_eq!(harness.must_register("s", &with_doc).id, 3);
    }

    #[test]
    fn equal_schemas_share_an_id_across_subjects() {
        let mut harness = Harness::new();
        harness.must_register("a", &order(""));
        let other = harness.must_register("b", &order(WITH_QTY_DEFAULT));
        assert_eq!(other, Registered { id: 2, version: 1 });
        // Reformatted text of id 1 under a third subject: same id, and the record carries the
        // first text so that id 1 means one text everywhere.
        let reformatted = order("").replace(',', ", ");
        assert_eq!(
            harness.must_register("c", &reformatted),
            Registered { id: 1, version: 1 }
        );
        let Some(LogRecord::Schema(record)) = harness.log.last() else {
            panic!("expected a schema record, got {:?}", harness.log.last());
        };
        assert_eq!(record.schema, order(""));
        assert_eq!(
            harness.store.subjects_for_id(1, false),
            Ok(vec!["a".into(), "c".into()])
        );
        assert_eq!(
            harness.store.versions_for_id(1, false),
            Ok(vec![("a".into(), 1), ("c".into(), 1)])
        );
        // A new schema after reuse still gets max + 1.
        assert_eq!(
            harness.must_register("c", &order(WITH_QTY_DEFAULT)).id,
            2,
            "equal to b's schema"
        );
        let fresh = order(r#",{"name":"note","type":"string","default":""}"#);
        assert_eq!(harness.must_register("c", &fresh).id, 3);
    }

    #[test]
    fn soft_deleted_schemas_keep_their_id_for_reuse_and_lookup_by_id() {
        let mut harness = Harness::new();
        harness.must_register("a", &order(""));
        assert_eq!(harness.delete_subject("a", false), Ok(vec![1]));
        assert_eq!(harness.store.schema_by_id(1), Ok(order("").as_str()));
        assert_eq!(harness.store.versions_for_id(1, false), Ok(vec![]));
        assert_eq!(
            harness.store.versions_for_id(1, true),
            Ok(vec![("a".into(), 1)])
        );
        assert_eq!(
            harness.must_register("b", &order("")),
            Registered { id: 1, version: 1 }
        );
    }

    #[test]
    fn versions_continue_after_soft_delete_and_restart_after_hard_delete() {
        let mut harness = Harness::new();
        harness.must_register("s", &order(""));
        harness.must_register("s", &order(WITH_QTY_DEFAULT));
        assert_eq!(harness.delete_version("s", "2", false), Ok(2));
        assert_eq!(harness.store.versions("s", false), Ok(vec![1]));
        assert_eq!(harness.store.versions("s", true), Ok(vec![1, 2]));
        // Re-registering the soft-deleted schema is a new version with the same id.
        assert_eq!(
            harness.must_register("s", &order(WITH_QTY_DEFAULT)),
            Registered { id: 2, version: 3 }
        );
        // Soft-delete the whole subject: the next version still counts past the deleted ones.
        assert_eq!(harness.delete_subject("s", false), Ok(vec![1, 3]));
        assert_eq!(
            harness.must_register("s", &order("")),
            Registered { id: 1, version: 4 }
        );
        // Hard-delete everything: numbering starts over, ids do not.
        assert_eq!(harness.delete_subject("s", false), Ok(vec![4]));
        assert_eq!(harness.delete_subject("s", true), Ok(vec![1, 2, 3, 4]));
        assert_eq!(
            harness.store.versions("s", true),
            Err(RegistryError::SubjectNotFound("s".into()))
        );
        assert_eq!(
            harness.store.schema_by_id(1),
            Err(RegistryError::SchemaNotFound(Some(1)))
        );
        let fresh = order(r#",{"name":"note","type":"string","default":""}"#);
        assert_eq!(
            harness.must_register("s", &fresh),
            Registered { id: 3, version: 1 }
        );
    }

    #[test]
    fn permanent_delete_requires_soft_delete_first() {
        let mut harness = Harness::new();
        harness.must_register("s", &order(""));
        harness.must_register("s", &order(WITH_QTY_DEFAULT));
        assert_eq!(
            harness.delete_subject("s", true),
            Err(RegistryError::SubjectNotSoftDeleted("s".into()))
        );
        assert_eq!(
            harness.delete_version("s", "1", true),
            Err(RegistryError::VersionNotSoftDeleted {
                subject: "s".into(),
                version: "1".into()
            })
        );
        assert_eq!(harness.delete_version("s", "1", false), Ok(1));
        assert_eq!(
            harness.delete_version("s", "1", false),
            Err(RegistryError::VersionSoftDeleted {
                subject: "s".into(),
                version: "1".into()
            })
        );
        // Version 2 is still live, so the subject cannot go permanently yet.
        assert_eq!(
            harness.delete_subject("s", true),
            Err(RegistryError::SubjectNotSoftDeleted("s".into()))
        );
        assert_eq!(harness.delete_version("s", "1", true), Ok(1));
        assert_eq!(harness.store.versions("s", true), Ok(vec![2]));
        assert_eq!(harness.delete_subject("s", false), Ok(vec![2]));
        assert_eq!(
            harness.delete_subject("s", false),
            Err(RegistryError::SubjectSoftDeleted("s".into()))
        );
        assert_eq!(harness.delete_subject("s", true), Ok(vec![2]));
        assert_eq!(
            harness.delete_subject("s", false),
            Err(RegistryError::SubjectNotFound("s".into()))
        );
        assert_eq!(
            harness.delete_version("s", "1", false),
            Err(RegistryError::SubjectNotFound("s".into()))
        );
    }

    #[test]
    fn deleting_missing_and_latest_versions() {
        let mut harness = Harness::new();
        harness.must_register("s", &order(""));
        harness.must_register("s", &order(WITH_QTY_DEFAULT));
        assert_eq!(
            harness.delete_version("s", "9", false),
            Err(RegistryError::VersionNotFound("9".into()))
        );
        assert_eq!(harness.delete_version("s", "latest", false), Ok(2));
        // Latest live is now 1.
        assert_eq!(harness.delete_version("s", "latest", false), Ok(1));
        // Nothing live: `latest` names the latest soft-deleted version, which is soft-deleted.
        assert_eq!(
            harness.delete_version("s", "latest", false),
            Err(RegistryError::VersionSoftDeleted {
                subject: "s".into(),
                version: "2".into()
            })
        );
        assert_eq!(harness.delete_version("s", "latest", true), Ok(2));
        assert_eq!(harness.store.versions("s", true), Ok(vec![1]));
    }

    #[test]
    fn reads_respect_the_deleted_flag() {
        let mut harness = Harness::new();
        harness.must_register("s", &order(""));
        harness.must_register("s", &order(WITH_QTY_DEFAULT));
        harness.must_register("t", &order(""));
        harness.delete_version("s", "2", false).expect("deletes");
        let store = &harness.store;
        assert_eq!(
            store
                .version("s", VersionSelector::Latest, false)
                .map(|v| v.version),
            Ok(1)
        );
        assert_eq!(
            store
                .version("s", VersionSelector::Latest, true)
                .map(|v| (v.version, v.deleted)),
            Ok((2, true))
        );
        assert_eq!(
            store.version("s", VersionSelector::Number(2), false),
            Err(RegistryError::VersionNotFound("2".into()))
        );
        assert_eq!(
            store.version("s", VersionSelector::Number(2), true),
            Ok(SubjectVersion {
                subject: "s".into(),
                version: 2,
                id: 2,
                schema: order(WITH_QTY_DEFAULT),
                deleted: true,
            })
        );
        assert_eq!(
            store.version("nope", VersionSelector::Latest, true),
            Err(RegistryError::SubjectNotFound("nope".into()))
        );

        harness.delete_subject("t", false).expect("deletes");
        let store = &harness.store;
        assert_eq!(store.subjects(false, None), vec!["s".to_owned()]);
        assert_eq!(
            store.subjects(true, None),
            vec!["s".to_owned(), "t".to_owned()]
        );
        assert_eq!(store.subjects(true, Some("t")), vec!["t".to_owned()]);
        assert_eq!(
            store.version("t", VersionSelector::Number(1), false),
            Err(RegistryError::SubjectNotFound("t".into()))
        );
        assert_eq!(
            store.versions("t", false),
            Err(RegistryError::SubjectNotFound("t".into()))
        );
    }

    #[test]
    fn lookup_finds_equal_schemas_under_the_subject_only() {
        let mut harness = Harness::new();
        harness.must_register("s", &order(""));
        harness.must_register("s", &order(WITH_QTY_DEFAULT));
        let store = &harness.store;
        let found = store
            .lookup("s", &candidate(&order(WITH_QTY_DEFAULT)), false)
            .expect("found");
        assert_eq!((found.version, found.id), (2, 2));
        assert_eq!(
            store.lookup("s", &candidate(&order(WITH_QTY)), false),
            Err(RegistryError::SchemaNotFound(None))
        );
        assert_eq!(
            store.lookup("other", &candidate(&order("")), false),
            Err(RegistryError::SubjectNotFound("other".into()))
        );
        harness.delete_version("s", "1", false).expect("deletes");
        let store = &harness.store;
        assert_eq!(
            store.lookup("s", &candidate(&order("")), false),
            Err(RegistryError::SchemaNotFound(None))
        );
        assert_eq!(
            store
                .lookup("s", &candidate(&order("")), true)
                .map(|v| v.version),
            Ok(1)
        );
    }

    #[test]
    fn registration_is_checked_with_the_subject_level_or_the_global_one() {
        let mut harness = Harness::new();
        harness.must_register("s", &order(""));
        // BACKWARD (the default): adding a field without default breaks it.
        let incompatible = harness.register("s", &order(WITH_QTY));
        let Err(RegistryError::IncompatibleSchema { subject, messages }) = &incompatible else {
            panic!("expected IncompatibleSchema, got {incompatible:?}");
        };
        assert_eq!(subject, "s");
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert_eq!(harness.log.len(), 1, "nothing written for a refused schema");

        // Global FORWARD accepts it...
        harness.set_level(None, CompatibilityLevel::Forward);
        assert_eq!(
            harness.store.effective_compatibility("s"),
            CompatibilityLevel::Forward
        );
        harness.must_register("s", &order(WITH_QTY));
        // ...but a subject-level BACKWARD wins over the global level.
        harness.set_level(Some("s"), CompatibilityLevel::Backward);
        let more = order(r#",{"name":"qty","type":"int"},{"name":"x","type":"int"}"#);
        assert!(matches!(
            harness.register("s", &more),
            Err(RegistryError::IncompatibleSchema { .. })
        ));
        // Removing the subject level falls back to global FORWARD.
        let planned = harness
            .store
            .plan_delete_subject_compatibility("s")
            .expect("configured");
        assert_eq!(planned.outcome, CompatibilityLevel::Backward);
        harness.commit(planned);
        assert_eq!(
            harness.store.plan_delete_subject_compatibility("s"),
            Err(RegistryError::SubjectCompatibilityNotConfigured("s".into()))
        );
        harness.must_register("s", &more);
    }

    #[test]
    fn only_live_versions_take_part_in_compatibility() {
        let mut harness = Harness::new();
        harness.set_level(None, CompatibilityLevel::BackwardTransitive);
        harness.must_register("s", &order(""));
        harness.must_register("s", &order(WITH_QTY_DEFAULT));
        // v3 without the default cannot read v1's data...
        assert!(matches!(
            harness.register("s", &order(WITH_QTY)),
            Err(RegistryError::IncompatibleSchema { .. })
        ));
        // ...until v1 is soft-deleted.
        harness.delete_version("s", "1", false).expect("deletes");
        assert_eq!(
            harness.must_register("s", &order(WITH_QTY)),
            Registered { id: 3, version: 3 }
        );
    }

    #[test]
    fn backward_non_transitive_only_checks_the_latest() {
        let mut harness = Harness::new();
        harness.must_register("s", &order(""));
        harness.must_register("s", &order(WITH_QTY_DEFAULT));
        assert_eq!(
            harness.must_register("s", &order(WITH_QTY)),
            Registered { id: 3, version: 3 }
        );
    }

    #[test]
    fn compatibility_checks_against_one_version_or_the_level_set() {
        let mut harness = Harness::new();
        harness.must_register("s", &order(""));
        harness.must_register("s", &order(WITH_QTY_DEFAULT));
        let store = &harness.store;
        let no_default = candidate(&order(WITH_QTY));
        // Against v1 (no qty) a field without default is incompatible; against v2 it is fine.
        assert_eq!(
            store
                .check_compatibility("s", Some(VersionSelector::Number(1)), &no_default)
                .map(|messages| messages.len()),
            Ok(1)
        );
        assert_eq!(
            store.check_compatibility("s", Some(VersionSelector::Number(2)), &no_default),
            Ok(vec![])
        );
        assert_eq!(
            store.check_compatibility("s", Some(VersionSelector::Latest), &no_default),
            Ok(vec![])
        );
        assert_eq!(
            store.check_compatibility("s", None, &no_default),
            Ok(vec![])
        );
        assert_eq!(
            store.check_compatibility("s", Some(VersionSelector::Number(5)), &no_default),
            Err(RegistryError::VersionNotFound("5".into()))
        );
        // Transitive levels check everything when no version is named.
        harness.set_level(Some("s"), CompatibilityLevel::BackwardTransitive);
        assert_eq!(
            harness
                .store
                .check_compatibility("s", None, &no_default)
                .map(|messages| messages.len()),
            Ok(1)
        );
        // Unknown subjects are compatible with anything.
        assert_eq!(
            harness.store.check_compatibility("new", None, &no_default),
            Ok(vec![])
        );
        assert_eq!(
            harness
                .store
                .check_compatibility("new", Some(VersionSelector::Latest), &no_default),
            Ok(vec![])
        );
    }

    #[test]
    fn configs_fall_back_from_subject_to_global_to_default() {
        let mut harness = Harness::new();
        assert_eq!(
            harness.store.global_compatibility(),
            CompatibilityLevel::Backward
        );
        harness.set_level(None, CompatibilityLevel::Full);
        harness.set_level(Some("s"), CompatibilityLevel::None);
        assert_eq!(
            harness.store.effective_compatibility("s"),
            CompatibilityLevel::None
        );
        assert_eq!(
            harness.store.effective_compatibility("t"),
            CompatibilityLevel::Full
        );
        assert_eq!(harness.store.subject_compatibility("t"), None);
        let planned = harness.store.plan_delete_global_compatibility();
        assert_eq!(planned.outcome, CompatibilityLevel::Full);
        harness.commit(planned);
        assert_eq!(
            harness.store.effective_compatibility("t"),
            CompatibilityLevel::Backward
        );
    }

    /// Builds a history covering every record kind.
    fn busy_history() -> Harness {
        let mut harness = Harness::new();
        harness.set_level(None, CompatibilityLevel::Full);
        harness.set_level(Some("b"), CompatibilityLevel::None);
        harness.set_level(Some("c"), CompatibilityLevel::Forward);
        harness.must_register("a", &order(""));
        harness.must_register("a", &order(WITH_QTY_DEFAULT));
        harness.must_register("b", &order(""));
        harness.must_register("b", &order(WITH_QTY));
        harness.must_register("c", &order(r#",{"name":"x","type":"long"}"#));
        harness.delete_version("a", "1", false).expect("soft");
        harness.delete_subject("b", false).expect("soft");
        harness.delete_subject("b", true).expect("hard");
        harness.delete_version("a", "1", true).expect("hard");
        let planned = harness
            .store
            .plan_delete_subject_compatibility("c")
            .expect("configured");
        harness.commit(planned);
        harness
    }

    #[test]
    fn replaying_the_log_reproduces_the_state() {
        let harness = busy_history();
        let mut replayed = Store::new(CompatibilityLevel::Backward);
        for record in &harness.log {
            replayed.apply(record);
        }
        assert_eq!(replayed, harness.store);
        // Spot-check what the history means.
        assert_eq!(
            replayed.subjects(true, None),
            vec!["a".to_owned(), "c".to_owned()]
        );
        assert_eq!(replayed.versions("a", true), Ok(vec![2]));
        assert_eq!(
            replayed.subject_compatibility("b"),
            Some(CompatibilityLevel::None)
        );
        assert_eq!(replayed.subject_compatibility("c"), None);
        assert_eq!(replayed.global_compatibility(), CompatibilityLevel::Full);
        assert_eq!(
            replayed.schema_by_id(1),
            Err(RegistryError::SchemaNotFound(Some(1)))
        );
        assert_eq!(
            replayed.schema_by_id(3),
            Err(RegistryError::SchemaNotFound(Some(3)))
        );
        assert!(replayed.schema_by_id(2).is_ok());
        assert!(replayed.schema_by_id(4).is_ok());
    }

    #[test]
    fn replaying_a_compacted_log_reproduces_the_visible_state() {
        let harness = busy_history();
        // Compaction keeps the last record per key (tombstones may linger or go; drop them).
        let mut last_by_key: HashMap<String, (usize, Option<String>)> = HashMap::new();
        for (offset, record) in harness.log.iter().enumerate() {
            let encoded = encode(record);
            last_by_key.insert(encoded.key, (offset, encoded.value));
        }
        let mut survivors: Vec<(usize, String, String)> = last_by_key
            .into_iter()
            .filter_map(|(key, (offset, value))| value.map(|value| (offset, key, value)))
            .collect();
        survivors.sort();
        let mut replayed = Store::new(CompatibilityLevel::Backward);
        for (_, key, value) in &survivors {
            match decode(Some(key.as_bytes()), Some(value.as_bytes())).expect("decodes") {
                Decoded::Record(record) => replayed.apply(&record),
                Decoded::Skipped { reason } => panic!("unexpected skip: {reason}"),
            }
        }
        assert_eq!(replayed.subjects, harness.store.subjects);
        assert_eq!(replayed.schemas, harness.store.schemas);
        assert_eq!(
            replayed.subject_compatibility,
            harness.store.subject_compatibility
        );
        assert_eq!(
            replayed.global_compatibility,
            harness.store.global_compatibility
        );
    }

    #[test]
    fn tombstones_for_unknown_keys_are_harmless() {
        let mut store = Store::new(CompatibilityLevel::Backward);
        store.apply(&LogRecord::SchemaTombstone {
            subject: "ghost".into(),
            version: 1,
        });
        store.apply(&LogRecord::ConfigTombstone {
            subject: Some("ghost".into()),
        });
        assert_eq!(store, Store::new(CompatibilityLevel::Backward));
    }

    #[test]
    fn applying_a_record_with_a_non_json_schema_skips_it() {
        let mut store = Store::new(CompatibilityLevel::Backward);
        store.apply(&LogRecord::Schema(SchemaRecord {
            subject: "p".into(),
            version: 1,
            id: 1,
            schema: "syntax = \"proto3\";".into(),
            deleted: false,
        }));
        assert_eq!(store, Store::new(CompatibilityLevel::Backward));
    }

    #[test]
    fn ids_never_repeat_within_a_run_even_after_hard_delete() {
        let mut harness = Harness::new();
        harness.must_register("s", &order(""));
        harness.delete_subject("s", false).expect("soft");
        harness.delete_subject("s", true).expect("hard");
        let other = order(WITH_QTY_DEFAULT);
        assert_eq!(
            harness.must_register("s", &other),
            Registered { id: 2, version: 1 }
        );
    }
}
