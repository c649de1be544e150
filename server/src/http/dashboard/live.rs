//! The inspector's live feed: a server-sent-events stream of the room's tree, people,
//! connection count and read-only state, pushed when the room changes.
//!
//! The feed holds the room's change watch (`Rooms::watch`): the room's actor bumps it
//! whenever the document, the connections, the presence or the settings change, and
//! the feed then renders the fragments (with the same renderer as the first paint) and
//! sends them if they differ from what it last sent. Bursts are coalesced: after a
//! change the feed waits [`COALESCE`] so that a stream of keystrokes costs a few
//! renders a second, not one per keystroke. A room that stops while watched (deleted,
//! server shutting down) drops the watch; the feed asks again, and says `gone` if the
//! room no longer exists. A held watch keeps the room loaded, so a feed ends after
//! [`LIFETIME`] (the browser's EventSource reconnects) and a forgotten tab holds nothing
//! for ever.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use tokio::time::Instant;

use super::error::DashResult;
use super::render;
use super::rooms::{close_action, room_key, RoomQuery};
use super::session::{Ctx, DashUser};
use crate::http::AppState;
use crate::rooms::RoomKey;

/// How long the feed lets changes pile up before rendering them.
const COALESCE: Duration = Duration::from_millis(100);

/// A feed ends after this long (the browser reconnects).
const LIFETIME: Duration = Duration::from_secs(600);

/// Re-subscriptions (the room stopped under the watch) before the feed gives up.
const MAX_RESUBSCRIBE: u32 = 20;

struct Feed {
    state: AppState,
    key: RoomKey,
    close: Option<String>,
    watch: Option<watch::Receiver<u64>>,
    last: String,
    ends: Instant,
    resubscribed: u32,
    done: bool,
}

enum Next {
    Send(Event),
    Done,
}

impl Feed {
    /// Waits for the next thing to send.
    async fn next(&mut self) -> Next {
        loop {
            if self.done || Instant::now() >= self.ends {
                return Next::Done;
            }
            let Some(watch) = &mut self.watch else {
                // Not subscribed yet, or the room stopped: ask (again).
                if self.resubscribed >= MAX_RESUBSCRIBE {
                    return Next::Done;
                }
                self.resubscribed += 1;
                match self.state.rooms.watch(&self.key).await {
                    Ok(Some(watch)) => self.watch = Some(watch),
                    Ok(None) => {
                        self.done = true;
                        return Next::Send(Event::default().event("gone").data("{}"));
                    }
                    // Storage trouble: end; the browser reconnects later.
                    Err(_) => return Next::Done,
                }
                // A fresh watch: render what is there now.
                if let Some(event) = self.render().await {
                    return Next::Send(event);
                }
                continue;
            };
            let changed = tokio::time::timeout_at(self.ends, watch.changed()).await;
            match changed {
                Err(_) => return Next::Done,
                Ok(Err(_)) => {
                    self.watch = None;
                    continue;
                }
                Ok(Ok(())) => {}
            }
            tokio::time::sleep(COALESCE).await;
            if let Some(watch) = &mut self.watch {
                watch.borrow_and_update();
            }
            if let Some(event) = self.render().await {
                return Next::Send(event);
            }
        }
    }

    /// The fragments as they are now, if they differ from what was sent last.
    async fn render(&mut self) -> Option<Event> {
        let rooms = &self.state.rooms;
        let doc = match rooms.to_json(&self.key).await {
            Ok(Some(doc)) => doc,
            // Gone: the watch drops too, and the next look says so.
            Ok(None) | Err(_) => return None,
        };
        let people = rooms.presence(&self.key).await.ok()?;
        let connections = rooms.connection_count(&self.key).await;
        let read_only = rooms.read_only(&self.key).await.ok()?.unwrap_or(false);
        let now = self.state.control.now_ms();
        let data = serde_json::json!({
            "tree": render::tree(&doc),
            "people": render::people(&people, now, self.close.as_deref()),
            "connections": connections,
            "readOnly": read_only,
        })
        .to_string();
        if data == self.last {
            return None;
        }
        self.last.clone_from(&data);
        Some(Event::default().event("room").data(data))
    }
}

/// The inspector's feed: a `room` event with the tree, the people, the connection
/// count and the read-only state whenever one of them changed; `gone` when the room was
/// deleted.
pub(super) async fn live(
    State(state): State<AppState>,
    DashUser(auth): DashUser,
    Path((tenant, project)): Path<(String, String)>,
    Query(query): Query<RoomQuery>,
) -> DashResult<Response> {
    let ctx = Ctx::load(&state, auth, &tenant, Some(&project), "rooms").await?;
    let row = ctx.project()?;
    let key = room_key(row.id.as_str(), &query.name)?;
    let close = close_action(&ctx.base(), row.id.as_str(), &query.name, ctx.can_admin());
    let feed = Feed {
        state,
        key,
        close,
        watch: None,
        last: String::new(),
        ends: Instant::now() + LIFETIME,
        resubscribed: 0,
        done: false,
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        match feed.next().await {
            Next::Send(event) => Some((Ok::<_, Infallible>(event), feed)),
            Next::Done => None,
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
