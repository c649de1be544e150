//! Property: three clients making random edits through random disconnects, server
//! closes and partial deliveries always end with the same document as each other and as
//! the server, once everyone is back and synced.

use proptest::prelude::*;
use yrs::{Array, Map, Text, Transact};

use super::net::{doc_json, Net};
use crate::client::Status;
use crate::close;

#[derive(Debug, Clone)]
enum Op {
    MapSet { client: usize, key: u8, value: i64 },
    TextInsert { client: usize, at: u8, text: String },
    ArrayPush { client: usize, value: i64 },
    Cut { client: usize },
    Restore { client: usize },
    ServerClose { client: usize, code: u16 },
    Deliver { frames: u8 },
    Advance { ms: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    let client = 0usize..3;
    prop_oneof![
        3 => (client.clone(), 0u8..4, any::<i64>())
            .prop_map(|(client, key, value)| Op::MapSet { client, key, value }),
        3 => (client.clone(), any::<u8>(), "[a-z]{1,4}")
            .prop_map(|(client, at, text)| Op::TextInsert { client, at, text }),
        2 => (client.clone(), any::<i64>()).prop_map(|(client, value)| Op::ArrayPush { client, value }),
        1 => client.clone().prop_map(|client| Op::Cut { client }),
        1 => client.clone().prop_map(|client| Op::Restore { client }),
        1 => (client, prop::sample::select(vec![
                close::RESTARTING,
                close::TRY_AGAIN_LATER,
                1006,
                close::UNAUTHORIZED,
                close::RATE_LIMITED,
            ]))
            .prop_map(|(client, code)| Op::ServerClose { client, code }),
        3 => (0u8..12).prop_map(|frames| Op::Deliver { frames }),
        2 => (0u32..40_000).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn apply(net: &mut Net, op: &Op) {
    match op {
        Op::MapSet { client, key, value } => {
            let doc = &net.clients[*client].doc;
            let m = doc.get_or_insert_map("m");
            m.insert(&mut doc.transact_mut(), format!("k{key}"), *value);
        }
        Op::TextInsert { client, at, text } => {
            let doc = &net.clients[*client].doc;
            let t = doc.get_or_insert_text("t");
            let mut txn = doc.transact_mut();
            let len = t.len(&txn);
            t.insert(&mut txn, u32::from(*at) * len / 256, text);
        }
        Op::ArrayPush { client, value } => {
            let doc = &net.clients[*client].doc;
            let a = doc.get_or_insert_array("a");
            a.push_back(&mut doc.transact_mut(), *value);
        }
        Op::Cut { client } => net.cut(*client),
        Op::Restore { client } => net.restore(*client),
        Op::ServerClose { client, code } => {
            if net.clients[*client].online {
                net.server_close(*client, *code, "retry-after=1");
            }
        }
        Op::Deliver { frames } => {
            for _ in 0..*frames {
                net.step();
            }
        }
        Op::Advance { ms } => net.advance(u64::from(*ms)),
    }
}

proptest! {
    // 256 cases unless PROPTEST_CASES says otherwise.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256)
    ))]

    #[test]
    fn three_clients_converge_through_random_disconnects(ops in prop::collection::vec(op(), 1..60)) {
        let mut net = Net::new(3);
        net.connect_all();
        for op in &ops {
            apply(&mut net, op);
        }
        // Everyone back: network up, a session stopped by repeated 4401s re-entered.
        for i in 0..3 {
            net.restore(i);
            if matches!(net.clients[i].session.status(), Status::Disconnected { .. }) {
                net.clients[i].session.connect(net.now);
            }
        }
        net.advance(120_000);
        for (i, c) in net.clients.iter().enumerate() {
            prop_assert_eq!(c.session.status(), &Status::Synced, "client {}", i);
        }
        let server = doc_json(&net.hub.doc);
        for (i, c) in net.clients.iter().enumerate() {
            prop_assert_eq!(&c.json(), &server, "client {} differs from the server", i);
        }
    }
}
