//! Where a run's broker, registry and workers answer, written to `<log dir>/endpoints.json`
//! once every worker is ready and before the simulator starts, so a script or a benchmark that
//! started `retail-local` can reach the run's processes (read the saga's topics, scrape the
//! workers' `/metrics`) without parsing the human-readable output. The addresses are chosen at
//! start-up (free ports; the mock cluster's own port), so nothing else knows them in advance.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::LaunchError;

/// The file's name inside the log folder.
pub const ENDPOINTS_FILE: &str = "endpoints.json";

/// A worker process of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerEndpoint {
    /// The worker's name (`inventory`, `fraud`, ...).
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// `host:port` of its `/metrics`, `/healthz` and `/readyz`.
    pub http: String,
}

/// The run's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// Which broker: `mock`, `tansu` or `external`.
    pub broker: String,
    /// Kafka bootstrap servers of the run.
    pub bootstrap_servers: String,
    /// The schema registry's base URL.
    pub schema_registry_url: String,
    /// The five workers, in start order.
    pub workers: Vec<WorkerEndpoint>,
}

impl Endpoints {
    /// The file's path in `log_dir`.
    pub fn path(log_dir: &Path) -> PathBuf {
        log_dir.join(ENDPOINTS_FILE)
    }

    /// Writes the file next to its destination and renames it there, so a reader polling for
    /// it never sees half of it.
    pub fn write(&self, log_dir: &Path) -> Result<(), LaunchError> {
        let path = Self::path(log_dir);
        let partial = log_dir.join(format!("{ENDPOINTS_FILE}.partial"));
        let json = serde_json::to_vec_pretty(self).map_err(|error| LaunchError::Io {
            what: format!("encoding {}", path.display()),
            source: error.into(),
        })?;
        std::fs::write(&partial, json)
            .and_then(|()| std::fs::rename(&partial, &path))
            .map_err(|source| LaunchError::Io {
                what: format!("writing {}", path.display()),
                source,
            })
    }

    /// Reads the file from `log_dir`; `None` while it is not there yet.
    pub fn read(log_dir: &Path) -> Result<Option<Self>, LaunchError> {
        let path = Self::path(log_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LaunchError::Io {
                    what: format!("reading {}", path.display()),
                    source,
                });
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| LaunchError::Io {
                what: format!("decoding {}", path.display()),
                source: error.into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_reads_back_and_a_missing_one_is_none() {
        let dir = std::env::temp_dir().join(format!("endpoints-{}", rand_suffix()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        assert_eq!(Endpoints::read(&dir).expect("readable"), None);
        let endpoints = Endpoints {
            broker: "mock".to_owned(),
            bootstrap_servers: "127.0.0.1:1234".to_owned(),
            schema_registry_url: "http://127.0.0.1:8081".to_owned(),
            workers: vec![WorkerEndpoint {
                name: "inventory".to_owned(),
                pid: 42,
                http: "127.0.0.1:9464".to_owned(),
            }],
        };
        endpoints.write(&dir).expect("written");
        assert_eq!(Endpoints::read(&dir).expect("readable"), Some(endpoints));
        assert!(!dir.join(format!("{ENDPOINTS_FILE}.partial")).exists());
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }

    fn rand_suffix() -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        format!("{}-{nanos}", std::process::id())
    }
}
