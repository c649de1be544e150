//! Checks real HTTP responses against the OpenAPI 3.1 document: the path, method, status
//! and media type must be documented, and a JSON body must validate against its schema
//! (the JSON Schema subset utoipa emits). It depends on `serde_json` only, so `pattern`
//! is matched by a small built-in engine (see [`pattern`]) rather than a regex crate.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

/// How deep `$ref` chains and nested schemas may go before we call it a cycle.
const MAX_DEPTH: usize = 128;

/// The operation keys of a path item, in the order OpenAPI lists them.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every (METHOD, templated path) in the spec, e.g. ("GET", "/v1/rooms").
pub fn operations(spec: &Value) -> Vec<(String, String)> {
    let Some(paths) = spec.get("paths").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (template, item) in paths {
        let item = deref(spec, item).unwrap_or(item);
        for method in METHODS {
            if item.get(method).is_some() {
                out.push((method.to_ascii_uppercase(), template.clone()));
            }
        }
    }
    out
}

/// Checks one response against the spec. `path` is the concrete request path (e.g.
/// "/v1/rooms/a%2Fb/document"), matched against the spec's templated paths
/// ("/v1/rooms/{roomId}/document"); a template segment matches exactly one non-empty
/// path segment. Query strings are ignored.
pub fn check_response(
    spec: &Value,
    method: &str,
    path: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), String> {
    let method_uc = method.to_ascii_uppercase();
    let request = format!("{method_uc} {path}");
    let paths = spec
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| format!("{request}: the spec has no `paths` object"))?;
    let (template, item) = match_path(paths, path)
        .ok_or_else(|| format!("{request}: no path template in the spec matches {path:?}"))?;
    let item = deref(spec, item).map_err(|e| format!("{request}: path item {template}: {e}"))?;
    let op = item.get(method_uc.to_ascii_lowercase()).ok_or_else(|| {
        let defined: Vec<String> = METHODS
            .iter()
            .filter(|m| item.get(**m).is_some())
            .map(|m| m.to_ascii_uppercase())
            .collect();
        format!(
            "{request}: {template} does not define {method_uc} (it defines: {})",
            defined.join(", ")
        )
    })?;
    let at = format!("{request} (spec: {method_uc} {template})");
    let responses = op
        .get("responses")
        .and_then(Value::as_object)
        .ok_or_else(|| format!("{at}: the operation has no `responses`"))?;
    let (key, response) = pick_response(responses, status).ok_or_else(|| {
        let documented: Vec<&str> = responses.keys().map(String::as_str).collect();
        format!(
            "{at}: status {status} is not documented (documented: {})",
            documented.join(", ")
        )
    })?;
    let response = deref(spec, response).map_err(|e| format!("{at}: response {key}: {e}"))?;
    let at = format!("{at}, response {key}");

    let content = response
        .get("content")
        .and_then(Value::as_object)
        .filter(|c| !c.is_empty());
    let Some(content) = content else {
        if body.is_empty() {
            return Ok(());
        }
        return Err(format!(
            "{at}: documents no content, but the body has {} bytes: {}",
            body.len(),
            excerpt(body)
        ));
    };
    let documented = || content.keys().cloned().collect::<Vec<_>>().join(", ");
    let actual = content_type.map(media_type).ok_or_else(|| {
        format!(
            "{at}: documents content ({}) but has no Content-Type",
            documented()
        )
    })?;
    let media = pick_media(content, &actual).ok_or_else(|| {
        format!(
            "{at}: media type {actual:?} is not documented (documented: {})",
            documented()
        )
    })?;
    if !is_json(&actual) {
        // Binary and text bodies: the media type is all the spec tells us to check.
        return Ok(());
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "{at}: the {actual} body is not JSON ({e}): {}",
            excerpt(body)
        )
    })?;
    if let Some(schema) = media.get("schema") {
        Validator { spec }
            .check(schema, &value, "", 0)
            .map_err(|e| format!("{at}: the {actual} body does not match its schema: {e}"))?;
    }
    Ok(())
}

/// The most specific path template matching `path`: segment by segment from the left, a
/// literal segment beats a templated one (as OpenAPI and axum both route).
fn match_path<'a>(paths: &'a Map<String, Value>, path: &str) -> Option<(&'a str, &'a Value)> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').collect();
    let mut best: Option<(Vec<bool>, &str, &Value)> = None;
    for (template, item) in paths {
        let parts: Vec<&str> = template.split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let literal: Option<Vec<bool>> = parts
            .iter()
            .zip(&segments)
            .map(|(part, segment)| match_segment(part, segment))
            .collect();
        let Some(literal) = literal else { continue };
        if best.as_ref().is_none_or(|(b, _, _)| literal > *b) {
            best = Some((literal, template, item));
        }
    }
    best.map(|(_, template, item)| (template, item))
}

/// Whether one template segment matches one path segment: `Some(true)` for a literal
/// match, `Some(false)` for a templated one. Each `{name}` matches one or more characters;
/// a segment may mix literals and templates (`{file}.json`).
fn match_segment(part: &str, segment: &str) -> Option<bool> {
    if !part.contains('{') {
        let decoded = percent_decode(segment);
        return (part == segment || decoded.as_deref() == Some(part)).then_some(true);
    }
    glob(part, segment).then_some(false)
}

fn glob(template: &str, s: &str) -> bool {
    match template.find('{') {
        None => template == s,
        Some(open) => {
            let Some(rest) = s.strip_prefix(&template[..open]) else {
                return false;
            };
            let after = match template[open..].find('}') {
                Some(close) => &template[open + close + 1..],
                None => return false,
            };
            // The hole takes at least one character, then the rest must match.
            rest.char_indices()
                .skip(1)
                .map(|(i, _)| i)
                .chain(std::iter::once(rest.len()))
                .filter(|&i| i > 0)
                .any(|i| glob(after, &rest[i..]))
        }
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The response for `status`: exact code, then a range (`4XX`), then `default`.
fn pick_response(responses: &Map<String, Value>, status: u16) -> Option<(String, &Value)> {
    let exact = status.to_string();
    let range = format!("{}XX", status / 100);
    responses
        .get(&exact)
        .map(|r| (exact, r))
        .or_else(|| {
            responses
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&range))
                .map(|(k, r)| (k.clone(), r))
        })
        .or_else(|| responses.get("default").map(|r| ("default".to_owned(), r)))
}

/// `type/subtype`, lowercased, without parameters such as `; charset=utf-8`.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The documented media object for `actual`: exact, then `type/*`, then `*/*`.
fn pick_media<'a>(content: &'a Map<String, Value>, actual: &str) -> Option<&'a Value> {
    let wildcard = format!("{}/*", actual.split('/').next().unwrap_or_default());
    [actual, wildcard.as_str(), "*/*"].iter().find_map(|want| {
        content
            .iter()
            .find(|(k, _)| media_type(k) == *want)
            .map(|(_, v)| v)
    })
}

fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

/// Follows a chain of `$ref`s on a non-schema object (path item, response).
fn deref<'a>(spec: &'a Value, mut v: &'a Value) -> Result<&'a Value, String> {
    for _ in 0..MAX_DEPTH {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => v = resolve_ref(spec, r)?,
            None => return Ok(v),
        }
    }
    Err(format!("$ref chain longer than {MAX_DEPTH} (a cycle?)"))
}

/// Resolves a local reference such as `#/components/schemas/Room`.
fn resolve_ref<'a>(spec: &'a Value, r: &str) -> Result<&'a Value, String> {
    let pointer = r
        .strip_prefix('#')
        .ok_or_else(|| format!("only local references are supported, not {r:?}"))?;
    let pointer = percent_decode(pointer).ok_or_else(|| format!("malformed reference {r:?}"))?;
    spec.pointer(&pointer)
        .ok_or_else(|| format!("reference {r:?} points at nothing"))
}

/// At most 200 characters of a body, for error messages.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(200).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    format!("{out:?}")
}

/// A JSON value in an error message, shortened.
fn show(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 80 {
        let mut short: String = text.chars().take(80).collect();
        short.push('…');
        short
    } else {
        text
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if is_integer(n) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// An instance location (a JSON pointer into the body) for messages.
fn loc(at: &str) -> String {
    if at.is_empty() {
        "at the root".to_owned()
    } else {
        format!("at {at}")
    }
}

fn child(at: &str, key: &str) -> String {
    format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn is_integer(n: &Number) -> bool {
    n.is_i64()
        || n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

/// An integral number as i128 (wide enough for every i64 and u64); `None` if it has a
/// fractional part or is far out of range.
fn as_i128(n: &Number) -> Option<i128> {
    if let Some(i) = n.as_i64() {
        return Some(i.into());
    }
    if let Some(u) = n.as_u64() {
        return Some(u.into());
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 1e38).then_some(f as i128)
}

fn cmp_num(a: &Number, b: &Number) -> Option<Ordering> {
    match (as_i128(a), as_i128(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// JSON equality where `1` and `1.0` are the same number (as JSON Schema has it).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => cmp_num(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Bounds of the integer formats utoipa emits.
fn format_bounds(format: &str) -> Option<(i128, i128)> {
    Some(match format {
        "int8" => (i8::MIN.into(), i8::MAX.into()),
        "int16" => (i16::MIN.into(), i16::MAX.into()),
        "int32" => (i32::MIN.into(), i32::MAX.into()),
        "int64" => (i64::MIN.into(), i64::MAX.into()),
        "uint8" => (0, u8::MAX.into()),
        "uint16" => (0, u16::MAX.into()),
        "uint32" => (0, u32::MAX.into()),
        "uint64" => (0, u64::MAX.into()),
        _ => return None,
    })
}

/// Validates instances against schemas of one spec. String formats (`date-time`, `uuid`,
/// …), `patternProperties`, `unevaluated*`, `if`/`then`/`else` and `discriminator` are not
/// checked: utoipa does not emit the latter ones, and the formats would need parsers.
struct Validator<'a> {
    spec: &'a Value,
}

impl Validator<'_> {
    fn check(&self, schema: &Value, value: &Value, at: &str, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "{}: schemas nest deeper than {MAX_DEPTH} (a $ref cycle?)",
                loc(at)
            ));
        }
        let s = match schema {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => {
                return Err(format!("{}: the schema `false` accepts nothing", loc(at)))
            }
            Value::Object(s) => s,
            other => return Err(format!("{}: not a schema: {}", loc(at), show(other))),
        };
        if let Some(r) = s.get("$ref") {
            let r = r
                .as_str()
                .ok_or_else(|| format!("{}: `$ref` is not a string", loc(at)))?;
            let target = resolve_ref(self.spec, r).map_err(|e| format!("{}: {e}", loc(at)))?;
            self.check(target, value, at, depth + 1)?;
        }
        self.check_type(s, value, at)?;
        if let Some(options) = s.get("enum").and_then(Value::as_array) {
            if !options.iter().any(|o| json_eq(o, value)) {
                let options: Vec<String> = options.iter().map(show).collect();
                return Err(format!(
                    "{}: {} is not one of the enum values [{}]",
                    loc(at),
                    show(value),
                    options.join(", ")
                ));
            }
        }
        if let Some(c) = s.get("const") {
            if !json_eq(c, value) {
                return Err(format!(
                    "{}: {} is not the constant {}",
                    loc(at),
                    show(value),
                    show(c)
                ));
            }
        }
        match value {
            Value::Number(n) => self.check_number(s, n, at)?,
            Value::String(v) => self.check_string(s, v, at)?,
            Value::Array(items) => self.check_array(s, items, at, depth)?,
            Value::Object(object) => self.check_object(s, object, at, depth)?,
            Value::Null | Value::Bool(_) => {}
        }
        self.check_combinators(s, value, at, depth)
    }

    fn check_type(&self, s: &Map<String, Value>, value: &Value, at: &str) -> Result<(), String> {
        let mut types: Vec<&str> = match s.get("type") {
            None => return Ok(()),
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            Some(other) => {
                return Err(format!("{}: `type` is malformed: {}", loc(at), show(other)))
            }
        };
        // OpenAPI 3.0's spelling, in case a hand-written schema still uses it.
        if s.get("nullable") == Some(&Value::Bool(true)) {
            types.push("null");
        }
        let ok = types.iter().any(|t| match (*t, value) {
            ("null", Value::Null)
            | ("boolean", Value::Bool(_))
            | ("string", Value::String(_))
            | ("array", Value::Array(_))
            | ("object", Value::Object(_))
            | ("number", Value::Number(_)) => true,
            ("integer", Value::Number(n)) => is_integer(n),
            _ => false,
        });
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{}: expected {}, got {} {}",
                loc(at),
                types.join(" or "),
                kind(value),
                show(value)
            ))
        }
    }

    fn check_number(&self, s: &Map<String, Value>, n: &Number, at: &str) -> Result<(), String> {
        let bound = |key: &str| s.get(key).and_then(Value::as_number);
        let fail = |what: String| Err(format!("{}: {n} {what}", loc(at)));
        // `exclusiveMinimum: true` is OpenAPI 3.0's form, modifying `minimum`.
        let exclusive = |key: &str| s.get(key) == Some(&Value::Bool(true));
        if let Some(min) = bound("minimum") {
            let ord = cmp_num(n, min);
            if ord == Some(Ordering::Less)
                || (exclusive("exclusiveMinimum") && ord == Some(Ordering::Equal))
            {
                return fail(format!("is below the minimum {min}"));
            }
        }
        if let Some(max) = bound("maximum") {
            let ord = cmp_num(n, max);
            if ord == Some(Ordering::Greater)
                || (exclusive("exclusiveMaximum") && ord == Some(Ordering::Equal))
            {
                return fail(format!("is above the maximum {max}"));
            }
        }
        if let Some(min) = bound("exclusiveMinimum") {
            if cmp_num(n, min) != Some(Ordering::Greater) {
                return fail(format!("is not above the exclusive minimum {min}"));
            }
        }
        if let Some(max) = bound("exclusiveMaximum") {
            if cmp_num(n, max) != Some(Ordering::Less) {
                return fail(format!("is not below the exclusive maximum {max}"));
            }
        }
        if let Some(m) = bound("multipleOf") {
            let ok = match (as_i128(n), as_i128(m)) {
                (Some(x), Some(y)) if y != 0 => x % y == 0,
                _ => match (n.as_f64(), m.as_f64()) {
                    (Some(x), Some(y)) if y != 0.0 => {
                        ((x / y).round() * y - x).abs() < 1e-9 * x.abs().max(1.0)
                    }
                    _ => true,
                },
            };
            if !ok {
                return fail(format!("is not a multiple of {m}"));
            }
        }
        if let Some(format) = s.get("format").and_then(Value::as_str) {
            if let Some((lo, hi)) = format_bounds(format) {
                match as_i128(n) {
                    Some(i) if (lo..=hi).contains(&i) => {}
                    Some(_) => return fail(format!("is out of range for format {format}")),
                    None => return fail(format!("is not an integer, but the format is {format}")),
                }
            }
        }
        Ok(())
    }

    fn check_string(&self, s: &Map<String, Value>, v: &str, at: &str) -> Result<(), String> {
        let len = v.chars().count() as u64;
        if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
            if len < min {
                return Err(format!(
                    "{}: {v:?} is shorter than {min} characters",
                    loc(at)
                ));
            }
        }
        if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
            if len > max {
                return Err(format!(
                    "{}: {v:?} is longer than {max} characters",
                    loc(at)
                ));
            }
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            // A pattern outside the supported subset is skipped rather than failed: the
            // spec may be right and our engine too small.
            if let Some(re) = pattern::Regex::new(p) {
                if !re.is_match(v) {
                    return Err(format!(
                        "{}: {v:?} does not match the pattern {p:?}",
                        loc(at)
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_array(
        &self,
        s: &Map<String, Value>,
        items: &[Value],
        at: &str,
        depth: usize,
    ) -> Result<(), String> {
        let n = items.len() as u64;
        if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
            if n < min {
                return Err(format!("{}: {n} items, fewer than {min}", loc(at)));
            }
        }
        if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
            if n > max {
                return Err(format!("{}: {n} items, more than {max}", loc(at)));
            }
        }
        let prefix = s
            .get("prefixItems")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for (i, item) in items.iter().enumerate() {
            let schema = match prefix.get(i) {
                Some(schema) => schema,
                None => match s.get("items") {
                    Some(schema) => schema,
                    None => continue,
                },
            };
            self.check(schema, item, &child(at, &i.to_string()), depth + 1)?;
        }
        if s.get("uniqueItems") == Some(&Value::Bool(true)) {
            for (i, a) in items.iter().enumerate() {
                if items[..i].iter().any(|b| json_eq(a, b)) {
                    return Err(format!(
                        "{}: items must be unique, {} repeats",
                        loc(at),
                        show(a)
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_object(
        &self,
        s: &Map<String, Value>,
        object: &Map<String, Value>,
        at: &str,
        depth: usize,
    ) -> Result<(), String> {
        for name in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = name.as_str() {
                if !object.contains_key(name) {
                    return Err(format!(
                        "{}: the required property {name:?} is missing",
                        loc(at)
                    ));
                }
            }
        }
        let n = object.len() as u64;
        if s.get("minProperties")
            .and_then(Value::as_u64)
            .is_some_and(|min| n < min)
        {
            return Err(format!("{}: too few properties ({n})", loc(at)));
        }
        if s.get("maxProperties")
            .and_then(Value::as_u64)
            .is_some_and(|max| n > max)
        {
            return Err(format!("{}: too many properties ({n})", loc(at)));
        }
        let names = s.get("propertyNames");
        let properties = s.get("properties").and_then(Value::as_object);
        // With `patternProperties` we cannot tell which properties are "additional".
        let additional = s
            .get("additionalProperties")
            .filter(|_| !s.contains_key("patternProperties"));
        for (name, v) in object {
            let here = child(at, name);
            if let Some(schema) = names {
                self.check(schema, &Value::String(name.clone()), &here, depth + 1)?;
            }
            match properties.and_then(|p| p.get(name)) {
                Some(schema) => self.check(schema, v, &here, depth + 1)?,
                None => match additional {
                    Some(Value::Bool(false)) => {
                        return Err(format!(
                        "{}: the property {name:?} is not allowed (additionalProperties: false)",
                        loc(at)
                    ))
                    }
                    Some(schema) => self.check(schema, v, &here, depth + 1)?,
                    None => {}
                },
            }
        }
        Ok(())
    }

    fn check_combinators(
        &self,
        s: &Map<String, Value>,
        value: &Value,
        at: &str,
        depth: usize,
    ) -> Result<(), String> {
        let list = |key: &str| s.get(key).and_then(Value::as_array);
        if let Some(all) = list("allOf") {
            for schema in all {
                self.check(schema, value, at, depth + 1)?;
            }
        }
        let outcomes = |branches: &[Value]| -> Vec<Result<(), String>> {
            branches
                .iter()
                .map(|b| self.check(b, value, at, depth + 1))
                .collect()
        };
        let explain = |results: &[Result<(), String>]| -> String {
            let reasons: Vec<String> = results
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.as_ref().err().map(|e| format!("#{i}: {e}")))
                .collect();
            reasons.join("; ")
        };
        if let Some(any) = list("anyOf") {
            let results = outcomes(any);
            if !results.iter().any(Result::is_ok) {
                return Err(format!(
                    "{}: matches none of anyOf ({})",
                    loc(at),
                    explain(&results)
                ));
            }
        }
        if let Some(one) = list("oneOf") {
            let results = outcomes(one);
            let matched: Vec<String> = results
                .iter()
                .enumerate()
                .filter(|(_, r)| r.is_ok())
                .map(|(i, _)| format!("#{i}"))
                .collect();
            match matched.len() {
                1 => {}
                0 => {
                    return Err(format!(
                        "{}: matches none of oneOf ({})",
                        loc(at),
                        explain(&results)
                    ))
                }
                _ => {
                    return Err(format!(
                        "{}: {} matches {} oneOf branches ({}); exactly one must match",
                        loc(at),
                        show(value),
                        matched.len(),
                        matched.join(", ")
                    ))
                }
            }
        }
        if let Some(not) = s.get("not") {
            if self.check(not, value, at, depth + 1).is_ok() {
                return Err(format!(
                    "{}: {} matches the `not` schema",
                    loc(at),
                    show(value)
                ));
            }
        }
        Ok(())
    }
}

/// A small ECMA-262 regex subset for `pattern`: literals, `.`, escapes (`\d \w \s` and
/// their negations, `\n`-style controls, `\xHH`, `\uHHHH`, escaped punctuation), classes
/// with ranges and negation, groups (capturing or `(?:…)`), `|`, the quantifiers
/// `* + ? {n} {n,} {n,m}` (greedy or lazy), and the anchors `^ $`. Anything else
/// (lookaround, backreferences, `\b`, `\p{…}`, flags) makes [`Regex::new`] return `None`,
/// and the caller skips the check. Matching is a Pike VM: linear in the input, no
/// backtracking blow-up.
mod pattern;

#[cfg(test)]
mod tests;
