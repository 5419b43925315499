//! The desktop's password, handed to the holder of the display lock (issue 12): `display open`
//! reads it, after the take succeeded, from the Workspace's own secret (`status.secretArn`) with
//! the user's own AWS credentials (`secretsmanager:GetSecretValue` on that ARN), and writes it to
//! a file only the user can read (0600, in a 0700 directory), never to argv or the terminal. The
//! file is removed when the lock is released.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;

use crate::error::{Error, one_line};

/// The display password in a Workspace secret's JSON (`displayPassword`).
pub fn from_secret(json: &str) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("the secret is not JSON: {e}"))?;
    v["displayPassword"]
        .as_str()
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "the secret has no displayPassword".to_owned())
}

/// Reads the display password of the Workspace secret `arn` with the user's AWS credentials.
pub async fn fetch(arn: &str, region: Option<&str>, object: &str) -> Result<String, Error> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_owned()));
    }
    let sm = aws_sdk_secretsmanager::Client::new(&loader.load().await);
    let fail = |message: String| Error::Call {
        action: "read the display password of".into(),
        object: format!("workspace {object} (secret {arn})"),
        message,
    };
    let out = sm.get_secret_value().secret_id(arn).send().await.map_err(|e| {
        let code = e.code().unwrap_or("error").to_owned();
        let msg = e.message().map_or_else(|| one_line(&format!("{e}")), one_line);
        fail(format!("{code}: {msg}"))
    })?;
    from_secret(out.secret_string().unwrap_or_default()).map_err(fail)
}

/// Where the password file of `ns/name` goes: `$XDG_RUNTIME_DIR/kubectl-molecule` (a per-user
/// tmpfs) when set, else the temp directory.
pub fn dir() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR").map_or_else(std::env::temp_dir, PathBuf::from).join("kubectl-molecule")
}

/// Writes `password` to `<dir>/<ns>.<name>.display-password`, mode 0600 (the directory 0700), and
/// returns the path. An existing file is replaced.
pub fn write(dir: &Path, ns: &str, name: &str, password: &str) -> Result<PathBuf, Error> {
    let fail = |e: std::io::Error, p: &Path| Error::Call {
        action: "write the display password to".into(),
        object: p.display().to_string(),
        message: e.to_string(),
    };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| fail(e, dir))?;
    let path = dir.join(format!("{ns}.{name}.display-password"));
    let _ = std::fs::remove_file(&path);
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(|e| fail(e, &path))?;
    f.write_all(password.as_bytes()).map_err(|e| fail(e, &path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn the_password_is_read_from_the_workspace_secret_only() {
        let s = r#"{"workspace":"a/x","uid":"u","tenant":"acme","token":"t0k","displayPassword":"pw-123"}"#;
        assert_eq!(from_secret(s).unwrap(), "pw-123");
        assert!(from_secret(r#"{"adminToken":"x"}"#).unwrap_err().contains("no displayPassword"));
        assert!(from_secret("not json").is_err());
    }

    #[test]
    fn the_password_file_is_the_users_alone() {
        let dir = std::env::temp_dir().join(format!("molecule-pw-test-{}", std::process::id()));
        let p = write(&dir, "demo", "desk", "pw-123").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "pw-123");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        // Written again (a second open): replaced, still 0600.
        let p2 = write(&dir, "demo", "desk", "pw-456").unwrap();
        assert_eq!((p2.clone(), std::fs::read_to_string(&p2).unwrap()), (p, "pw-456".to_owned()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
