//! The server holds no plaintext document id or content.

use serde_json::json;

use crate::util::{Env, files_under};

#[tokio::test]
async fn server_files_contain_no_plaintext_ids_or_contents() {
    let env = Env::start().await;
    let a = env.device("a").await;
    let id_marker = "ID-MARKER-8f2e71";
    let content_marker = "CONTENT-MARKER-4b9d03";
    let mut doc = a
        .create_doc(&json!({"secret": content_marker}), Some(id_marker))
        .await
        .unwrap();
    a.sync().await.unwrap();
    a.delete_doc(&mut doc).await.unwrap();
    a.create_doc(
        &json!({"again": content_marker}),
        Some("another-ID-MARKER-8f2e71"),
    )
    .await
    .unwrap();
    a.sync().await.unwrap();
    env.device("b").await.sync().await.unwrap();

    let files = files_under(env.data_path());
    assert!(
        files
            .iter()
            .any(|f| f.ends_with(format!("user-{}.db", crate::util::UUID)))
    );
    for file in files {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        for marker in [id_marker, content_marker] {
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                "{marker} found in {}",
                file.display()
            );
        }
    }
    // The local database is encrypted too.
    for file in files_under(&env.home("a")) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes
                .windows(content_marker.len())
                .any(|w| w == content_marker.as_bytes())
        );
    }
}
