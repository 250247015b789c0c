//! `soledad demo`: the real server in-process on loopback (embedded storage in
//! a temporary directory, self-signed TLS), one user, two devices; documents, an
//! index query, a conflict and its resolution, narrated as they happen. Nothing
//! is left behind.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use soledad_client::{KdfParams, SecretString, Soledad};
use soledad_server::{Config, Server, SqliteTokenStore, TokenStore as _};

use crate::context::DANGER_FAST_KDF_VAR;
use crate::error::CliError;
use crate::output::{BOLD, Output, STEP};

const UUID: &str = "demo-user";
const PASSPHRASE: &str = "demo passphrase: change me";

/// Prints each step as it happens (or collects them for `--json`).
struct Narrator {
    json: bool,
    steps: Vec<Value>,
}

impl Narrator {
    fn say(&mut self, step: &str, detail: impl Into<String>) -> Result<(), CliError> {
        let detail = detail.into();
        if self.json {
            self.steps.push(json!({"step": step, "detail": detail}));
            return Ok(());
        }
        let mut out = anstream::stdout().lock();
        writeln!(out, "{STEP}{step:>9}{STEP:#} {detail}")
            .and_then(|()| out.flush())
            .map_err(|e| CliError::io("writing to stdout", e))
    }
}

/// Runs the demo.
pub(crate) async fn run(json: bool) -> Result<Output, CliError> {
    let dir = tempfile::Builder::new()
        .prefix("soledad-demo-")
        .tempdir()
        .map_err(|e| CliError::io("creating a temporary directory", e))?;
    let mut narrator = Narrator {
        json,
        steps: Vec::new(),
    };
    let result = demo(dir.path(), &mut narrator).await;
    let cleanup = dir.close();
    result?;
    cleanup.map_err(|e| CliError::io("removing the temporary directory", e))?;
    narrator.say("done", "server stopped, temporary files removed")?;
    Ok(Output::new(
        json!({"ok": true, "steps": narrator.steps}),
        String::new(),
    ))
}

async fn demo(dir: &Path, say: &mut Narrator) -> Result<(), CliError> {
    let config = Config::loopback(dir.join("server"));
    std::fs::create_dir_all(&config.data_path)
        .map_err(|e| CliError::io("creating the server's data directory", e))?;
    let tokens = Arc::new(SqliteTokenStore::open(&config.token_store_path())?);
    let token = tokens.add(UUID, None).await?;
    say.say(
        "server",
        format!("registered user {UUID} (as `soledad-server user add` does)"),
    )?;
    let server = Server::builder(config).token_store(tokens).start().await?;
    let url = format!("https://{}", server.users_addr());
    say.say(
        "server",
        format!("listening on {url}, embedded storage in {}", dir.display()),
    )?;
    let ctx = Devices {
        dir,
        url,
        cert: server.cert_path().to_owned(),
        token: token.expose().to_owned(),
    };
    let result = scenario(&ctx, say).await;
    server.shutdown().await?;
    result
}

struct Devices<'a> {
    dir: &'a Path,
    url: String,
    cert: std::path::PathBuf,
    token: String,
}

impl Devices<'_> {
    async fn open(&self, name: &str) -> Result<Soledad, CliError> {
        let home = self.dir.join(name);
        std::fs::create_dir_all(&home).map_err(|e| CliError::io("creating a device home", e))?;
        let kdf = if std::env::var(DANGER_FAST_KDF_VAR).is_ok_and(|v| v == "1") {
            KdfParams::insecure_fast_for_tests()
        } else {
            KdfParams::interactive()
        };
        Ok(Soledad::builder(UUID, SecretString::from(PASSPHRASE))
            .secrets_path(home.join("soledad.json"))
            .local_db_path(home.join(format!("{UUID}.db")))
            .server_url(&self.url)
            .cert_file(&self.cert)
            .auth_token(&self.token)
            .danger_kdf_params(kdf)
            .with_blobs(true)
            .open()
            .await?)
    }
}

fn names(docs: &[soledad_client::Document]) -> Vec<String> {
    docs.iter()
        .filter_map(|d| d.value().ok().flatten())
        .filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

async fn scenario(devices: &Devices<'_>, say: &mut Narrator) -> Result<(), CliError> {
    let laptop = devices.open("laptop").await?;
    say.say(
        "laptop",
        "opened: new account, made the storage secret and uploaded its encrypted backup",
    )?;
    let phone = devices.open("phone").await?;
    say.say(
        "phone",
        "opened with the same passphrase: fetched the secret from the server backup",
    )?;

    for device in [&laptop, &phone] {
        device.create_index("by-name", &["lower(name)"]).await?;
    }
    for (id, name, email) in [
        ("ada", "Ada", "ada@example.org"),
        ("grace", "Grace", "grace@example.org"),
        ("alan", "Alan", "alan@example.org"),
    ] {
        laptop
            .create_doc(&json!({"name": name, "email": email}), Some(id))
            .await?;
    }
    say.say(
        "laptop",
        "created 3 contacts (ada, grace, alan) and index by-name",
    )?;
    let up = laptop.sync().await?;
    say.say(
        "laptop",
        format!("synced: sent {} encrypted documents", up.sent),
    )?;
    let down = phone.sync().await?;
    say.say(
        "phone",
        format!("synced: received {} documents", down.received),
    )?;
    let found = names(&phone.get_from_index("by-name", &["a*"]).await?);
    say.say(
        "phone",
        format!(
            "index query by-name 'a*' → {BOLD}{}{BOLD:#}",
            found.join(", ")
        ),
    )?;

    let mut on_phone = phone
        .get_doc("grace", false)
        .await?
        .ok_or_else(|| CliError::Demo("grace did not reach the phone".into()))?;
    on_phone.set_value(&json!({"name": "Grace", "email": "grace@phone.example"}))?;
    phone.put_doc(&mut on_phone).await?;
    let mut on_laptop = laptop
        .get_doc("grace", false)
        .await?
        .ok_or_else(|| CliError::Demo("grace vanished from the laptop".into()))?;
    on_laptop.set_value(&json!({"name": "Grace", "email": "grace@laptop.example"}))?;
    laptop.put_doc(&mut on_laptop).await?;
    say.say("both", "edited grace's email while offline")?;
    laptop.sync().await?;
    let report = phone.sync().await?;
    say.say(
        "phone",
        format!("synced: {} conflict(s) to resolve", report.conflicts),
    )?;

    let versions = phone.get_doc_conflicts("grace").await?;
    let revs: Vec<soledad_client::Rev> = versions.iter().filter_map(|d| d.rev.clone()).collect();
    let emails: Vec<String> = versions
        .iter()
        .filter_map(|d| d.value().ok().flatten())
        .filter_map(|v| v.get("email").and_then(Value::as_str).map(str::to_owned))
        .collect();
    say.say(
        "phone",
        format!(
            "grace has {} versions: {}",
            versions.len(),
            emails.join(" vs ")
        ),
    )?;
    let mut resolved = versions
        .first()
        .cloned()
        .ok_or_else(|| CliError::Demo("no conflict was recorded".into()))?;
    let merged = json!({"name": "Grace", "email": "grace@laptop.example",
                        "other_email": "grace@phone.example"});
    resolved.set_value(&merged)?;
    phone.resolve_doc(&mut resolved, &revs).await?;
    say.say("phone", "resolved: kept both emails")?;
    phone.sync().await?;
    laptop.sync().await?;

    let final_laptop = laptop.get_doc("grace", false).await?;
    let left = laptop.get_doc_conflicts("grace").await?;
    let agreed = final_laptop.as_ref().and_then(|d| d.value().ok().flatten()) == Some(merged);
    if !agreed || !left.is_empty() {
        return Err(CliError::Demo(format!(
            "devices disagree after resolution ({} conflicting versions left)",
            left.len()
        )));
    }
    say.say(
        "laptop",
        format!(
            "synced: grace = {}; both devices agree, no conflict left",
            final_laptop.as_ref().and_then(|d| d.json()).unwrap_or("?")
        ),
    )?;

    // A blob: encrypted on the laptop, stored as ciphertext, fetched by the phone.
    let photo: Vec<u8> = (0..64 * 1024u32).map(|n| (n % 251) as u8).collect();
    let (Some(laptop_blobs), Some(phone_blobs)) = (laptop.blobmanager(), phone.blobmanager())
    else {
        return Err(CliError::Demo("the blob store did not open".into()));
    };
    let size = u64::try_from(photo.len()).unwrap_or(u64::MAX);
    laptop_blobs
        .put("photo-1", photo.as_slice(), size, "", false)
        .await?;
    say.say(
        "laptop",
        "stored a 64 KiB photo as blob photo-1 and uploaded it",
    )?;
    let mut reader = phone_blobs
        .get("photo-1", "")
        .await?
        .ok_or_else(|| CliError::Demo("photo-1 did not reach the phone".into()))?;
    let mut fetched = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut fetched)
        .await
        .map_err(|e| CliError::io("reading the blob", e))?;
    if fetched != photo {
        return Err(CliError::Demo("the phone's copy of photo-1 differs".into()));
    }
    say.say(
        "phone",
        "downloaded photo-1, verified every segment: byte-identical",
    )?;

    laptop.close().await?;
    phone.close().await?;
    Ok(())
}
