//! What the server leaves on disk: no blob of a refused upload, no orphan blob or
//! temporary file after a start, and only files (0600) and directories (0700) that
//! other users cannot read.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The names of the blobs in the data directory's `files/`.
fn blob_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("files"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn a_refused_upload_leaves_no_file_behind() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let room = app.room(&alice, &[], &[]).await;
    let dir = app.data_dir();
    let before = blob_files(&dir);

    // A message too long to post with the file: 400, and no blob.
    let (status, answer) = upload_file(
        &alice,
        room,
        "big.bin",
        vec![7u8; 1024 * 1024],
        Some("m".repeat(65_600)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_error(&(status, answer), StatusCode::BAD_REQUEST, "message");
    assert_eq!(blob_files(&dir), before);

    // A repeated Idempotency-Key gets the first upload's file: one blob only.
    let first = upload_file(&alice, room, "a.txt", b"one".to_vec(), None, Some("k-1")).await;
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    let again = upload_file(&alice, room, "a.txt", b"one".to_vec(), None, Some("k-1")).await;
    assert_eq!(again.0, StatusCode::OK, "{}", again.1);
    assert_eq!(again.1["file_id"], first.1["file_id"]);
    let after = blob_files(&dir);
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    assert_eq!(
        after.last().unwrap(),
        &format!("file-{}", first.1["file_id"])
    );
}

fn set_mtime(path: &Path, at: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(at)
        .unwrap();
}

#[tokio::test]
async fn orphan_blobs_and_leftover_temp_files_are_swept_at_start() {
    let mut app = spawn_app().await;
    let alice = app.account("Alice").await;
    let room = app.room(&alice, &[], &[]).await;
    let (status, answer) =
        upload_file(&alice, room, "keep.txt", b"keep".to_vec(), None, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let kept = format!("file-{}", answer["file_id"]);
    let files = app.data_dir().join("files");
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    std::fs::write(files.join("file-4242"), b"orphan").unwrap();
    std::fs::write(files.join("file-4343.partial"), b"half").unwrap();
    std::fs::write(files.join("file-4444"), b"young orphan").unwrap();
    for name in [kept.as_str(), "file-4242", "file-4343.partial"] {
        set_mtime(&files.join(name), two_hours_ago);
    }
    app.restart().await;

    let started = std::time::Instant::now();
    while blob_files(&app.data_dir()).contains(&"file-4242".to_string()) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the orphan was not swept: {:?}",
            blob_files(&app.data_dir())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = blob_files(&app.data_dir());
    assert!(left.contains(&kept), "{left:?}");
    assert!(!left.contains(&"file-4343.partial".to_string()), "{left:?}");
    assert!(
        left.contains(&"file-4444".to_string()),
        "a blob younger than the grace period is kept: {left:?}"
    );
    // The kept file still downloads.
    let alice = Client::new(&app.base, &alice.client.token);
    let (_, view) = alice
        .send(
            Method::GET,
            &format!("/v2/rooms/{room}/files/{}", answer["file_id"]),
            &[("create_download_url", "1".into())],
        )
        .await;
    let url = view["download_url"].as_str().unwrap();
    let content = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    assert_eq!(&content[..], b"keep");
}

#[cfg(unix)]
#[tokio::test]
async fn every_file_and_directory_the_server_creates_is_private() {
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    // The operator made the directory, readable by everyone.
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log_path = parent.path().join("server.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Started with the loose umask a shell commonly has.
    let mut child = Command::new("sh")
        .args(["-c", "umask 022; exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_hayabusa"))
        .args(["serve", "--data-dir"])
        .arg(&dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(std::fs::File::create(&log_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    loop {
        if let Ok(response) = reqwest::get(format!("{base}/healthz")).await
            && response.status().is_success()
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no server");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let token = std::fs::read_to_string(dir.join("admin.token")).unwrap();
    let admin = Client::new(&base, token.trim());
    let (status, created) = admin
        .send(Method::POST, "/v2/accounts", &[("name", "Alice".into())])
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let alice = User {
        id: created["account_id"].as_u64().unwrap(),
        my_room: created["room_id"].as_u64().unwrap(),
        client: Client::new(&base, created["token"].as_str().unwrap()),
    };
    let (status, answer) = upload_file(
        &alice,
        alice.my_room,
        "a.txt",
        b"secret".to_vec(),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    alice.post(alice.my_room, "a secret message").await;

    let mut checked = 0;
    let mut pending = vec![dir.clone()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                assert_eq!(mode, 0o700, "{} is {mode:o}", path.display());
                pending.push(path);
            } else {
                assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} entries");
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("WARN") && log.contains("accessible to other users"),
        "no warning about the 0755 data directory in: {log}"
    );
    // The operator's directory keeps its mode.
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755);
}

/// Modes of every entry under `dir` (not `dir` itself): (path, is_dir, mode).
#[cfg(unix)]
fn modes_under(dir: &Path) -> Vec<(std::path::PathBuf, bool, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let is_dir = entry.file_type().unwrap().is_dir();
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            if is_dir {
                pending.push(entry.path());
            }
            found.push((entry.path(), is_dir, mode));
        }
    }
    found
}

/// The library (`hayabusa::start`, as embedders and these tests use it) does not
/// rely on the binary's umask: each file is created with its mode.
#[cfg(unix)]
#[tokio::test]
async fn files_are_created_private_without_the_binary_s_umask() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let (status, answer) =
        upload_file(&alice, alice.my_room, "a.txt", b"x".to_vec(), None, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    alice.post(alice.my_room, "secret").await;
    let found = modes_under(&app.data_dir());
    assert!(found.len() >= 8, "{found:?}");
    for (path, is_dir, mode) in found {
        let wanted = if is_dir { 0o700 } else { 0o600 };
        assert_eq!(mode, wanted, "{} is {mode:o}", path.display());
    }
}
