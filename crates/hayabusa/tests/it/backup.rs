//! `hayabusa backup` while the server takes writes, and `hayabusa restore`: every
//! write acknowledged before the backup began comes back (messages, files, tokens),
//! the restored read models equal incrementally built ones, and a damaged backup or
//! an occupied target is refused without leaving anything behind.

use crate::helpers::*;
use hayabusa::backup::{BackupError, MANIFEST_FILE, Manifest};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the writers had acknowledged: messages (id, body) and files (id, content).
#[derive(Clone, Default)]
struct Acknowledged {
    messages: Vec<(String, String)>,
    files: Vec<(u64, Vec<u8>)>,
}

async fn upload(user: &User, room: u64, name: &str, content: Vec<u8>) -> Option<u64> {
    let form = Form::new().part("file", Part::bytes(content).file_name(name.to_string()));
    let response = user
        .client
        .request(Method::POST, &format!("/v2/rooms/{room}/files"))
        .multipart(form)
        .send()
        .await
        .ok()?;
    let (status, answer) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["file_id"].as_u64()
}

/// Writers that post messages (and now and then a file) into `room` until stopped,
/// recording each write once its 200 has arrived.
struct Load {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Acknowledged>>,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(writers: Vec<User>, room: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
        let writers = writers
            .into_iter()
            .enumerate()
            .map(|(writer, user)| {
                let stop = Arc::clone(&stop);
                let acknowledged = Arc::clone(&acknowledged);
                tokio::spawn(async move {
                    let mut i = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        if writer == 0 && i.is_multiple_of(10) {
                            let content = format!("file {i} of writer {writer}").into_bytes();
                            if let Some(id) =
                                upload(&user, room, &format!("w{i}.txt"), content.clone()).await
                            {
                                acknowledged.lock().unwrap().files.push((id, content));
                            }
                        } else {
                            let body = format!("writer {writer} message {i}");
                            let id = user.post(room, &body).await;
                            acknowledged.lock().unwrap().messages.push((id, body));
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        Load {
            stop,
            acknowledged,
            writers,
        }
    }

    /// Everything acknowledged so far.
    fn acknowledged(&self) -> Acknowledged {
        self.acknowledged.lock().unwrap().clone()
    }

    /// Waits until `more` further writes have been acknowledged.
    async fn wait_for_more(&self, more: usize) {
        let count = |ack: &Acknowledged| ack.messages.len() + ack.files.len();
        let target = count(&self.acknowledged()) + more;
        for _ in 0..1_000 {
            if count(&self.acknowledged()) >= target {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the writers stalled");
    }

    async fn stop(self) -> Acknowledged {
        self.stop.store(true, Ordering::Relaxed);
        let acknowledged = Arc::clone(&self.acknowledged);
        for writer in self.writers {
            writer.await.expect("writer task");
        }
        acknowledged.lock().unwrap().clone()
    }
}

fn clone_user(user: &User) -> User {
    User {
        id: user.id,
        my_room: user.my_room,
        client: user.client.clone(),
    }
}

/// Runs the real binary with `args`; returns (success, stdout, stderr).
async fn cli(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hayabusa"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every file under `dir` is 0600 and every directory 0700.
#[cfg(unix)]
fn assert_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_private(&path);
        } else {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
        }
    }
}

/// Starts a server on `dir` and checks that everything in `expected` is there, read
/// by `reader` (a member of `room`) with its old token.
async fn assert_restored(
    dir: &Path,
    room: u64,
    reader: &User,
    admin_token: &str,
    expected: &Acknowledged,
) {
    let (server, base, admin) = start_in(dir).await;
    assert_eq!(admin.token, admin_token, "admin.token is restored");
    let (status, me) = admin.get("/v2/me").await;
    assert_eq!(status, StatusCode::OK, "the admin token works: {me}");
    let reader_client = Client::new(&base, &reader.client.token);
    let (status, me) = reader_client.get("/v2/me").await;
    assert_eq!(status, StatusCode::OK, "a member's token works: {me}");
    assert_eq!(me["account_id"], reader.id);
    assert!(!expected.messages.is_empty());
    for (id, body) in &expected.messages {
        let (status, message) = reader_client
            .get(&format!("/v2/rooms/{room}/messages/{id}"))
            .await;
        assert_eq!(status, StatusCode::OK, "message {id} ({body}): {message}");
        assert_eq!(message["body"], body.as_str());
    }
    assert!(!expected.files.is_empty());
    for (file, content) in &expected.files {
        let (status, detail) = reader_client
            .send(
                Method::GET,
                &format!("/v2/rooms/{room}/files/{file}"),
                &[("create_download_url", "1".into())],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "file {file}: {detail}");
        let url = detail["download_url"].as_str().expect("a download URL");
        let response = reqwest::get(url).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "file {file} downloads");
        assert_eq!(&response.bytes().await.unwrap()[..], &content[..]);
    }
    server.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_write_load_restores_every_acknowledged_message_file_and_token() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let room = app.room(&alice, &[&bob], &[]).await;
    let load = Load::start(
        vec![clone_user(&alice), clone_user(&bob), clone_user(&alice)],
        room,
    );
    load.wait_for_more(40).await;

    // Through the library, while the writers go on.
    let backups = tempfile::tempdir().unwrap();
    let library_backup = backups.path().join("library");
    let before_library = load.acknowledged();
    let manifest = hayabusa::backup::backup(&app.data_dir(), &library_backup)
        .await
        .expect("backup");
    load.wait_for_more(40).await;

    // Through the real binary, against the live data directory.
    let cli_backup = backups.path().join("cli");
    let before_cli = load.acknowledged();
    let (ok, stdout, stderr) = cli(&[
        "backup".as_ref(),
        "--data-dir".as_ref(),
        app.data_dir().as_os_str(),
        "--to".as_ref(),
        cli_backup.as_os_str(),
    ])
    .await;
    assert!(ok, "hayabusa backup failed: {stderr}");
    assert!(stdout.contains("up to log position"), "{stdout}");
    load.wait_for_more(20).await;
    load.stop().await;
    let after = bob.post(room, "after both backups").await;

    let head = app.server.as_ref().unwrap().state.app.log.head();
    assert!(
        manifest.log_position < head,
        "writes went on after the backup ({} < {head})",
        manifest.log_position
    );
    assert_eq!(manifest.event_count, manifest.log_position);
    assert!(manifest.blobs() >= before_library.files.len());
    #[cfg(unix)]
    {
        assert_private(&library_backup);
        assert_private(&cli_backup);
    }

    let restored = tempfile::tempdir().unwrap();
    let library_restore = restored.path().join("library");
    let restored_manifest = hayabusa::backup::restore(&library_backup, &library_restore)
        .await
        .expect("restore");
    assert_eq!(restored_manifest, manifest);
    let cli_restore = restored.path().join("cli");
    let (ok, stdout, stderr) = cli(&[
        "restore".as_ref(),
        "--from".as_ref(),
        cli_backup.as_os_str(),
        "--data-dir".as_ref(),
        cli_restore.as_os_str(),
    ])
    .await;
    assert!(ok, "hayabusa restore failed: {stderr}");
    assert!(stdout.contains("to log position"), "{stdout}");

    let source = app.stop().await;
    let admin_token = std::fs::read_to_string(source.path().join("admin.token")).unwrap();
    assert_restored(
        &library_restore,
        room,
        &bob,
        admin_token.trim(),
        &before_library,
    )
    .await;
    assert_restored(&cli_restore, room, &bob, admin_token.trim(), &before_cli).await;

    // And a backup is a snapshot: a message posted after both backups is in neither.
    for dir in [&library_restore, &cli_restore] {
        let (server, base, _) = start_in(dir).await;
        let (status, _) = Client::new(&base, &bob.client.token)
            .get(&format!("/v2/rooms/{room}/messages/{after}"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        server.stop().await.unwrap();
    }
}

/// Waits until the app's projector has applied everything in its log.
async fn wait_for_projection(app: &TestApp) {
    let state = app.server.as_ref().unwrap().state.clone();
    let head = state.app.log.head();
    assert!(
        state
            .app
            .writes
            .projection()
            .wait_for(head, Duration::from_secs(10))
            .await
    );
}

async fn dump(dir: &Path) -> String {
    let stores = hayabusa::open_stores(dir, &Default::default())
        .await
        .unwrap();
    stores.read.dump().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_read_models_equal_the_incrementally_built_ones() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let room = app.room(&alice, &[&bob], &[]).await;
    let edited = alice.post(room, &format!("[To:{}] hi", bob.id)).await;
    alice
        .client
        .send(
            Method::PUT,
            &format!("/v2/rooms/{room}/messages/{edited}"),
            &[("body", "edited".into())],
        )
        .await;
    let (status, _) = alice
        .client
        .send(
            Method::POST,
            &format!("/v2/rooms/{room}/tasks"),
            &[
                ("body", "back it up".into()),
                ("to_ids", bob.id.to_string()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    bob.client
        .send(Method::PUT, &format!("/v2/rooms/{room}/messages/read"), &[])
        .await;

    // A backup taken under load…
    let load = Load::start(vec![clone_user(&alice), clone_user(&bob)], room);
    load.wait_for_more(30).await;
    let backups = tempfile::tempdir().unwrap();
    let under_load = backups.path().join("under-load");
    hayabusa::backup::backup(&app.data_dir(), &under_load)
        .await
        .expect("backup under load");
    load.wait_for_more(10).await;
    load.stop().await;

    // …and one of the quiet server, whose read models were built incrementally by
    // its live projector.
    wait_for_projection(&app).await;
    let quiet = backups.path().join("quiet");
    let manifest = hayabusa::backup::backup(&app.data_dir(), &quiet)
        .await
        .expect("quiet backup");
    let source = app.stop().await;
    let incremental = dump(source.path()).await;
    assert!(incremental.contains("back it up") && incremental.contains("edited"));

    let restored = tempfile::tempdir().unwrap();
    let quiet_restore = restored.path().join("quiet");
    hayabusa::backup::restore(&quiet, &quiet_restore)
        .await
        .expect("restore");
    assert_eq!(
        dump(&quiet_restore).await,
        incremental,
        "the restore of the quiet server (position {}) has its read models",
        manifest.log_position
    );

    // The restore of the backup under load, rebuilt, equals what a server's
    // projector builds incrementally from the same log, and `rebuild` again.
    let load_restore = restored.path().join("under-load");
    hayabusa::backup::restore(&under_load, &load_restore)
        .await
        .expect("restore");
    let rebuilt = dump(&load_restore).await;
    let projected = restored.path().join("projected");
    std::fs::create_dir(&projected).unwrap();
    for name in [
        "events.sqlite",
        "secret.key",
        "admin.token",
        ".bootstrapped",
    ] {
        std::fs::copy(load_restore.join(name), projected.join(name)).unwrap();
    }
    copy_dir(&load_restore.join("files"), &projected.join("files"));
    let (server, _, _) = start_in(&projected).await;
    let state = server.state.clone();
    assert!(
        state
            .app
            .writes
            .projection()
            .wait_for(state.app.log.head(), Duration::from_secs(10))
            .await
    );
    server.stop().await.unwrap();
    assert_eq!(dump(&projected).await, rebuilt);
    hayabusa::rebuild(&load_restore, &Default::default())
        .await
        .unwrap();
    assert_eq!(dump(&load_restore).await, rebuilt);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A copy of `backup` damaged by `damage`, restored into a new directory: refused,
/// and the target is gone again.
async fn restore_damaged(
    backup: &Path,
    scratch: &Path,
    case: &str,
    damage: impl FnOnce(&Path),
) -> BackupError {
    let copy = scratch.join(format!("{case}-backup"));
    copy_dir(backup, &copy);
    damage(&copy);
    let target = scratch.join(format!("{case}-restore"));
    let error = hayabusa::backup::restore(&copy, &target)
        .await
        .expect_err(case);
    assert!(!target.exists(), "{case}: the target is removed again");
    error
}

fn rewrite_manifest(backup: &Path, change: impl FnOnce(&mut Manifest)) {
    let path = backup.join(MANIFEST_FILE);
    let mut manifest: Manifest = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    change(&mut manifest);
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
}

fn blob_path(backup: &Path) -> PathBuf {
    let files = backup.join("files");
    files.join(&entries(&files)[0])
}

#[tokio::test]
async fn restore_refuses_a_damaged_or_unfinished_backup_and_an_occupied_target() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let room = app.room(&alice, &[], &[]).await;
    alice.post(room, "precious").await;
    upload(&alice, room, "a.txt", b"precious file".to_vec())
        .await
        .expect("uploaded");
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("backup");
    hayabusa::backup::backup(&app.data_dir(), &backup)
        .await
        .expect("backup");
    app.stop().await;

    let error = restore_damaged(&backup, scratch.path(), "flipped", |copy| {
        let path = copy.join("events.sqlite");
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x55;
        std::fs::write(&path, bytes).unwrap();
    })
    .await;
    assert!(
        matches!(&error, BackupError::Damaged { file, .. } if file == "events.sqlite"),
        "{error}"
    );
    let error = restore_damaged(&backup, scratch.path(), "truncated-log", |copy| {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(copy.join("events.sqlite"))
            .unwrap();
        file.set_len(file.metadata().unwrap().len() / 2).unwrap();
    })
    .await;
    assert!(
        matches!(&error, BackupError::Damaged { file, .. } if file == "events.sqlite"),
        "{error}"
    );
    let error = restore_damaged(&backup, scratch.path(), "truncated-blob", |copy| {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(blob_path(copy))
            .unwrap();
        file.set_len(3).unwrap();
    })
    .await;
    assert!(
        matches!(&error, BackupError::Damaged { file, .. } if file.starts_with("files/")),
        "{error}"
    );
    let error = restore_damaged(&backup, scratch.path(), "missing-blob", |copy| {
        let blob = blob_path(copy);
        std::fs::remove_file(&blob).unwrap();
    })
    .await;
    assert!(matches!(&error, BackupError::Damaged { .. }), "{error}");
    // A blob dropped from the manifest as well: the log still refers to it.
    let error = restore_damaged(&backup, scratch.path(), "unlisted-blob", |copy| {
        rewrite_manifest(copy, |manifest| {
            manifest
                .files
                .retain(|file| !file.path.starts_with("files/"));
        });
    })
    .await;
    assert!(
        matches!(&error, BackupError::Damaged { reason, .. } if reason.contains("lacks")),
        "{error}"
    );
    let error = restore_damaged(&backup, scratch.path(), "wrong-count", |copy| {
        rewrite_manifest(copy, |manifest| manifest.event_count += 1);
    })
    .await;
    assert!(
        matches!(&error, BackupError::Damaged { reason, .. } if reason.contains("manifest records")),
        "{error}"
    );
    let error = restore_damaged(&backup, scratch.path(), "unfinished", |copy| {
        std::fs::remove_file(copy.join(MANIFEST_FILE)).unwrap();
    })
    .await;
    assert!(matches!(&error, BackupError::Invalid { .. }), "{error}");
    let error = restore_damaged(&backup, scratch.path(), "escape", |copy| {
        rewrite_manifest(copy, |manifest| manifest.files[0].path = "../escape".into());
    })
    .await;
    assert!(matches!(&error, BackupError::Invalid { .. }), "{error}");
    assert!(!scratch.path().join("escape").exists());

    // An occupied target is left exactly as it was.
    let occupied = scratch.path().join("occupied");
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("keep.txt"), "mine").unwrap();
    let error = hayabusa::backup::restore(&backup, &occupied)
        .await
        .expect_err("occupied target");
    assert!(matches!(&error, BackupError::TargetNotEmpty(_)), "{error}");
    assert_eq!(entries(&occupied), vec!["keep.txt".to_owned()]);
    assert_eq!(
        std::fs::read_to_string(occupied.join("keep.txt")).unwrap(),
        "mine"
    );
    // The same through the binary: a clear message and a failing exit status.
    let (ok, _, stderr) = cli(&[
        "restore".as_ref(),
        "--from".as_ref(),
        backup.as_os_str(),
        "--data-dir".as_ref(),
        occupied.as_os_str(),
    ])
    .await;
    assert!(!ok);
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert_eq!(entries(&occupied), vec!["keep.txt".to_owned()]);
    // A backup is not written over another one either.
    let error = hayabusa::backup::backup(&scratch.path().join("flipped-backup"), &backup)
        .await
        .expect_err("occupied backup target");
    assert!(matches!(&error, BackupError::TargetNotEmpty(_)), "{error}");

    // The undamaged backup restores into an existing empty directory.
    let empty = scratch.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let manifest = hayabusa::backup::restore(&backup, &empty)
        .await
        .expect("restore");
    assert_eq!(manifest.blobs(), 1);
    assert!(dump(&empty).await.contains("precious"));
}
