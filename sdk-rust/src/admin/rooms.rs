//! Rooms of the secret key's project: listing (paginated), documents, live users and
//! events.

use base64::Engine as _;
use futures_util::stream::{self, Stream};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::http::{seg, Body, Http};
use super::types::{ActiveUser, Broadcasted, List, Room, RoomPage};
use crate::error::Result;

/// The largest page the server gives.
const MAX_PAGE: u32 = 100;

/// The project's rooms ([`AdminClient::rooms`](super::AdminClient::rooms)).
#[derive(Debug, Clone)]
pub struct Rooms {
    http: Http,
}

/// Options of [`Rooms::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListRooms {
    /// Only rooms whose name starts with this.
    pub prefix: Option<String>,
    /// Page size asked of the server, 1 to 100 (default 100).
    pub page_size: Option<u32>,
}

impl ListRooms {
    /// Only rooms whose name starts with `prefix`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Pages of `size` rooms (1 to 100).
    pub fn page_size(mut self, size: u32) -> Self {
        self.page_size = Some(size);
        self
    }
}

/// A listing of rooms by name: read [`page`](Self::page)s, or [`pages`](Self::pages) /
/// [`stream`](Self::stream) them (each page is fetched when the stream gets there), or
/// [`all`](Self::all) at once.
#[derive(Debug, Clone)]
pub struct RoomList {
    http: Http,
    options: ListRooms,
}

impl RoomList {
    /// One page: the rooms after `cursor` (the previous page's `next_cursor`).
    pub async fn page(&self, cursor: Option<&str>) -> Result<RoomPage> {
        let mut query = vec![(
            "limit",
            self.options.page_size.unwrap_or(MAX_PAGE).to_string(),
        )];
        if let Some(prefix) = &self.options.prefix {
            query.push(("prefix", prefix.clone()));
        }
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        self.http
            .json(Method::GET, "/v1/rooms", &query, Body::None)
            .await
    }

    /// Every page in order, following `next_cursor` until the last; ends after the
    /// first error.
    pub fn pages(&self) -> impl Stream<Item = Result<RoomPage>> + Send + Unpin + 'static {
        let list = self.clone();
        // Boxed, so the stream is `Unpin` and `StreamExt::next` works on it directly.
        // State: the cursor of the next page, `None` once the last page was read.
        Box::pin(stream::unfold(Some(None::<String>), move |next| {
            let list = list.clone();
            async move {
                let cursor = next?;
                match list.page(cursor.as_deref()).await {
                    Ok(page) => {
                        let next = page.next_cursor.clone().map(Some);
                        Some((Ok(page), next))
                    }
                    Err(e) => Some((Err(e), None)),
                }
            }
        }))
    }

    /// Every room in name order; the next page is fetched when the stream reaches it.
    pub fn stream(&self) -> impl Stream<Item = Result<Room>> + Send + Unpin + 'static {
        use futures_util::StreamExt as _;
        self.pages().flat_map(|page| {
            let items: Vec<Result<Room>> = match page {
                Ok(page) => page.data.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            stream::iter(items)
        })
    }

    /// Every room in one `Vec` (fine for small projects; stream large ones).
    pub async fn all(&self) -> Result<Vec<Room>> {
        use futures_util::TryStreamExt as _;
        self.stream().try_collect().await
    }
}

impl Rooms {
    pub(crate) fn new(http: Http) -> Self {
        Self { http }
    }

    /// The project's rooms by name (`GET /v1/rooms`, paginated).
    pub fn list(&self, options: ListRooms) -> RoomList {
        RoomList {
            http: self.http.clone(),
            options,
        }
    }

    /// One room with its live connection count (404 `not_found` if it does not exist).
    pub async fn get(&self, room: &str) -> Result<Room> {
        self.http
            .json(Method::GET, &path(room, ""), &[], Body::None)
            .await
    }

    /// Deletes the room: its connections close with 4404 and its document is erased.
    pub async fn delete(&self, room: &str) -> Result<()> {
        self.http
            .none(Method::DELETE, &path(room, ""), Body::None)
            .await
    }

    /// The document as JSON: each root type by name (maps as objects, arrays, text as
    /// strings).
    pub async fn document(&self, room: &str) -> Result<Map<String, Value>> {
        self.http
            .json(Method::GET, &path(room, "/document"), &[], Body::None)
            .await
    }

    /// The document as a Yjs v1 update (`Update::decode_v1`): all of it, or only what
    /// `state_vector` (an encoded v1 state vector) lacks.
    pub async fn document_update(
        &self,
        room: &str,
        state_vector: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let query: Vec<(&str, String)> = state_vector
            .map(|sv| {
                (
                    "stateVector",
                    base64::engine::general_purpose::STANDARD.encode(sv),
                )
            })
            .into_iter()
            .collect();
        self.http
            .bytes(Method::GET, &path(room, "/document/update"), &query)
            .await
    }

    /// Applies a Yjs v1 update as if a client had sent it: validated, stored durably,
    /// then relayed to every connected client. Creates the room.
    pub async fn apply_update(&self, room: &str, update: impl Into<Vec<u8>>) -> Result<()> {
        self.http
            .none(
                Method::POST,
                &path(room, "/document/update"),
                Body::Bytes(update.into().into()),
            )
            .await
    }

    /// The users connected to the room now, with their presence.
    pub async fn active_users(&self, room: &str) -> Result<Vec<ActiveUser>> {
        let list: List<ActiveUser> = self
            .http
            .json(Method::GET, &path(room, "/users"), &[], Body::None)
            .await?;
        Ok(list.data)
    }

    /// Sends a custom event (any JSON value) to everyone connected; not stored.
    pub async fn broadcast_event(&self, room: &str, event: Value) -> Result<Broadcasted> {
        self.http
            .json(
                Method::POST,
                &path(room, "/events"),
                &[],
                Body::json(&json!({ "event": event }))?,
            )
            .await
    }
}

fn path(room: &str, rest: &str) -> String {
    format!("/v1/rooms/{}{rest}", seg(room))
}
