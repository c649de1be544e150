//! In-band token refresh (the session extension): the server's hello says how long the
//! token lives; a quarter of that before expiry the session asks the transport for a
//! fresh token and sends it on the open socket; the answer schedules the next one; a
//! refusal is a non-fatal typed error and nothing more is asked on that connection.

use crate::client::{ClientSession, Event, Output, SessionConfig, SessionError};
use crate::session::{Hello, Refreshed};
use crate::Message;

fn drain(session: &mut ClientSession) -> Vec<Output> {
    std::iter::from_fn(|| session.poll_output()).collect()
}

/// A session on an open connection whose hello says the token lives `expires_in_ms`.
fn connected(expires_in_ms: Option<u64>) -> ClientSession {
    let mut session = ClientSession::new(yrs::Doc::new(), SessionConfig::default()).unwrap();
    session.connect(0);
    session.on_open(0);
    let hello = Hello {
        connection_id: 1,
        user_id: Some("usr_a".to_owned()),
        user: None,
        can_write: true,
        can_presence: true,
        expires_at: None,
        expires_in_ms,
    };
    session.on_frame(0, &Message::Hello(&hello.to_json()).encode());
    drain(&mut session);
    session
}

fn sent_tokens(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send(frame) => match Message::decode(frame) {
                Ok(Message::RefreshToken(token)) => Some(token.to_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn a_fresh_token_is_asked_for_before_expiry_and_sent_in_band() {
    let mut session = connected(Some(8_000));
    // 8 s left: asked 2 s before expiry, and not earlier.
    assert!(session.next_deadline().is_some_and(|d| d <= 6_000));
    session.tick(5_999);
    assert!(!drain(&mut session).contains(&Output::RefreshToken));
    session.tick(6_000);
    assert_eq!(drain(&mut session), vec![Output::RefreshToken]);
    // Asked once, not again on every tick.
    session.tick(6_500);
    assert!(!drain(&mut session).contains(&Output::RefreshToken));

    session.on_fresh_token(6_600, "t2");
    assert_eq!(sent_tokens(&drain(&mut session)), vec!["t2".to_owned()]);

    // Accepted with a new lifetime: the next refresh is scheduled from it.
    let ok = Refreshed {
        ok: true,
        expires_at: None,
        expires_in_ms: Some(4_000),
        can_write: Some(true),
        can_presence: Some(true),
        code: None,
        reason: None,
    };
    session.on_frame(6_700, &Message::Refreshed(&ok.to_json()).encode());
    assert!(
        drain(&mut session).is_empty(),
        "an accepted refresh is silent"
    );
    session.tick(6_700 + 2_999);
    assert!(!drain(&mut session).contains(&Output::RefreshToken));
    session.tick(6_700 + 3_000);
    assert_eq!(drain(&mut session), vec![Output::RefreshToken]);
}

#[test]
fn a_refused_refresh_is_a_non_fatal_error_and_not_retried_on_that_connection() {
    let mut session = connected(Some(2_000));
    session.tick(1_500);
    assert_eq!(drain(&mut session), vec![Output::RefreshToken]);
    session.on_fresh_token(1_510, "for-another-room");
    drain(&mut session);
    let refused = Refreshed::refused(4403, "token does not allow this room");
    session.on_frame(1_520, &Message::Refreshed(&refused.to_json()).encode());
    let outputs = drain(&mut session);
    let error = outputs.iter().find_map(|o| match o {
        Output::Event(Event::Error(e)) => Some(e.clone()),
        _ => None,
    });
    assert_eq!(
        error,
        Some(SessionError::RefreshRefused {
            code: 4403,
            reason: "token does not allow this room".to_owned()
        })
    );
    assert!(!error.unwrap().is_fatal());
    assert!(session.status().is_connected());
    session.tick(1_900);
    assert!(!drain(&mut session).contains(&Output::RefreshToken));
}

#[test]
fn a_failing_provider_is_asked_again_a_second_later_and_a_new_connection_starts_over() {
    let mut session = connected(Some(10_000));
    session.tick(7_500);
    assert_eq!(drain(&mut session), vec![Output::RefreshToken]);
    session.on_fresh_token_failed(7_600);
    session.tick(8_599);
    assert!(!drain(&mut session).contains(&Output::RefreshToken));
    session.tick(8_600);
    assert_eq!(drain(&mut session), vec![Output::RefreshToken]);

    // The connection ends: nothing is asked until the next hello.
    session.on_close(8_700, 1006, "lost");
    drain(&mut session);
    session.tick(20_000);
    assert!(!drain(&mut session).contains(&Output::RefreshToken));
}

#[test]
fn without_an_expiry_nothing_is_asked() {
    let mut session = connected(None);
    session.tick(10_000_000);
    assert!(!drain(&mut session).contains(&Output::RefreshToken));
}
