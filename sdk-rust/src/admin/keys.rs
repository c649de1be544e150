//! The secret key's project keys: list, create, roll, revoke.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::http::{seg, Body, Http};
use super::types::{ApiKey, CreatedApiKey, KeyKind, List, RolledKey};
use crate::error::Result;

/// The project's API keys ([`AdminClient::keys`](super::AdminClient::keys)).
#[derive(Debug, Clone)]
pub struct Keys {
    http: Http,
}

impl Keys {
    pub(crate) fn new(http: Http) -> Self {
        Self { http }
    }

    /// The project's keys, newest first (never the keys themselves).
    pub async fn list(&self) -> Result<Vec<ApiKey>> {
        let list: List<ApiKey> = self
            .http
            .json(Method::GET, "/v1/keys", &[], Body::None)
            .await?;
        Ok(list.data)
    }

    /// A new `Secret` or `Publishable` key; its `key` is in this answer only.
    pub async fn create(&self, kind: KeyKind, name: Option<&str>) -> Result<CreatedApiKey> {
        let mut body = json!({ "kind": kind });
        if let Some(name) = name {
            body["name"] = json!(name);
        }
        self.http
            .json(Method::POST, "/v1/keys", &[], Body::json(&body)?)
            .await
    }

    /// Replaces a key; the old one keeps working for `grace` (whole seconds; zero stops
    /// it now and closes the connections its tokens opened).
    pub async fn roll(&self, key_id: &str, grace: Duration) -> Result<RolledKey> {
        let body = json!({ "gracePeriodSeconds": grace.as_secs() });
        self.http
            .json(
                Method::POST,
                &format!("/v1/keys/{}/roll", seg(key_id)),
                &[],
                Body::json(&body)?,
            )
            .await
    }

    /// Revokes a key at once; connections using tokens it minted close with 4401.
    pub async fn revoke(&self, key_id: &str) -> Result<ApiKey> {
        self.http
            .json(
                Method::POST,
                &format!("/v1/keys/{}/revoke", seg(key_id)),
                &[],
                Body::None,
            )
            .await
    }
}
