//! Reconnects: backoff bounds and reset, what each close code leads to, token refresh,
//! `retry-after`, and the timers that replace dead connections.

use super::net::{config, Net};
use crate::client::{Event, Output, SessionConfig, SessionError, Status};
use crate::close;

/// Delays between consecutive connection attempts of client `i`.
fn gaps(net: &Net, i: usize) -> Vec<u64> {
    net.clients[i]
        .connects
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .collect()
}

fn errors(net: &Net, i: usize) -> Vec<SessionError> {
    net.clients[i]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Error(err) => Some(err.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn backoff_delays_stay_in_full_jitter_windows_grow_and_reset_after_sync() {
    let base = 250;
    let cap = 30_000;
    let mut net = Net::new(1);
    net.connect_all();
    net.cut(0);
    net.advance(10 * 60_000);
    let delays = gaps(&net, 0);
    assert!(delays.len() > 12, "{delays:?}");
    // The first attempt after the cut is the second connect; each gap is the delay
    // drawn for attempt n, below min(cap, base * 2^n).
    for (n, delay) in delays.iter().enumerate() {
        let window = (base << n.min(20)).min(cap);
        assert!(*delay < window, "attempt {n}: {delay} >= {window}");
    }
    // Growth: late delays are, on average, far longer than early ones.
    let early: u64 = delays[..4].iter().sum::<u64>() / 4;
    let late: u64 = delays[delays.len() - 4..].iter().sum::<u64>() / 4;
    assert!(late > early * 4, "early {early}, late {late}");
    assert!(matches!(
        net.clients[0].session.status(),
        Status::Reconnecting { attempt } if *attempt as usize >= delays.len()
    ));
    // Back online: synced, and the next loss starts from the smallest window again.
    net.restore(0);
    net.advance(cap);
    assert_eq!(net.clients[0].session.status(), &Status::Synced);
    let before = net.clients[0].connects.len();
    net.server_close(0, close::RESTARTING, "restarting");
    net.advance(base);
    assert_eq!(net.clients[0].connects.len(), before + 1);
    assert_eq!(net.clients[0].session.status(), &Status::Synced);
}

#[test]
fn retryable_close_codes_reconnect_with_backoff() {
    for code in [close::RESTARTING, close::TRY_AGAIN_LATER, 1006, 1001] {
        let mut net = Net::new(1);
        net.connect_all();
        net.server_close(0, code, "bye");
        assert_eq!(
            net.clients[0].session.status(),
            &Status::Reconnecting { attempt: 1 },
            "{code}"
        );
        net.advance(250);
        assert_eq!(net.clients[0].connects.len(), 2, "{code}");
        assert!(!net.clients[0].connects[1].1);
        assert_eq!(net.clients[0].session.status(), &Status::Synced, "{code}");
        assert!(errors(&net, 0).is_empty(), "{code}");
    }
}

#[test]
fn fatal_close_codes_stop_with_their_typed_error() {
    let cases = [
        (close::MALFORMED, "malformed"),
        (close::FORBIDDEN, "forbidden"),
        (close::ROOM_DELETED, "room_deleted"),
        (close::TOO_LARGE, "too_large"),
    ];
    for (code, expected) in cases {
        let mut net = Net::new(1);
        net.connect_all();
        net.server_close(0, code, "no");
        net.pump();
        let Status::Disconnected { error: Some(error) } = net.clients[0].session.status().clone()
        else {
            panic!("{code} did not stop the session");
        };
        assert_eq!(error.code(), expected);
        assert!(error.is_fatal());
        assert_eq!(errors(&net, 0), [error]);
        net.advance(3_600_000);
        assert_eq!(net.clients[0].connects.len(), 1, "{code} was retried");
    }
}

#[test]
fn fatal_refusal_on_connect_is_not_retried_in_a_loop() {
    let mut net = Net::new(1);
    net.clients[0]
        .refusals
        .push_back((close::FORBIDDEN, "not in this room".to_owned()));
    net.connect_all();
    net.advance(3_600_000);
    assert_eq!(net.clients[0].connects.len(), 1);
    assert_eq!(
        net.clients[0].session.status(),
        &Status::Disconnected {
            error: Some(SessionError::Forbidden {
                reason: "not in this room".to_owned()
            })
        }
    );
}

#[test]
fn unauthorized_requests_a_fresh_token_at_once() {
    let mut net = Net::new(1);
    net.connect_all();
    // The token expired mid-session: routine, even when it happens again and again.
    for round in 0..5 {
        net.server_close(0, close::UNAUTHORIZED, "token expired");
        net.pump();
        let c = &net.clients[0];
        assert_eq!(c.connects.last(), Some(&(net.now, true)), "round {round}");
        assert_eq!(c.session.status(), &Status::Synced, "round {round}");
        net.advance(60_000);
    }
    assert!(errors(&net, 0).is_empty());
}

#[test]
fn tokens_refused_right_after_a_refresh_give_up_with_a_typed_error() {
    let mut net = Net::new(1);
    for _ in 0..10 {
        net.clients[0]
            .refusals
            .push_back((close::UNAUTHORIZED, "bad signature".to_owned()));
    }
    net.connect_all();
    net.advance(3_600_000);
    let c = &net.clients[0];
    // The first token, then two fresh ones: three refusals, then stop.
    assert_eq!(
        c.connects
            .iter()
            .map(|(_, fresh)| *fresh)
            .collect::<Vec<_>>(),
        [false, true, true]
    );
    assert_eq!(
        c.session.status(),
        &Status::Disconnected {
            error: Some(SessionError::Unauthorized {
                attempts: 3,
                reason: "bad signature".to_owned()
            })
        }
    );
}

#[test]
fn a_synced_connection_resets_the_refusal_count() {
    // Refused, accepted, expired, refused, accepted: never three refusals in a row
    // without a sync in between, so the session keeps going (max_unauthorized = 3).
    let mut net = Net::new(1);
    net.clients[0]
        .refusals
        .push_back((close::UNAUTHORIZED, "stale".to_owned()));
    net.connect_all();
    assert_eq!(net.clients[0].session.status(), &Status::Synced);
    net.clients[0]
        .refusals
        .push_back((close::UNAUTHORIZED, "stale".to_owned()));
    net.server_close(0, close::UNAUTHORIZED, "expired");
    net.advance(60_000);
    assert_eq!(net.clients[0].session.status(), &Status::Synced);
    assert_eq!(net.clients[0].connects.len(), 4);
}

#[test]
fn max_unauthorized_is_configurable() {
    let mut net = Net::with_config(1, |seed| SessionConfig {
        max_unauthorized: 1,
        ..config(seed)
    });
    net.connect_all();
    net.server_close(0, close::UNAUTHORIZED, "expired");
    net.advance(60_000);
    assert_eq!(net.clients[0].connects.len(), 1);
    assert!(matches!(
        net.clients[0].session.status(),
        Status::Disconnected {
            error: Some(SessionError::Unauthorized { attempts: 1, .. })
        }
    ));
}

#[test]
fn rate_limit_honours_retry_after() {
    let mut net = Net::new(1);
    net.connect_all();
    let reason = close::with_retry_after("message rate", std::time::Duration::from_secs(5));
    net.server_close(0, close::RATE_LIMITED, &reason);
    net.pump();
    let errs = errors(&net, 0);
    let [SessionError::RateLimited { retry_after_ms, .. }] = errs.as_slice() else {
        panic!("expected one rate-limit error: {errs:?}");
    };
    assert!((5_000..5_250).contains(retry_after_ms), "{retry_after_ms}");
    net.advance(4_999);
    assert_eq!(net.clients[0].connects.len(), 1);
    net.advance(251);
    assert_eq!(net.clients[0].connects.len(), 2);
    assert_eq!(net.clients[0].session.status(), &Status::Synced);
}

#[test]
fn rate_limit_without_a_hint_uses_backoff_and_huge_hints_are_capped() {
    let mut net = Net::new(1);
    net.connect_all();
    net.server_close(0, close::RATE_LIMITED, "limit");
    net.advance(250);
    assert_eq!(net.clients[0].connects.len(), 2);
    net.server_close(0, close::RATE_LIMITED, "retry-after=99999999");
    net.advance(600_000 + 250);
    assert_eq!(net.clients[0].connects.len(), 3);
}

#[test]
fn a_silent_connection_is_replaced() {
    let mut net = Net::new(1);
    net.connect_all();
    net.clients[0].deaf = true;
    net.advance(29_999);
    assert_eq!(net.clients[0].connects.len(), 1);
    net.advance(1);
    assert_eq!(net.clients[0].closes.len(), 1);
    net.clients[0].deaf = false;
    net.advance(250);
    assert_eq!(net.clients[0].connects.len(), 2);
    assert_eq!(net.clients[0].session.status(), &Status::Synced);
}

#[test]
fn a_hanging_connection_attempt_is_abandoned_and_retried() {
    let mut net = Net::new(1);
    net.clients[0].hang = true;
    net.connect_all();
    net.advance(9_999);
    assert!(net.clients[0].closes.is_empty());
    net.advance(1);
    assert_eq!(net.clients[0].closes.len(), 1);
    net.clients[0].hang = false;
    net.advance(250);
    assert_eq!(net.clients[0].session.status(), &Status::Synced);
}

#[test]
fn connect_skips_the_wait_and_frames_for_a_dead_socket_are_dropped() {
    let mut net = Net::new(1);
    net.connect_all();
    net.clients[0]
        .session
        .set_presence(net.now, serde_json::json!({"a": 1}))
        .expect("object");
    // The socket dies before the transport drained the presence frame.
    net.clients[0].session.on_close(net.now, 1006, "");
    let outputs: Vec<Output> =
        std::iter::from_fn(|| net.clients[0].session.poll_output()).collect();
    assert!(
        outputs.iter().all(|o| !matches!(o, Output::Send(_))),
        "{outputs:?}"
    );
    net.clients[0].online = false;
    let _ = net.hub.close(0, net.now);
    // The app knows the network is back: no need to wait for the backoff.
    net.clients[0].session.connect(net.now);
    assert_eq!(
        net.clients[0].session.poll_output(),
        Some(Output::Connect {
            refresh_token: false
        })
    );
}
