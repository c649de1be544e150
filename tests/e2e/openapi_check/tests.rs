//! Tests of the checker against a hand-written spec, each failure mode included.

use serde_json::{json, Value};

use super::{check_response, operations, pattern};

fn problem_response() -> Value {
    json!({"description": "A problem", "content": {"application/problem+json": {
        "schema": {"$ref": "#/components/schemas/Problem"}}}})
}

fn json_response(schema: Value) -> Value {
    json!({"description": "OK", "content": {"application/json": {"schema": schema}}})
}

fn spec() -> Value {
    let room = json!({"$ref": "#/components/schemas/Room"});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Test", "version": "1"},
        "paths": {
            "/v1/rooms": {
                "get": {"operationId": "listRooms", "responses": {
                    "200": json_response(json!({"$ref": "#/components/schemas/RoomList"})),
                    "401": problem_response()}},
                "post": {"operationId": "createRoom", "responses": {
                    "201": json_response(room.clone()),
                    "4XX": problem_response()}}
            },
            "/v1/rooms/search": {"get": {"responses": {"204": {"description": "none"}}}},
            "/v1/rooms/{roomId}": {"get": {"responses": {"200": json_response(room)}}},
            "/v1/rooms/{roomId}/document": {
                "get": {"responses": {
                    "200": {"description": "bytes", "content": {"application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"}}}},
                    "404": {"$ref": "#/components/responses/NotFound"}}},
                "delete": {"responses": {"204": {"description": "Deleted"}}}
            },
            "/v1/files/{name}.json": {"get": {"responses": {"200": {"description": "any",
                "content": {"text/*": {}}}}}},
            "/v1/things": {"get": {"responses": {
                "200": json_response(json!({"type": "array",
                    "items": {"oneOf": [
                        {"$ref": "#/components/schemas/Cat"},
                        {"$ref": "#/components/schemas/Dog"}]}})),
                "default": problem_response()}}},
            "/v1/probe": {"post": {"responses": {
                "200": json_response(json!({"$ref": "#/components/schemas/Probe"}))}}}
        },
        "components": {
            "responses": {"NotFound": problem_response()},
            "schemas": {
                "Problem": {"type": "object", "required": ["type", "title", "status", "detail", "code"],
                    "properties": {
                        "type": {"type": "string"}, "title": {"type": "string"},
                        "status": {"type": "integer", "format": "int32", "minimum": 0},
                        "detail": {"type": "string"}, "code": {"type": "string"}}},
                "Room": {"type": "object", "required": ["name", "size", "createdAt"],
                    "additionalProperties": false,
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "size": {"type": "integer", "format": "uint64", "minimum": 0},
                        "createdAt": {"type": "integer", "format": "int64"},
                        "lastEditor": {"type": ["string", "null"]},
                        "owner": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/User"}]},
                        "tags": {"type": "array", "items": {"type": "string"}}}},
                "RoomList": {"type": "object", "required": ["rooms"], "properties": {
                    "rooms": {"type": "array", "items": {"$ref": "#/components/schemas/Room"}},
                    "next": {"type": ["string", "null"]}}},
                "User": {"type": "object", "required": ["id"], "properties": {
                    "id": {"type": "string", "pattern": "^usr_[0-9a-zA-Z]{1,64}$"}}},
                "Cat": {"type": "object", "required": ["kind", "lives"], "properties": {
                    "kind": {"type": "string", "enum": ["cat"]},
                    "lives": {"type": "integer", "format": "int32", "maximum": 9}}},
                "Dog": {"type": "object", "required": ["kind"], "properties": {
                    "kind": {"const": "dog"}, "good": {"type": "boolean"}}},
                "Tree": {"type": "object", "required": ["children"], "properties": {
                    "children": {"type": "array", "items": {"$ref": "#/components/schemas/Tree"}}}},
                "Loop": {"$ref": "#/components/schemas/Loop"},
                "Loose": {"properties": {"a": {"type": "integer"}}, "required": ["a"]},
                "Probe": {"type": "object", "properties": {
                    "tree": {"$ref": "#/components/schemas/Tree"},
                    "loop": {"$ref": "#/components/schemas/Loop"},
                    "loose": {"$ref": "#/components/schemas/Loose"},
                    "anything": {}, "yes": true,
                    "both": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    "all": {"allOf": [{"type": "integer", "minimum": 1}, {"maximum": 3}]},
                    "i32": {"type": "integer", "format": "int32"},
                    "extra": {"type": "object", "additionalProperties": {"type": "integer"},
                        "propertyNames": {"type": "string", "pattern": "^[a-z]+$"}},
                    "ambiguous": {"oneOf": [{"type": "integer"}, {"type": "number"}]}}}
            }
        }
    })
}

const PROBLEM: &str = r#"{"type":"t","title":"t","status":400,"detail":"d","code":"c"}"#;
const ROOM: &str = r#"{"name":"a","size":3,"createdAt":-5,"lastEditor":null,
    "owner":{"id":"usr_x1"},"tags":["t"]}"#;

/// Checks a response described as "METHOD path status [content-type]", where the
/// content type may be abbreviated to `json` or `problem`.
fn check(response: &str, body: &str) -> Result<(), String> {
    let mut words = response.split(' ');
    let (method, path) = (words.next().unwrap(), words.next().unwrap());
    let status = words.next().unwrap().parse().unwrap();
    let content_type = words.next().map(|ct| match ct {
        "json" => "application/json",
        "problem" => "application/problem+json",
        other => other,
    });
    check_response(&spec(), method, path, status, content_type, body.as_bytes())
}

fn ok(response: &str, body: &str) {
    if let Err(e) = check(response, body) {
        panic!("expected {response} {body} to pass, got: {e}");
    }
}

/// Asserts the check fails and its message contains `needle`.
fn fails(response: &str, body: &str, needle: &str) {
    match check(response, body) {
        Ok(()) => panic!("expected {response} {body} to fail with {needle:?}"),
        Err(e) => assert!(e.contains(needle), "error {e:?} should mention {needle:?}"),
    }
}

#[test]
fn lists_operations() {
    let mut ops = operations(&spec());
    ops.sort();
    let want = [
        "DELETE /v1/rooms/{roomId}/document",
        "GET /v1/files/{name}.json",
        "GET /v1/rooms",
        "GET /v1/rooms/search",
        "GET /v1/rooms/{roomId}",
        "GET /v1/rooms/{roomId}/document",
        "GET /v1/things",
        "POST /v1/probe",
        "POST /v1/rooms",
    ];
    let ops: Vec<String> = ops.iter().map(|(m, p)| format!("{m} {p}")).collect();
    assert_eq!(ops, want);
}

#[test]
fn accepts_documented_responses() {
    ok(
        "GET /v1/rooms 200 json",
        &format!(r#"{{"rooms":[{ROOM}],"next":null}}"#),
    );
    ok(
        "get /v1/rooms?limit=5 200 application/json;charset=utf-8",
        r#"{"rooms":[]}"#,
    );
    ok(
        "POST /v1/rooms 201 json",
        r#"{"name":"a","size":18446744073709551615,"createdAt":1.0}"#,
    );
    ok("GET /v1/rooms 401 problem", PROBLEM);
    // A range and a `default` response cover codes not listed one by one.
    ok("POST /v1/rooms 422 Application/Problem+JSON", PROBLEM);
    ok("GET /v1/things 503 problem", PROBLEM);
    ok(
        "GET /v1/things 200 json",
        r#"[{"kind":"cat","lives":9},{"kind":"dog","good":true}]"#,
    );
    // Templates match one segment, percent-encoded or not; binary bodies are opaque.
    ok(
        "GET /v1/rooms/a%2Fb/document 200 application/octet-stream",
        "\u{0}\u{ff}",
    );
    ok("GET /v1/rooms/a%2Fb/document 404 problem", PROBLEM); // via components/responses
    ok("DELETE /v1/rooms/r/document 204", "");
    ok("GET /v1/files/report.json 200 text/plain", "hi");
    // The literal segment wins over the template.
    ok("GET /v1/rooms/search 204", "");
    ok("GET /v1/rooms/searc%68 204", "");
}

#[test]
fn rejects_unknown_paths_methods_and_statuses() {
    fails(
        "GET /v2/rooms 200 json",
        "{}",
        "no path template in the spec matches",
    );
    fails("GET /v1/rooms//document 200 json", "{}", "no path template");
    fails("GET /v1/rooms/ 200 json", "{}", "no path template");
    fails("GET /v1/files/.json 200 text/plain", "", "no path template");
    fails(
        "PUT /v1/rooms 200 json",
        "{}",
        "/v1/rooms does not define PUT (it defines: GET, POST)",
    );
    fails(
        "POST /v1/rooms/search 200 json",
        "{}",
        "does not define POST",
    );
    fails(
        "GET /v1/rooms 500 problem",
        PROBLEM,
        "500 is not documented (documented: 200, 401)",
    );
    fails(
        "DELETE /v1/rooms/r/document 200",
        "",
        "status 200 is not documented",
    );
}

#[test]
fn rejects_wrong_media_types_and_bodies() {
    fails(
        "GET /v1/rooms 200 text/html",
        "{}",
        "media type \"text/html\" is not documented",
    );
    fails(
        "GET /v1/rooms 200",
        r#"{"rooms":[]}"#,
        "has no Content-Type",
    );
    fails(
        "GET /v1/rooms 401 json",
        PROBLEM,
        "\"application/json\" is not documented",
    );
    fails(
        "GET /v1/rooms/x/document 200 json",
        "{}",
        "is not documented",
    );
    fails("GET /v1/rooms 200 json", "{\"rooms\":", "is not JSON");
    fails("GET /v1/rooms 401 problem", "", "is not JSON");
    fails(
        "GET /v1/rooms 401 problem",
        r#"{"type":"t"}"#,
        "required property \"title\" is missing",
    );
    fails(
        "DELETE /v1/rooms/r/document 204 text/plain",
        "gone",
        "no content, but the body has 4 bytes",
    );
    fails(
        "GET /v1/things 200 json",
        r#"[{"kind":"cow"}]"#,
        "at /0: matches none of oneOf",
    );
}

#[test]
fn validates_room_schema() {
    let room: Value = serde_json::from_str(ROOM).unwrap();
    let with = |key: &str, v: Option<Value>| {
        let mut r = room.clone();
        let fields = r.as_object_mut().unwrap();
        match v {
            Some(v) => fields.insert(key.to_owned(), v),
            None => fields.remove(key),
        };
        r.to_string()
    };
    let bad = |key: &str, v: Option<Value>, needle: &str| {
        fails("GET /v1/rooms/r 200 json", &with(key, v), needle)
    };
    ok("GET /v1/rooms/r 200 json", ROOM);
    ok(
        "GET /v1/rooms/r 200 json",
        &with("lastEditor", Some(json!("usr_1"))),
    );
    ok("GET /v1/rooms/r 200 json", &with("owner", None));
    ok(
        "GET /v1/rooms/r 200 json",
        &with("owner", Some(Value::Null)),
    );
    bad(
        "name",
        None,
        "at the root: the required property \"name\" is missing",
    );
    bad(
        "name",
        Some(json!(5)),
        "at /name: expected string, got integer 5",
    );
    bad("name", Some(json!("")), "shorter than 1");
    bad(
        "lastEditor",
        Some(json!(3)),
        "at /lastEditor: expected string or null",
    );
    bad(
        "size",
        Some(json!(1.5)),
        "at /size: expected integer, got number 1.5",
    );
    bad("size", Some(json!(-1)), "below the minimum 0");
    bad(
        "size",
        Some(json!(18446744073709551616.0)),
        "out of range for format uint64",
    );
    bad(
        "createdAt",
        Some(json!(9.3e18)),
        "out of range for format int64",
    );
    bad(
        "extra",
        Some(json!(1)),
        "the property \"extra\" is not allowed",
    );
    bad(
        "owner",
        Some(json!({"id": "usr_"})),
        "at /owner/id: \"usr_\" does not match",
    );
    bad("owner", Some(json!({})), "at /owner: matches none of oneOf");
    bad("tags", Some(json!(["a", 2])), "at /tags/1: expected string");
    bad("tags", Some(json!("a")), "at /tags: expected array");
    fails(
        "GET /v1/rooms/r 200 json",
        "[]",
        "at the root: expected object, got array",
    );
}

#[test]
fn validates_combinators_refs_and_formats() {
    let probe = |body: Value| check("POST /v1/probe 200 json", &body.to_string());
    let probe_fails =
        |body: Value, needle: &str| fails("POST /v1/probe 200 json", &body.to_string(), needle);
    probe(json!({})).unwrap();
    probe(json!({"tree": {"children": [{"children": [{"children": []}]}]}})).unwrap();
    probe_fails(
        json!({"tree": {"children": [{"children": [{}]}]}}),
        "at /tree/children/0/children/0: the required property \"children\"",
    );
    probe_fails(json!({"loop": 1}), "a $ref cycle?");
    probe(json!({"loose": {"a": 1, "b": "x"}, "anything": [null], "yes": {"x": 1}})).unwrap();
    probe_fails(
        json!({"loose": {"a": "x"}}),
        "at /loose/a: expected integer",
    );
    probe_fails(
        json!({"loose": {}}),
        "at /loose: the required property \"a\"",
    );
    probe(json!({"both": "s", "all": 2, "i32": 2147483647, "extra": {"k": 1}})).unwrap();
    probe(json!({"ambiguous": 1.5})).unwrap();
    probe_fails(json!({"both": true}), "at /both: matches none of anyOf");
    probe_fails(json!({"all": 0}), "below the minimum 1");
    probe_fails(json!({"all": 4}), "above the maximum 3");
    probe_fails(
        json!({"i32": 2147483648_u64}),
        "out of range for format int32",
    );
    probe_fails(
        json!({"extra": {"k": "v"}}),
        "at /extra/k: expected integer",
    );
    probe_fails(
        json!({"extra": {"K": 1}}),
        "at /extra/K: \"K\" does not match",
    );
    probe_fails(json!({"ambiguous": 2}), "matches 2 oneOf branches (#0, #1)");
    let cat = r#"[{"kind":"cat","lives":10}]"#;
    fails(
        "GET /v1/things 200 json",
        cat,
        "#0: at /0/lives: 10 is above the maximum 9",
    );
    let cow = r#"[{"kind":"cow","lives":1}]"#;
    fails(
        "GET /v1/things 200 json",
        cow,
        "\"cow\" is not one of the enum values [\"cat\"]",
    );
    let dog = r#"[{"kind":"dog","good":"yes"}]"#;
    fails(
        "GET /v1/things 200 json",
        dog,
        "#1: at /0/good: expected boolean",
    );
}

#[test]
fn pattern_subset_matches_like_ecmascript() {
    use pattern::Regex;
    let re = |p: &str| Regex::new(p).unwrap_or_else(|| panic!("{p:?} should compile"));
    let id = re("^prj_[0-9a-zA-Z]{1,64}$");
    assert!(id.is_match("prj_abc123"));
    assert!(id.is_match(&format!("prj_{}", "a".repeat(64))));
    assert!(!id.is_match(&format!("prj_{}", "a".repeat(65))));
    assert!(!id.is_match("prj_"));
    assert!(!id.is_match("prj_ab-c"));
    assert!(!id.is_match("xprj_abc"));
    // Unanchored patterns match anywhere, as JSON Schema says.
    assert!(re("b+").is_match("abbc"));
    assert!(!re("^b+").is_match("abbc"));
    assert!(re("^(?:ten|prj)_\\w+$").is_match("ten_x"));
    assert!(!re("^(ten|prj)_\\w+$").is_match("usr_x"));
    assert!(re("^a.c$").is_match("abc"));
    assert!(!re("^a.c$").is_match("a\nc"));
    assert!(re("^[^/]+\\*?$").is_match("docs*"));
    assert!(!re("^[^/]+\\*?$").is_match("a/b"));
    assert!(re("^\\d{2,}-\\s?[a\\-z]*$").is_match("12- a-z"));
    assert!(re("^x{3}$").is_match("xxx") && !re("^x{3}$").is_match("xxxx"));
    assert!(re("^(a|)+$").is_match("aaa")); // an empty loop body must not hang
    assert!(re("^(a*)*b$").is_match(&format!("{}b", "a".repeat(5000))));
    assert!(!re("^(a*)*b$").is_match(&"a".repeat(5000)));
    // Unsupported syntax is reported, not guessed at.
    for p in [
        "(?=a)", "\\bword", "(a)\\1", "\\p{L}", "a**", "[]", "a{2,1}", "(", "a)",
    ] {
        assert!(Regex::new(p).is_none(), "{p:?} should be unsupported");
    }
}
