//! `GET /v1/connect/{room}`: the y-websocket endpoint. Authorizes through the
//! [`Authorizer`](crate::rooms::auth::Authorizer) seam (refusals become close codes the
//! client can act on), then hands the socket to [`session::run`].
//!
//! The room is the rest of the path, so names with `/` work as the stock client sends
//! them (it appends the room to the URL unescaped).

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures_util::{future, SinkExt, StreamExt};
use serde::Deserialize;
use std::sync::Arc;
use tokio_tungstenite::tungstenite;

use super::AppState;
use crate::rooms::session::{self, Inbound, Outbound};
use crate::rooms::RoomKey;

/// Longest room name accepted, in bytes.
pub const MAX_ROOM_NAME: usize = 256;

/// Per-connection socket buffers. tungstenite's defaults (128 KiB each) are sized for
/// bulk transfer; an idle collaborative connection needs far less, and at thousands of
/// connections this is most of the memory.
///
/// The read buffer is allocated up front and kept for the connection's life, so it is
/// small: y-websocket messages are mostly small updates, and a larger message does not
/// need it (tungstenite reserves a frame's full length once its header is read).
const READ_BUFFER: usize = 512;
/// Frames are written out once this much is buffered, or on flush. The session feeds a
/// burst of frames and flushes once, so they share one write; the buffer only grows
/// while a burst is queued.
const WRITE_BUFFER: usize = 16 * 1024;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/connect/{*room}", get(connect))
}

#[derive(Debug, Deserialize)]
struct ConnectQuery {
    token: Option<String>,
    /// `1` opts in to the session extension (message type 101: hello, saved
    /// acknowledgements); see `tandem_protocol::session::OPT_IN_PARAM`.
    tandem: Option<String>,
}

/// Room names are shown to people (dashboards, logs, presence UIs), so characters that
/// make one name look like another are refused: control characters, bidirectional
/// overrides and isolates (which reorder what is displayed, "Trojan Source"), zero-width
/// and other invisible format characters, and line or paragraph separators.
pub const ROOM_NAME_RULES: &str =
    "room names: 1 to 256 bytes, no control, bidi, zero-width or invisible characters";

/// Unicode format (Cf) and separator (Zl, Zp) characters, as inclusive ranges: invisible,
/// or reordering what is displayed around them.
const INVISIBLE: [(char, char); 20] = [
    ('\u{00AD}', '\u{00AD}'), // soft hyphen
    ('\u{0600}', '\u{0605}'), // Arabic number signs
    ('\u{061C}', '\u{061C}'), // Arabic letter mark (bidi)
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'), // Mongolian vowel separator
    ('\u{200B}', '\u{200F}'), // zero-width space, (non-)joiners, LRM, RLM
    ('\u{2028}', '\u{2029}'), // line and paragraph separators
    ('\u{202A}', '\u{202E}'), // bidi embeddings and overrides
    ('\u{2060}', '\u{2064}'), // word joiner, invisible operators
    ('\u{2066}', '\u{206F}'), // bidi isolates, deprecated format characters
    ('\u{FEFF}', '\u{FEFF}'), // zero-width no-break space (BOM)
    ('\u{FFF9}', '\u{FFFB}'), // interlinear annotation
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{1BCA0}', '\u{1BCA3}'), // shorthand format controls
    ('\u{1D173}', '\u{1D17A}'), // musical symbol format controls
    ('\u{E0001}', '\u{E0001}'), // language tag
    ('\u{E0020}', '\u{E007F}'), // tag characters
];

fn is_invisible(c: char) -> bool {
    c.is_control() || INVISIBLE.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// Whether `name` follows [`ROOM_NAME_RULES`].
pub(crate) fn valid_room_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_ROOM_NAME && !name.chars().any(is_invisible)
}

async fn connect(
    State(state): State<AppState>,
    Path(room): Path<String>,
    Query(query): Query<ConnectQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    if !valid_room_name(&room) {
        // A close frame rather than a 400: a browser's WebSocket cannot read the status
        // of a refused upgrade, but it gets the close code and reason.
        return ws.on_upgrade(|socket| async move {
            let _ = adapt(socket)
                .send(Outbound::Close {
                    code: tandem_protocol::close::MALFORMED,
                    reason: ROOM_NAME_RULES.to_owned(),
                })
                .await;
        });
    }
    // Authorize before upgrading: the upgrade callback then only has to start the
    // session, and does so without an await of its own, which keeps the connection's
    // task small (an async block that awaits before handing the socket on reserves
    // room for it twice). A refusal is still a close frame the client can act on.
    let granted = state
        .authorizer
        .authorize(&room, query.token.as_deref())
        .await;
    let max = state.rooms.config().max_message_bytes;
    let rooms = state.rooms;
    // A fresh token sent in band is checked by the same authorizer, for this room.
    let authorizer = state.authorizer.clone();
    let bound_room = room.clone();
    let reauthorize: session::Reauthorize = Arc::new(move |token: String| {
        let (authorizer, room) = (authorizer.clone(), bound_room.clone());
        Box::pin(async move { authorizer.authorize(&room, Some(&token)).await })
    });
    let options = session::ConnOptions {
        session_ext: query.tandem.as_deref() == Some("1"),
        reauthorize: Some(reauthorize),
    };
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| {
            let mut transport = adapt(socket);
            let session = match granted {
                Ok(grant) => {
                    let key = RoomKey {
                        project_id: grant.project_id.as_str().into(),
                        name: room.into(),
                    };
                    future::Either::Left(session::run(rooms.clone(), key, grant, options, transport))
                }
                Err(denied) => future::Either::Right(async move {
                    tracing::debug!(code = denied.code, reason = %denied.reason, "connection refused");
                    let _ = transport
                        .send(Outbound::Close {
                            code: denied.code,
                            reason: denied.reason,
                        })
                        .await;
                }),
            };
            rooms.track(session)
        })
}

/// Adapts axum's socket to the session's frame types.
fn adapt(
    socket: WebSocket,
) -> impl futures_util::Stream<Item = Result<Inbound, axum::Error>>
       + futures_util::Sink<Outbound, Error = axum::Error>
       + Unpin
       + Send {
    socket
        .map(|item| match item {
            Ok(WsMessage::Binary(bytes)) => Ok(Inbound::Binary(bytes)),
            Ok(WsMessage::Text(_)) => Ok(Inbound::Text),
            Ok(WsMessage::Close(_)) => Ok(Inbound::Close),
            Ok(WsMessage::Ping(_) | WsMessage::Pong(_)) => Ok(Inbound::Control),
            Err(error) if is_capacity(&error) => Ok(Inbound::TooLarge),
            // tungstenite refuses a text frame that is not UTF-8 before we see it, but
            // the socket still works: answer with a close frame (4400, like any text
            // frame), not by dropping it.
            Err(error) if is_invalid_utf8(&error) => Ok(Inbound::Text),
            Err(error) => Err(error),
        })
        .with(|frame: Outbound| {
            future::ready(Ok::<_, axum::Error>(match frame {
                Outbound::Binary(bytes) => WsMessage::Binary(bytes),
                Outbound::Close { code, reason } => WsMessage::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })),
            }))
        })
}

/// Whether tungstenite refused a message over the size limit (before buffering it).
fn is_capacity(error: &axum::Error) -> bool {
    caused_by(error, |e| matches!(e, tungstenite::Error::Capacity(_)))
}

/// Whether tungstenite refused a text message that is not UTF-8.
fn is_invalid_utf8(error: &axum::Error) -> bool {
    caused_by(error, |e| matches!(e, tungstenite::Error::Utf8(_)))
}

fn caused_by(error: &axum::Error, pred: impl Fn(&tungstenite::Error) -> bool) -> bool {
    let source: &(dyn std::error::Error + 'static) = error;
    let mut cause = Some(source);
    while let Some(e) = cause {
        if e.downcast_ref::<tungstenite::Error>().is_some_and(&pred) {
            return true;
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names() {
        assert!(valid_room_name("a"));
        assert!(valid_room_name("team/doc-1"));
        assert!(!valid_room_name(""));
        assert!(!valid_room_name("a\nb"));
        assert!(!valid_room_name(&"x".repeat(MAX_ROOM_NAME + 1)));
        assert!(ROOM_NAME_RULES.len() <= 123, "fits a close frame");
    }

    #[test]
    fn room_names_refuse_bidi_and_invisible_characters() {
        for ok in [
            "café",
            "文档",
            "doc-1/α",
            "emoji-🦀",
            "a b",
            "x".repeat(MAX_ROOM_NAME).as_str(),
        ] {
            assert!(valid_room_name(ok), "{ok:?}");
        }
        for bad in [
            "invoice\u{202E}fdp.exe", // right-to-left override
            "a\u{2066}b\u{2069}",     // isolates
            "a\u{200B}b",             // zero-width space
            "a\u{200D}b",             // zero-width joiner
            "\u{FEFF}doc",            // BOM
            "doc\u{00AD}",            // soft hyphen
            "a\u{2028}b",             // line separator
            "a\u{200F}",              // right-to-left mark
            "a\u{E0041}",             // tag character
            "a\u{7F}",                // DEL
        ] {
            assert!(!valid_room_name(bad), "{bad:?}");
        }
    }
}
