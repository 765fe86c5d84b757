//! The data directory: its files and how they are created safely.

use anyhow::Context;
use hayabusa_app::TokenSecret;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The event log (SQLite).
pub const EVENTS_FILE: &str = "events.sqlite";
/// The read models (SQLite; rebuildable from the log).
pub const READ_MODELS_FILE: &str = "read-models.sqlite";
/// Uploaded file contents, one file per blob under a generated name.
pub const BLOBS_DIR: &str = "files";
/// The secret API tokens are derived from.
pub const SECRET_FILE: &str = "secret.key";
/// The bootstrap administrator's token.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// Present once the administrator has been created.
pub const BOOTSTRAPPED_MARKER: &str = ".bootstrapped";

/// Creates the directory (mode 0700) if needed and returns its absolute path.
pub fn prepare(dir: &Path) -> anyhow::Result<PathBuf> {
    if !dir.exists() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        set_mode(dir, 0o700)?;
    }
    dir.canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))
}

/// Writes a file readable only by its owner, atomically (temp file, fsync, rename).
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file =
            fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        set_mode(&tmp, 0o600)?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    if let Some(parent) = path.parent() {
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Loads the token secret, creating it on first start.
pub fn load_or_create_secret(dir: &Path) -> anyhow::Result<TokenSecret> {
    let path = dir.join(SECRET_FILE);
    match fs::read(&path) {
        Ok(bytes) if bytes.len() >= 32 => Ok(TokenSecret::new(bytes)),
        Ok(_) => anyhow::bail!("{} is too short to be a secret", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = TokenSecret::generate();
            write_private(&path, secret.as_bytes())?;
            Ok(secret)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(unix)]
pub(crate) fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

#[cfg(not(unix))]
pub(crate) fn set_mode(_: &Path, _: u32) -> anyhow::Result<()> {
    Ok(())
}
