//! What both examples share: a [`Client`] configured from the environment.
//!
//! - `TANDEM_URL`: the server (default `http://127.0.0.1:8080`, where `tandem serve`
//!   listens out of the box).
//! - `TANDEM_SECRET_KEY`: the project's secret key (`sk_…`, printed by `tandem serve` on
//!   its first start). The examples mint their own tokens with it through
//!   [`SecretKeyTokenProvider`], which is for development only: a real app gets tokens
//!   from its backend and never holds a secret key.
//! - `TANDEM_TOKEN`: a ready-made client token instead (it must allow the room).
//! - Neither: no token, for a server started with `--allow-anonymous`.
//! - `TANDEM_CA_FILE`: a PEM root certificate to trust for an `https://` server with a
//!   private CA or a self-signed certificate (`tandem serve --tls-cert … --tls-key …`).

#![allow(dead_code)] // Each example uses part of this.

use serde_json::json;
use tandem_sdk::admin::AdminClient;
use tandem_sdk::dev::SecretKeyTokenProvider;
use tandem_sdk::{Certificate, Client, StaticToken};

/// The server URL from `TANDEM_URL`.
pub fn url() -> String {
    std::env::var("TANDEM_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into())
}

/// The root certificate named by `TANDEM_CA_FILE`, if any.
pub fn ca_from_env() -> Result<Option<Certificate>, Box<dyn std::error::Error>> {
    match std::env::var_os("TANDEM_CA_FILE") {
        None => Ok(None),
        Some(path) => Ok(Some(Certificate::from_pem(&std::fs::read(path)?)?)),
    }
}

/// An admin client with `TANDEM_SECRET_KEY` (and the CA of `TANDEM_CA_FILE`).
pub fn admin_from_env() -> Result<AdminClient, Box<dyn std::error::Error>> {
    let key = std::env::var("TANDEM_SECRET_KEY")
        .map_err(|_| "set TANDEM_SECRET_KEY (printed by `tandem serve` on its first start)")?;
    let mut builder = AdminClient::builder(url()).secret_key(key);
    if let Some(ca) = ca_from_env()? {
        builder = builder.add_root_certificate(ca);
    }
    Ok(builder.build()?)
}

/// A client for the server named by the environment, acting as `user`.
pub fn client_from_env(user: &str) -> Result<Client, Box<dyn std::error::Error>> {
    let mut builder = Client::builder(url());
    if let Some(ca) = ca_from_env()? {
        builder = builder.add_root_certificate(ca);
    }
    let builder = if let Ok(token) = std::env::var("TANDEM_TOKEN") {
        builder.token_provider(StaticToken::new(token))
    } else if std::env::var("TANDEM_SECRET_KEY").is_ok() {
        let id = user.to_lowercase();
        let provider = SecretKeyTokenProvider::with_admin(admin_from_env()?, id)
            .user_info(json!({ "name": user }));
        builder.token_provider(provider)
    } else {
        eprintln!("(no TANDEM_SECRET_KEY or TANDEM_TOKEN: connecting anonymously)");
        builder
    };
    Ok(builder.build()?)
}

/// The user's name: the first argument, else `$USER`, else "guest".
pub fn user_name(arg: Option<String>) -> String {
    arg.filter(|a| !a.is_empty())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "guest".into())
}

/// Who is in the room: "you" and the others' names, from the user info their tokens
/// carry.
pub fn online(room: &tandem_sdk::Room) -> String {
    let others: Vec<String> = room
        .others()
        .iter()
        .map(|o| {
            o.user
                .as_ref()
                .and_then(|u| u.get("name"))
                .and_then(|n| n.as_str())
                .map_or_else(|| format!("client {}", o.client_id), str::to_owned)
        })
        .collect();
    if others.is_empty() {
        "just you".to_owned()
    } else {
        format!("you, {}", others.join(", "))
    }
}
