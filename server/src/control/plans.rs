//! Plans and their limits. A tenant has a plan (`free`, `pro`, `enterprise`, or any
//! name the operator defines); the numbers come from configuration (`--plans FILE`),
//! so they change without a rebuild. Built-in defaults apply to any field a file leaves
//! out.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::rooms::limits::Limits;

/// The plan a tenant without a known plan falls back to.
pub const DEFAULT_PLAN: &str = "free";

/// Every plan's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Plans {
    plans: BTreeMap<String, Limits>,
}

/// A plan as written in the file: every field optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct PlanFile {
    connections_per_project: Option<u32>,
    connections_per_room: Option<u32>,
    rooms_per_project: Option<u64>,
    max_document_bytes: Option<u64>,
    messages_per_second: Option<u32>,
    message_burst: Option<u32>,
    bytes_per_second: Option<u64>,
    byte_burst: Option<u64>,
    rest_requests_per_minute: Option<u32>,
    history_retention_days: Option<u32>,
}

/// Why a plans file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum PlansError {
    /// Reading it failed.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// It is not valid TOML for plans.
    #[error("parsing {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A value is out of range.
    #[error("plan {plan}: {message}")]
    Invalid {
        /// The plan.
        plan: String,
        /// What is wrong.
        message: String,
    },
}

fn builtin(name: &str) -> Limits {
    match name {
        "pro" => Limits {
            connections_per_project: 5_000,
            connections_per_room: 500,
            rooms_per_project: 100_000,
            max_document_bytes: 50 * 1024 * 1024,
            messages_per_second: 100,
            message_burst: 400,
            bytes_per_second: 4 * 1024 * 1024,
            byte_burst: 16 * 1024 * 1024,
            rest_requests_per_minute: 3_000,
            history_retention_days: 90,
        },
        "enterprise" => Limits {
            connections_per_project: 100_000,
            connections_per_room: 5_000,
            rooms_per_project: 10_000_000,
            max_document_bytes: 500 * 1024 * 1024,
            messages_per_second: 500,
            message_burst: 2_000,
            bytes_per_second: 16 * 1024 * 1024,
            byte_burst: 64 * 1024 * 1024,
            rest_requests_per_minute: 30_000,
            history_retention_days: 0,
        },
        _ => Limits {
            connections_per_project: 200,
            connections_per_room: 50,
            rooms_per_project: 1_000,
            max_document_bytes: 5 * 1024 * 1024,
            messages_per_second: 30,
            message_burst: 120,
            bytes_per_second: 1024 * 1024,
            byte_burst: 4 * 1024 * 1024,
            rest_requests_per_minute: 600,
            history_retention_days: 7,
        },
    }
}

impl Default for Plans {
    fn default() -> Self {
        Self {
            plans: ["free", "pro", "enterprise"]
                .into_iter()
                .map(|name| (name.to_owned(), builtin(name)))
                .collect(),
        }
    }
}

impl Plans {
    /// The built-in plans, overridden and extended by `path` (TOML: one table per plan,
    /// kebab-case fields, e.g. `[free]` / `connections-per-room = 20`).
    pub fn load(path: &Path) -> Result<Self, PlansError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlansError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            PlansError::Parse { source, .. } => PlansError::Parse {
                path: path.display().to_string(),
                source,
            },
            other => other,
        })
    }

    /// Parses plans from TOML text (see [`Self::load`]).
    pub fn parse(text: &str) -> Result<Self, PlansError> {
        let file: BTreeMap<String, PlanFile> =
            toml::from_str(text).map_err(|source| PlansError::Parse {
                path: String::new(),
                source: Box::new(source),
            })?;
        let mut plans = Self::default();
        for (name, given) in file {
            let base = plans
                .plans
                .get(&name)
                .copied()
                .unwrap_or_else(|| builtin(&name));
            let limits = Limits {
                connections_per_project: given
                    .connections_per_project
                    .unwrap_or(base.connections_per_project),
                connections_per_room: given
                    .connections_per_room
                    .unwrap_or(base.connections_per_room),
                rooms_per_project: given.rooms_per_project.unwrap_or(base.rooms_per_project),
                max_document_bytes: given.max_document_bytes.unwrap_or(base.max_document_bytes),
                messages_per_second: given
                    .messages_per_second
                    .unwrap_or(base.messages_per_second),
                message_burst: given.message_burst.unwrap_or(base.message_burst),
                bytes_per_second: given.bytes_per_second.unwrap_or(base.bytes_per_second),
                byte_burst: given.byte_burst.unwrap_or(base.byte_burst),
                rest_requests_per_minute: given
                    .rest_requests_per_minute
                    .unwrap_or(base.rest_requests_per_minute),
                history_retention_days: given
                    .history_retention_days
                    .unwrap_or(base.history_retention_days),
            };
            let invalid = |message: &str| PlansError::Invalid {
                plan: name.clone(),
                message: message.to_owned(),
            };
            if limits.messages_per_second == 0 || limits.message_burst == 0 {
                return Err(invalid(
                    "messages-per-second and message-burst must be at least 1",
                ));
            }
            if limits.bytes_per_second == 0 || limits.byte_burst == 0 {
                return Err(invalid(
                    "bytes-per-second and byte-burst must be at least 1",
                ));
            }
            if limits.connections_per_project == 0 || limits.connections_per_room == 0 {
                return Err(invalid("connection limits must be at least 1"));
            }
            if limits.rest_requests_per_minute == 0 {
                return Err(invalid("rest-requests-per-minute must be at least 1"));
            }
            plans.plans.insert(name, limits);
        }
        Ok(plans)
    }

    /// Whether a plan of this name exists.
    pub fn contains(&self, plan: &str) -> bool {
        self.plans.contains_key(plan)
    }

    /// The limits of `plan` (the free plan's for an unknown name, logged).
    pub fn limits(&self, plan: &str) -> Limits {
        match self.plans.get(plan) {
            Some(limits) => *limits,
            None => {
                tracing::warn!(
                    plan,
                    "unknown plan; applying the {DEFAULT_PLAN} plan's limits"
                );
                self.plans
                    .get(DEFAULT_PLAN)
                    .copied()
                    .unwrap_or_else(|| builtin(DEFAULT_PLAN))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_overrides_fields_and_adds_plans() {
        let plans =
            Plans::parse("[free]\nconnections-per-room = 3\n\n[team]\nmax-document-bytes = 1234\n")
                .unwrap();
        let free = plans.limits("free");
        assert_eq!(free.connections_per_room, 3);
        assert_eq!(
            free.connections_per_project,
            builtin("free").connections_per_project
        );
        assert_eq!(plans.limits("team").max_document_bytes, 1234);
        assert_eq!(plans.limits("pro"), builtin("pro"));
        assert_eq!(plans.limits("nonsense"), plans.limits("free"));
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(Plans::parse("[free]\nconections-per-room = 3\n").is_err());
        assert!(Plans::parse("[free]\nmessages-per-second = 0\n").is_err());
        assert!(Plans::parse("free = 3\n").is_err());
    }
}
