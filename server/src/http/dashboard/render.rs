//! Pure rendering helpers: times and sizes for people, a room's document as a
//! collapsible tree and its connections as HTML fragments (sent again by the live feed,
//! so one renderer serves the first paint and every update).

use std::fmt::Write;

use serde_json::Value;

use crate::rooms::admin::PresenceEntry;

/// Escapes text for HTML content and attribute values.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A time as `2026-12-07 22:41 UTC`.
pub(super) fn when(ms: i64) -> String {
    let text = crate::http::api::views::time(ms);
    // RFC 3339 `2026-12-07T22:41:05.123Z` → `2026-12-07 22:41 UTC`.
    match (text.get(0..10), text.get(11..16)) {
        (Some(day), Some(hm)) => format!("{day} {hm} UTC"),
        _ => text,
    }
}

/// A past time relative to `now`: `just now`, `5 min ago`, `3 h ago`, or the date.
pub(super) fn ago(ms: i64, now: i64) -> String {
    let secs = (now - ms).max(0) / 1000;
    match secs {
        0..=59 => "just now".to_owned(),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => when(ms),
    }
}

/// Bytes as `512 B`, `1.5 KiB`, `3.2 MiB`.
pub(super) fn bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    if n < 1024.0 {
        format!("{n} B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else if n < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    } else {
        format!("{:.1} GiB", n / (1024.0 * 1024.0 * 1024.0))
    }
}

/// Percent-encodes a query value (room names may hold `/`, `&`, spaces…).
pub(super) fn query_value(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The document (`{"root": value}`, as `Rooms::to_json` gives it) as a tree of nested
/// `<details>`, each with a `data-path` so the live feed can keep what the reader opened.
pub(super) fn tree(doc: &Value) -> String {
    let Some(roots) = doc.as_object().filter(|r| !r.is_empty()) else {
        return r#"<div class="empty"><h3>Empty document</h3><p>Nothing has been written to this room yet.</p></div>"#.to_owned();
    };
    let mut out = String::from("<ul>");
    for (name, value) in roots {
        node(&mut out, name, value, name, true);
    }
    out.push_str("</ul>");
    out
}

fn kind(value: &Value, root: bool) -> &'static str {
    match value {
        Value::Object(_) => "map",
        Value::Array(_) => "array",
        // Roots that are strings are Y.Text (or XML rendered as its markup).
        Value::String(s) if root && s.trim_start().starts_with('<') => "xml",
        Value::String(_) if root => "text",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
    }
}

fn node(out: &mut String, key: &str, value: &Value, path: &str, root: bool) {
    let label = format!(
        r#"<span class="key">{}</span><span class="type">{}</span>"#,
        esc(key),
        kind(value, root)
    );
    match value {
        Value::Object(map) => {
            let _ = write!(
                out,
                r#"<li><details open data-path="{}"><summary>{label} <span class="muted small">{} entr{}</span></summary><ul>"#,
                esc(path),
                map.len(),
                if map.len() == 1 { "y" } else { "ies" }
            );
            for (k, v) in map {
                node(out, k, v, &format!("{path}.{k}"), false);
            }
            out.push_str("</ul></details></li>");
        }
        Value::Array(items) => {
            let _ = write!(
                out,
                r#"<li><details open data-path="{}"><summary>{label} <span class="muted small">{} item{}</span></summary><ul>"#,
                esc(path),
                items.len(),
                if items.len() == 1 { "" } else { "s" }
            );
            for (i, v) in items.iter().enumerate() {
                node(out, &i.to_string(), v, &format!("{path}[{i}]"), false);
            }
            out.push_str("</ul></details></li>");
        }
        leaf => {
            let _ = write!(out, "<li>{label} {}</li>", scalar(leaf));
        }
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => format!(r#"<span class="str">"{}"</span>"#, esc(s)),
        Value::Number(n) => format!(r#"<span class="num">{n}</span>"#),
        other => format!(r#"<span class="lit">{other}</span>"#),
    }
}

/// Who is connected: per connection the user (what the server attached from the
/// token), what the token allows, since when, which key minted it and on which node,
/// their presence states, and (with `close`, the form action for an admin) a button
/// that closes that one connection.
pub(super) fn people(entries: &[PresenceEntry], now: i64, close: Option<&str>) -> String {
    if entries.is_empty() {
        return r#"<div class="empty"><h3>Nobody is connected</h3><p>Connections appear here live.</p></div>"#.to_owned();
    }
    let mut out = String::from(r#"<div class="people">"#);
    for e in entries {
        let name = e
            .user_info
            .as_ref()
            .and_then(|i| i.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| e.user_id.clone())
            .unwrap_or_else(|| "anonymous".to_owned());
        let color = e
            .states
            .iter()
            .find_map(|(_, s)| s.get("user")?.get("color")?.as_str().map(str::to_owned))
            .filter(|c| {
                c.len() <= 32 && c.chars().all(|ch| ch == '#' || ch.is_ascii_alphanumeric())
            })
            .unwrap_or_else(|| "#6366f1".to_owned());
        let node = e.node.map(|n| format!("{n:016x}")).unwrap_or_default();
        let _ = write!(
            out,
            r#"<div class="person" data-connection="{id}"><span class="swatch" style="background:{color}"></span><div class="person-body"><div class="person-head"><div><strong data-person>{name}</strong> <span class="muted small mono">{user}</span></div>"#,
            id = e.connection_id,
            color = esc(&color),
            name = esc(&name),
            user = esc(e.user_id.as_deref().unwrap_or("")),
        );
        // An entry with connection 0 is presence another node sent: nothing to close
        // from here by id, and no key, scopes or time were sent with it.
        let remote = e.connection_id == 0;
        if let Some(action) = close.filter(|_| !remote) {
            let _ = write!(
                out,
                r#"<form class="inline" method="post" action="{}"><input type="hidden" name="connection" value="{}"><input type="hidden" name="node" value="{}"><button class="btn ghost-danger small" type="submit" data-close-connection="{}">Close</button></form>"#,
                esc(action),
                e.connection_id,
                node,
                e.connection_id
            );
        }
        out.push_str("</div>");
        if remote {
            let _ = write!(
                out,
                r#"<dl class="facts small"><dt>Connection</dt><dd>on another node</dd><dt>Node</dt><dd class="mono">{node}</dd></dl>"#
            );
        } else {
            let _ = write!(
                out,
                r#"<dl class="facts small"><dt>Connection</dt><dd class="mono">{}</dd><dt>Since</dt><dd title="{}">{}</dd><dt>Scopes</dt><dd data-scopes>"#,
                e.connection_id,
                esc(&when(e.connected_at)),
                esc(&ago(e.connected_at, now)),
            );
            for scope in e.rights.scopes() {
                let _ = write!(out, r#"<span class="badge">{scope}</span> "#);
            }
            let _ = write!(
                out,
                r#"</dd><dt>Key</dt><dd class="mono" data-key-id>{}</dd>"#,
                esc(e.key_id.as_deref().unwrap_or("none (anonymous)"))
            );
            if !node.is_empty() {
                let _ = write!(out, r#"<dt>Node</dt><dd class="mono">{node}</dd>"#);
            }
            out.push_str("</dl>");
        }
        for (client, state) in &e.states {
            let pretty = serde_json::to_string_pretty(state).unwrap_or_default();
            let _ = write!(
                out,
                r#"<pre data-presence="{client}">{}</pre>"#,
                esc(&pretty)
            );
        }
        if e.states.is_empty() {
            out.push_str(r#"<div class="small muted">no presence set</div>"#);
        }
        out.push_str("</div></div>");
    }
    out.push_str("</div>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_tree_shows_types_nesting_and_escapes() {
        let html = tree(&json!({
            "settings": {"title": "<b>hi</b>", "n": 3, "tags": ["a", true]},
            "body": "plain text",
            "xml": "<paragraph>x</paragraph>",
        }));
        assert!(html.contains(r#"<span class="type">map</span>"#));
        assert!(html.contains(r#"<span class="type">array</span>"#));
        assert!(html.contains(r#"<span class="type">text</span>"#));
        assert!(html.contains(r#"<span class="type">xml</span>"#));
        assert!(html.contains(r#"data-path="settings.tags""#));
        assert!(html.contains("&lt;b&gt;hi&lt;/b&gt;"));
        assert!(!html.contains("<b>hi"));
        assert!(tree(&json!({})).contains("Empty document"));
    }

    #[test]
    fn people_show_user_and_presence_escaped() {
        let entry = PresenceEntry {
            connection_id: 7,
            user_id: Some("u1".into()),
            user_info: Some(json!({"name": "<Ada>"})),
            states: vec![(42, json!({"cursor": 3, "user": {"color": "red;x"}}))],
            key_id: Some("key_1".into()),
            rights: crate::rooms::Rights {
                write: false,
                presence: true,
                admin: false,
            },
            connected_at: 0,
            node: Some(0xab),
        };
        let html = people(std::slice::from_ref(&entry), 120_000, None);
        assert!(html.contains("&lt;Ada&gt;"));
        assert!(html.contains(r#"data-presence="42""#));
        assert!(
            html.contains("#6366f1"),
            "an odd colour is not echoed into style"
        );
        assert!(html.contains("room:read") && html.contains("room:presence:write"));
        assert!(!html.contains("room:write<"), "{html}");
        assert!(html.contains("key_1") && html.contains("00000000000000ab"));
        assert!(html.contains("2 min ago"));
        assert!(!html.contains("<form"), "no close button without the right");
        let admin = people(&[entry], 120_000, Some("/close?name=a%2Fb"));
        assert!(admin.contains(r#"action="/close?name=a%2Fb""#));
        assert!(admin.contains(r#"name="connection" value="7""#));
        assert!(people(&[], 0, None).contains("Nobody is connected"));
    }

    #[test]
    fn formats() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(ago(0, 30_000), "just now");
        assert_eq!(ago(0, 5 * 60_000), "5 min ago");
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(query_value("a/b c&d"), "a%2Fb%20c%26d");
    }
}
