//! The validator against real yrs updates, crafted bombs and the fuzzer's findings.

use super::*;
use w::{string, var};

fn lim() -> Limits {
    Limits::default()
}

fn any_update(any: &[u8]) -> Vec<u8> {
    let mut b = vec![1, 1, 1, 0, 8, 1];
    string(&mut b, "a");
    b.push(1);
    b.extend_from_slice(any);
    b.push(0);
    b
}

#[test]
fn accepts_real_updates_and_matches_yrs() {
    use yrs::updates::decoder::Decode;
    for u in corpus::corpus() {
        let l = Limits {
            max_subdocs: 10,
            ..lim()
        };
        validate_update_v1(&u, &l).unwrap_or_else(|e| panic!("{e} for {}", w::hex(&u)));
        yrs::Update::decode_v1(&u).unwrap();
    }
}

#[test]
fn accepts_real_state_vectors() {
    use yrs::updates::encoder::Encode;
    use yrs::{ReadTxn, Transact};
    let d = sample_doc();
    let sv = d.transact().state_vector().encode_v1();
    assert_eq!(validate_state_vector_v1(&sv), Ok(1));
    assert!(validate_state_vector_v1(&[0]).is_ok());
}

#[test]
fn rejects_count_bombs() {
    // state vector / update clients count with no data
    for bytes in [
        &[0x80, 0x80, 0x80, 0xc0, 0x03][..],
        &[0xff, 0xff, 0xff, 0xff, 0x0f],
    ] {
        assert!(matches!(
            validate_state_vector_v1(bytes),
            Err(Invalid::Truncated { .. })
        ));
        assert!(matches!(
            validate_update_v1(bytes, &lim()),
            Err(Invalid::Truncated { .. })
        ));
    }
    // blocks count
    assert!(validate_update_v1(&[1, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0], &lim()).is_err());
    // Any map / array count
    assert!(matches!(
        validate_update_v1(&any_update(&[118, 0x80, 0x80, 0x80, 0x70, 0]), &lim()),
        Err(Invalid::Truncated { .. })
    ));
    assert!(matches!(
        validate_update_v1(&any_update(&[117, 0xff, 0xff, 0xff, 0xff, 0x0f]), &lim()),
        Err(Invalid::Truncated { .. })
    ));
    // delete set counts
    assert!(validate_update_v1(&[0, 0xff, 0xff, 0xff, 0xff, 0x0f], &lim()).is_err());
    assert!(validate_update_v1(&[0, 1, 7, 0xff, 0xff, 0xff, 0xff, 0x0f], &lim()).is_err());
}

#[test]
fn rejects_nested_map_bomb_even_when_each_count_fits() {
    // 8 nested maps each declaring 2 entries but holding 1: rejected by the full walk
    let mut a = vec![];
    for _ in 0..8 {
        a.extend_from_slice(&[118, 2, 0]);
    }
    a.push(126);
    assert!(validate_update_v1(&any_update(&a), &lim()).is_err());
}

#[test]
fn depth_limit() {
    let nest = |d: usize| {
        let mut a = vec![];
        for _ in 0..d {
            a.extend_from_slice(&[117, 1]);
        }
        a.push(126);
        any_update(&a)
    };
    assert!(validate_update_v1(&nest(63), &lim()).is_ok());
    assert!(matches!(
        validate_update_v1(&nest(64), &lim()),
        Err(Invalid::TooDeep { .. })
    ));
    assert!(matches!(
        validate_update_v1(&nest(100_000), &lim()),
        Err(Invalid::TooDeep { .. })
    ));
}

#[test]
fn rejects_clock_overflow_and_wrapping_varints() {
    // DS range clock 0xfffffff0 len 0x20
    assert!(matches!(
        validate_update_v1(&[0, 1, 7, 1, 0xf0, 0xff, 0xff, 0xff, 0x0f, 0x20], &lim()),
        Err(Invalid::ClockOverflow { .. })
    ));
    // DS len 2^53 (yrs wraps it to a u32)
    let mut b = vec![0, 1, 7, 1, 0];
    var(&mut b, 1 << 53);
    assert!(matches!(
        validate_update_v1(&b, &lim()),
        Err(Invalid::BadVarInt { .. })
    ));
    // item starting above i32::MAX (yrs update.rs:344 signed offset bug)
    let mut b = vec![1, 1, 5];
    var(&mut b, 1 << 31);
    b.extend_from_slice(&[4, 1]);
    string(&mut b, "t");
    string(&mut b, "a");
    b.push(0);
    assert!(matches!(
        validate_update_v1(&b, &lim()),
        Err(Invalid::ClockOverflow { .. })
    ));
    // item ending above i32::MAX
    let mut b = vec![1, 1, 5];
    var(&mut b, i32::MAX as u64 - 1);
    b.extend_from_slice(&[4, 1]);
    string(&mut b, "t");
    string(&mut b, "abcd");
    b.push(0);
    assert!(matches!(
        validate_update_v1(&b, &lim()),
        Err(Invalid::ClockOverflow { .. })
    ));
    // client id >= 2^53 aliases a smaller id in yrs
    let mut b = vec![2, 1, 5, 0, 0, 1, 1];
    var(&mut b, (1 << 53) + 5);
    b.extend_from_slice(&[0xe8, 0x07, 0, 1, 0]);
    assert!(matches!(
        validate_update_v1(&b, &lim()),
        Err(Invalid::BadVarInt { .. })
    ));
    // non-canonical varint (padding)
    assert!(matches!(
        validate_update_v1(&[0x80, 0x00, 0], &lim()),
        Err(Invalid::BadVarInt { .. })
    ));
}

#[test]
fn subdocs_trailing_and_unknown() {
    let mut b = vec![1, 1, 5, 0, 9, 1];
    string(&mut b, "a");
    string(&mut b, "guid");
    b.push(126);
    b.push(0);
    assert!(matches!(
        validate_update_v1(&b, &lim()),
        Err(Invalid::LimitExceeded {
            what: "subdocs",
            ..
        })
    ));
    assert!(validate_update_v1(
        &b,
        &Limits {
            max_subdocs: 1,
            ..lim()
        }
    )
    .is_ok());
    assert!(matches!(
        validate_update_v1(&[0, 0, 0], &lim()),
        Err(Invalid::TrailingBytes { .. })
    ));
    assert!(validate_update_v1(&[0, 0], &lim()).is_ok());
    assert!(validate_update_v1(&any_update(&[115]), &lim()).is_err());
    // same client twice (update.rs:155 unreachable!)
    let dup = w::unhex("0201070000010107e807000100");
    assert!(matches!(
        validate_update_v1(&dup, &lim()),
        Err(Invalid::Unexpected { at: 7 })
    ));
}

fn sv_of(doc: &yrs::Doc) -> impl Fn(u64) -> u32 {
    use yrs::{ReadTxn, Transact};
    let sv = doc.transact().state_vector();
    move |c| sv.get(&yrs::block::ClientID::new(c))
}

#[test]
fn stateful_accepts_real_update_stream() {
    use yrs::updates::decoder::Decode;
    use yrs::Transact;
    let doc = yrs::Doc::new();
    for u in corpus::corpus() {
        let l = Limits {
            max_subdocs: 10,
            ..lim()
        };
        validate_update_v1_for_doc(&u, &l, &sv_of(&doc))
            .unwrap_or_else(|e| panic!("{e} for {}", w::hex(&u)));
        doc.transact_mut()
            .apply_update(yrs::Update::decode_v1(&u).unwrap())
            .unwrap();
    }
}

#[test]
fn stateful_rejects_gap_and_missing_deps() {
    let doc = yrs::Doc::new();
    // SIGSEGV reproducer, step 1: GC for client 5 at clock 3 while the doc has clock 0
    let u1 = w::unhex("01010503000100");
    assert!(validate_update_v1(&u1, &lim()).is_ok());
    assert!(matches!(
        validate_update_v1_for_doc(&u1, &lim(), &sv_of(&doc)),
        Err(Invalid::Gap { .. })
    ));
    // item whose origin (9,0) is unknown
    let u = w::unhex("0101050082090000017800");
    assert!(matches!(
        validate_update_v1_for_doc(
            &u,
            &Limits {
                allow_content_json: true,
                ..lim()
            },
            &sv_of(&doc)
        ),
        Err(Invalid::MissingDependency { .. })
    ));
    // self reference
    let u = w::unhex("01010100880100017e00");
    assert!(matches!(
        validate_update_v1_for_doc(&u, &lim(), &sv_of(&doc)),
        Err(Invalid::MissingDependency { .. })
    ));
    // delete range beyond known state
    let u = w::unhex("000101010103");
    assert!(matches!(
        validate_update_v1_for_doc(&u, &lim(), &sv_of(&doc)),
        Err(Invalid::MissingDependency { .. })
    ));
    // contiguous own blocks + reference into the same update are fine
    let u = w::unhex("01020500080101610178880500017e00");
    assert!(
        validate_update_v1_for_doc(&u, &lim(), &sv_of(&doc)).is_ok(),
        "{:?}",
        validate_update_v1_for_doc(&u, &lim(), &sv_of(&doc))
    );
}

#[test]
fn validated_inputs_never_over_allocate_in_yrs() {
    // every accepted update decodes in yrs with reservations bounded by its length
    use yrs::updates::decoder::Decode;
    let mut b = vec![];
    var(&mut b, 3);
    for c in 0..3u64 {
        var(&mut b, 1);
        var(&mut b, 100 + c);
        var(&mut b, 0);
        b.extend_from_slice(&[4, 1]);
        string(&mut b, "t");
        string(&mut b, "x");
    }
    b.push(0);
    validate_update_v1(&b, &lim()).unwrap();
    yrs::Update::decode_v1(&b).unwrap();
}

// Helpers from the audit harness: lib0 writers and a corpus of real updates.
pub mod w {
    pub fn var(buf: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            buf.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        buf.push(v as u8);
    }
    pub fn string(buf: &mut Vec<u8>, s: &str) {
        var(buf, s.len() as u64);
        buf.extend_from_slice(s.as_bytes());
    }
    pub fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{:02x}", x)).collect()
    }
    pub fn unhex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }
}

mod corpus {
    //! Valid v1 updates produced by real yrs operations.
    use std::collections::HashMap;
    use std::sync::Arc;
    use yrs::types::text::TextPrelim;
    use yrs::types::xml::{XmlElementPrelim, XmlTextPrelim};
    use yrs::updates::decoder::Decode;
    use yrs::*;

    pub fn corpus() -> Vec<Vec<u8>> {
        let mut out = vec![];
        let d1 = Doc::with_client_id(1);
        let d2 = Doc::with_client_id(u32::MAX as u64 * 1000 + 7);
        let text = d1.get_or_insert_text("text");
        let arr = d1.get_or_insert_array("arr");
        let map = d1.get_or_insert_map("map");
        let xml = d1.get_or_insert_xml_fragment("xml");
        macro_rules! tx {
            ($d:expr, |$t:ident| $body:block) => {{
                let mut $t = yrs::Transact::transact_mut(&$d);
                $body;
                out.push($t.encode_update_v1());
            }};
        }
        tx!(d1, |t| {
            text.insert(&mut t, 0, "hello wörld 🎉");
        });
        tx!(d1, |t| {
            text.remove_range(&mut t, 1, 3);
        });
        tx!(d1, |t| {
            let mut attrs = HashMap::new();
            attrs.insert(Arc::<str>::from("bold"), Any::Bool(true));
            text.format(&mut t, 0, 4, attrs);
        });
        tx!(d1, |t| {
            text.insert_embed(
                &mut t,
                2,
                Any::from(vec![Any::from("img"), Any::Number(Number::Float(1.5))]),
            );
        });
        tx!(d1, |t| {
            arr.insert_range(
                &mut t,
                0,
                vec![
                    Any::Null,
                    Any::Undefined,
                    Any::Bool(false),
                    Any::from(-42i64),
                    Any::Number(Number::Int(1 << 60)),
                    Any::from(0.25),
                    Any::from("s"),
                    Any::from(vec![1u8, 2, 3]),
                ],
            );
        });
        tx!(d1, |t| {
            let nested: Any = Any::from(HashMap::from([(
                "a".to_string(),
                Any::from(vec![Any::from(HashMap::from([(
                    "b".to_string(),
                    Any::Null,
                )]))]),
            )]));
            arr.push_back(&mut t, nested);
            arr.push_back(&mut t, ArrayPrelim::from(vec![1, 2, 3]));
            arr.push_back(&mut t, MapPrelim::from([("x", 1)]));
            arr.push_back(&mut t, TextPrelim::new("inner"));
        });
        tx!(d1, |t| {
            arr.remove_range(&mut t, 1, 2);
        });
        tx!(d1, |t| {
            map.insert(&mut t, "k", "v");
            map.insert(&mut t, "n", 5);
            map.insert(&mut t, "k", 6);
            map.remove(&mut t, "n");
        });
        tx!(d1, |t| {
            map.insert(&mut t, "sub", Doc::new());
        });
        tx!(d1, |t| {
            let el = xml.insert(&mut t, 0, XmlElementPrelim::empty("p"));
            el.insert_attribute(&mut t, "class", "c");
            el.insert(&mut t, 0, XmlTextPrelim::new("xt"));
        });
        // concurrent edits from a second client with a big client id
        {
            let u = Transact::transact(&d1).encode_state_as_update_v1(&StateVector::default());
            Transact::transact_mut(&d2)
                .apply_update(Update::decode_v1(&u).unwrap())
                .unwrap();
            let t2 = d2.get_or_insert_text("text");
            tx!(d2, |t| {
                t2.insert(&mut t, 3, "XYZ");
                t2.remove_range(&mut t, 0, 2);
            });
        }
        out.push(Transact::transact(&d1).encode_state_as_update_v1(&StateVector::default()));
        out.push(Transact::transact(&d2).encode_state_as_update_v1(&StateVector::default()));
        let sv1 = Transact::transact(&d1).state_vector();
        out.push(Transact::transact(&d2).encode_diff_v1(&sv1));
        out
    }
}

pub fn sample_doc() -> yrs::Doc {
    let doc = yrs::Doc::with_client_id(7);
    use yrs::{GetString, Text, Transact, WriteTxn};
    {
        let t = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        t.insert(&mut txn, 0, "hello world");
        t.remove_range(&mut txn, 2, 3);
        let m = txn.get_or_insert_map("m");
        use yrs::Map;
        m.insert(&mut txn, "k", 1.5);
        m.insert(&mut txn, "k", "v");
        let _ = t.get_string(&txn);
    }
    doc
}
