//! TLS end to end: the server's own listener (`--tls-cert`/`--tls-key`) with a
//! certificate from a private CA generated here (rcgen); the Rust SDK given that CA
//! syncs a document and presence over `wss://` with tokens the admin client mints over
//! `https://`; a client that does not trust the CA is refused with `Error::Tls`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use tandem_sdk::admin::{AdminClient, Authorize, Scope};
use tandem_sdk::dev::SecretKeyTokenProvider;
use tandem_sdk::{Certificate, Client, Error, RoomEvent, StaticToken, Status};

use crate::harness::Server;
use crate::sdk_support::{others_users, synced, until};

const WAIT: Duration = Duration::from_secs(20);

/// A private CA and a server certificate it signed for `localhost` and 127.0.0.1,
/// written to `dir`: returns (CA PEM, server chain file, server key file).
fn private_ca(dir: &Path) -> (String, PathBuf, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Tandem test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
        .distinguished_name
        .push(DnType::CommonName, "tandem test server");
    let server = params.signed_by(&server_key, &ca, &ca_key).unwrap();

    let (chain, key) = (dir.join("server.pem"), dir.join("server-key.pem"));
    std::fs::write(&chain, format!("{}{}", server.pem(), ca.pem())).unwrap();
    std::fs::write(&key, server_key.serialize_pem()).unwrap();
    (ca.pem(), chain, key)
}

/// A strict server serving TLS, its https:// base URL, the CA and the first-start
/// secret key (read from its stdout: the harness's HTTP client speaks plain HTTP).
struct TlsServer {
    server: Server,
    base: String,
    ca: Certificate,
    secret_key: String,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

async fn tls_server() -> TlsServer {
    let (data, certs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ca_pem, chain, key) = private_ca(certs.path());
    let server = Server::start_strict(
        &data,
        &[
            "--tls-cert",
            chain.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let deadline = Instant::now() + WAIT;
    let secret_key = loop {
        let found = server.stdout_lines().iter().find_map(|line| {
            let start = line.find("secret key: ")? + "secret key: ".len();
            line[start..].split_whitespace().next().map(str::to_owned)
        });
        if let Some(key) = found {
            break key;
        }
        assert!(Instant::now() < deadline, "no secret key on stdout");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(secret_key.starts_with("sk_"), "{secret_key}");
    // The first-start message names the https:// URL.
    assert!(server
        .stdout_lines()
        .iter()
        .any(|l| l.contains(&format!("https://{}/v1/tokens", server.addr))));
    TlsServer {
        base: format!("https://{}", server.addr),
        ca: Certificate::from_pem(ca_pem.as_bytes()).unwrap(),
        server,
        secret_key,
        _dirs: (data, certs),
    }
}

fn tls_client(tls: &TlsServer, provider: SecretKeyTokenProvider) -> Client {
    Client::builder(&tls.base)
        .token_provider(provider)
        .add_root_certificate(tls.ca.clone())
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(1_000))
        .build()
        .unwrap()
}

/// Two SDK clients trusting the private CA (one with the built-in roots turned off)
/// edit one document and see each other's presence over wss://, with tokens minted
/// by the admin client over https://, which also reads the result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_syncs_over_wss_with_a_private_ca() {
    let tls = tls_server().await;
    let admin = AdminClient::builder(&tls.base)
        .secret_key(&tls.secret_key)
        .add_root_certificate(tls.ca.clone())
        .tls_built_in_roots(false)
        .build()
        .unwrap();
    let room_name = "tls/doc-1";
    let minted = admin
        .authorize(&Authorize::new("probe").allow(room_name, [Scope::Read]))
        .await
        .unwrap();
    assert_eq!(minted.user_id, "probe");

    let alice = tls_client(
        &tls,
        SecretKeyTokenProvider::with_admin(admin.clone(), "alice")
            .user_info(json!({"name": "Alice"})),
    );
    let bob = Client::builder(tls.base.replace("https://", "wss://"))
        .token_provider(
            SecretKeyTokenProvider::with_admin(admin.clone(), "bob")
                .user_info(json!({"name": "Bob"})),
        )
        .add_root_certificate(tls.ca.clone())
        .tls_built_in_roots(false)
        .build()
        .unwrap();
    let a = alice.enter(room_name).await.unwrap();
    let b = bob.enter(room_name).await.unwrap();
    synced(&a).await;
    synced(&b).await;

    a.text("notes").push("over tls;").unwrap();
    b.map("settings").set("theme", "dark").unwrap();
    until(
        "both edits on both clients",
        WAIT,
        || {
            b.text("notes").to_string() == "over tls;"
                && a.map("settings").to_json() == json!({"theme": "dark"})
        },
        || format!("{} {}", b.text("notes"), a.map("settings").to_json()),
    )
    .await;

    a.update_presence(json!({"cursor": 9})).unwrap();
    until(
        "bob sees alice with her cursor",
        WAIT,
        || {
            b.others()
                .iter()
                .any(|o| o.user_id() == Some("alice") && o.presence == json!({"cursor": 9}))
        },
        || format!("{:?}", b.others()),
    )
    .await;
    until(
        "alice sees bob",
        WAIT,
        || others_users(&a) == [("bob".to_owned(), "Bob".to_owned())],
        || format!("{:?}", a.others()),
    )
    .await;

    // The REST view over https: the document and both users.
    let deadline = Instant::now() + WAIT;
    loop {
        let document = admin.rooms().document(room_name).await.unwrap();
        let users = admin.rooms().active_users(room_name).await.unwrap();
        if document.get("notes") == Some(&json!("over tls;")) && users.len() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{document:?} {users:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // Graceful shutdown goes through the TLS listener as through the plain one.
    let mut tls = tls;
    assert!(tls.server.sigterm(), "a clean exit on SIGTERM");
}

/// Without the CA, the room never connects and says why (`Error::Tls`, not a generic
/// connection failure), on every attempt; the admin client fails the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused_with_a_tls_error() {
    let tls = tls_server().await;
    let stranger = Client::builder(&tls.base)
        .token_provider(StaticToken::new("unused"))
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .build()
        .unwrap();
    let room = stranger.enter("tls/untrusted").await.unwrap();
    let mut events = room.events();
    let mut refusals = 0;
    tokio::time::timeout(WAIT, async {
        while refusals < 2 {
            match events.recv().await {
                Some(RoomEvent::Error(Error::Tls { detail })) => {
                    assert!(detail.contains("not signed by a trusted root"), "{detail}");
                    assert!(detail.contains("add_root_certificate"), "{detail}");
                    refusals += 1;
                }
                Some(RoomEvent::Error(e)) => panic!("expected a TLS error, got {e:?}"),
                Some(_) => {}
                None => panic!("events ended"),
            }
        }
    })
    .await
    .expect("TLS refusals reported");
    assert!(!matches!(room.status(), Status::Synced | Status::Connected));

    let admin = AdminClient::builder(&tls.base)
        .secret_key(&tls.secret_key)
        .build()
        .unwrap();
    let error = admin
        .authorize(&Authorize::new("u").allow("x", [Scope::Read]))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Tls { .. }), "{error:?}");
    assert_eq!(error.code(), "tls");
    assert!(error.to_string().contains("POST /v1/tokens"), "{error}");

    // Plain HTTP to the TLS port gets no answer the client can read.
    let plain = AdminClient::builder(format!("http://{}", tls.server.addr))
        .secret_key(&tls.secret_key)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert!(plain.rooms().get("x").await.is_err());
}

/// The flags go together, and unusable files stop the server before it listens, with
/// the file named.
#[test]
fn bad_tls_flags_stop_the_server_at_start() {
    let (data, certs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_, chain, key) = private_ca(certs.path());
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run(&["--tls-cert", chain.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--tls-key"), "{stderr}");
    assert!(!stdout.contains("listening"), "{stdout}");

    // The chain file given as the key: no private key in it.
    let (code, stdout, stderr) = run(&[
        "--tls-cert",
        chain.to_str().unwrap(),
        "--tls-key",
        chain.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no PRIVATE KEY"), "{stderr}");
    assert!(stderr.contains("server.pem"), "{stderr}");
    assert!(!stdout.contains("listening"), "{stdout}");

    // Swapped: the key as the chain.
    let (code, _, stderr) = run(&[
        "--tls-cert",
        key.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no CERTIFICATE"), "{stderr}");
}
