//! Two devices of one user keep a small address book in sync through a Soledad
//! server, hit a conflict, and resolve it. `scripts/demo` starts a server and runs
//! this; to run it by hand give the server's details in the environment:
//!
//! ```sh
//! SOLEDAD_SERVER_URL=https://127.0.0.1:2424 SOLEDAD_CERT_FILE=cert.pem \
//! SOLEDAD_UUID=demo-user SOLEDAD_TOKEN=… SOLEDAD_HOME=/tmp/demo \
//!     cargo run -p soledad-client --example two_devices
//! ```

use std::path::{Path, PathBuf};

use serde_json::json;
use soledad_client::{Error, SecretString, Soledad};

fn var(name: &str) -> Result<String, Box<dyn std::error::Error>> {
    std::env::var(name).map_err(|_| format!("set {name} (see the example's doc)").into())
}

async fn open_device(home: &Path, name: &str) -> Result<Soledad, Box<dyn std::error::Error>> {
    let dir = home.join(name);
    std::fs::create_dir_all(&dir)?;
    let uuid = var("SOLEDAD_UUID")?;
    Ok(Soledad::builder(
        uuid.clone(),
        SecretString::from("demo passphrase: change me"),
    )
    .secrets_path(dir.join("soledad.json"))
    .local_db_path(dir.join(format!("{uuid}.db")))
    .server_url(var("SOLEDAD_SERVER_URL")?)
    .cert_file(var("SOLEDAD_CERT_FILE")?)
    .auth_token(var("SOLEDAD_TOKEN")?)
    .open()
    .await?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let home = PathBuf::from(var("SOLEDAD_HOME")?);
    println!("opening device A (new account: makes the storage secret, uploads its backup)");
    let laptop = open_device(&home, "laptop").await?;
    println!("opening device B (no local secrets: recovers them from the server backup)");
    let phone = open_device(&home, "phone").await?;

    laptop.create_index("by-name", &["lower(name)"]).await?;
    phone.create_index("by-name", &["lower(name)"]).await?;
    for (name, email) in [
        ("Ada", "ada@example.org"),
        ("Grace", "grace@example.org"),
        ("Alan", "alan@example.org"),
    ] {
        laptop
            .create_doc(&json!({"name": name, "email": email}), None)
            .await?;
    }
    let up = laptop.sync().await?;
    println!("A synced: sent {} documents", up.sent);
    let down = phone.sync().await?;
    println!("B synced: received {} documents", down.received);
    let a_names: Vec<String> = phone
        .get_from_index("by-name", &["a*"])
        .await?
        .iter()
        .filter_map(|d| d.value().ok().flatten())
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    println!("B's index answers names starting with 'a': {a_names:?}");

    // Both devices edit Grace while offline.
    let grace = phone.get_from_index("by-name", &["grace"]).await?.remove(0);
    let mut on_phone = grace.clone();
    on_phone.set_value(&json!({"name": "Grace", "email": "grace@phone.example"}))?;
    phone.put_doc(&mut on_phone).await?;
    let mut on_laptop = laptop
        .get_doc(&grace.doc_id, false)
        .await?
        .ok_or("missing")?;
    on_laptop.set_value(&json!({"name": "Grace", "email": "grace@laptop.example"}))?;
    laptop.put_doc(&mut on_laptop).await?;
    laptop.sync().await?;
    let report = phone.sync().await?;
    println!(
        "B synced after concurrent edits: {} conflict(s)",
        report.conflicts
    );

    let versions = phone.get_doc_conflicts(&grace.doc_id).await?;
    println!(
        "B sees {} versions of Grace; keeping the laptop's email",
        versions.len()
    );
    let revs: Vec<soledad_client::Rev> = versions.iter().filter_map(|d| d.rev.clone()).collect();
    let mut resolved = versions.first().cloned().ok_or("no versions")?;
    resolved
        .set_value(&json!({"name": "Grace", "email": "grace@laptop.example", "resolved": true}))?;
    phone.resolve_doc(&mut resolved, &revs).await?;
    phone.sync().await?;
    laptop.sync().await?;
    let final_doc = laptop
        .get_doc(&grace.doc_id, false)
        .await?
        .ok_or("missing")?;
    println!(
        "A after sync: {} (conflicts left: {})",
        final_doc.json().unwrap_or("deleted"),
        final_doc.has_conflicts
    );
    match laptop.get_doc_conflicts(&grace.doc_id).await {
        Ok(left) if left.is_empty() => println!("done: both devices agree, no conflict left"),
        Ok(left) => println!("unexpected: {} conflicting versions left", left.len()),
        Err(Error::Store(e)) => println!("store error: {e}"),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
