//! Signed bundles, in the minisign format (Ed25519), so keys and signatures also work
//! with the `minisign` tool.
//!
//! The signature covers `manifest.json`, which holds the SHA-256 of every artifact, and
//! is kept beside it as `manifest.json.minisig`. A launch with `--verify-key` checks it
//! before it reads anything else of the bundle: a manifest whose hashes were recomputed
//! after an edit (red team L9) no longer passes.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use minisign::{KeyPair, PublicKey, PublicKeyBox, SecretKeyBox, SignatureBox};

/// The signature's name in a bundle.
pub const SIGNATURE: &str = "manifest.json.minisig";

/// The environment variable holding the password of an encrypted secret key (without
/// it, the password is asked for on the terminal).
pub const PASSWORD_ENV: &str = "KAKOI_SIGN_PASSWORD";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("the bundle is not signed (no {SIGNATURE})")]
    Unsigned,
    #[error("the bundle's signature does not verify with `{key}`: {message}")]
    Bad { key: PathBuf, message: String },
    #[error("{0}")]
    Io(String),
}

impl Error {
    pub fn hint(&self) -> &'static str {
        match self {
            Error::Key { .. } => "make a key pair with `kakoi keygen -o KEY` (or `minisign -G`)",
            Error::Unsigned => "compile it with `kakoi compile --sign KEY`",
            Error::Bad { .. } => {
                "the bundle was changed after it was signed, or signed with another key"
            }
            Error::Io(_) => "check the path and its permissions",
        }
    }
}

fn key_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Key {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// A new key pair: the secret key (unencrypted, mode 0600) at `secret`, the public key
/// at `secret` + `.pub`. Neither file may exist already.
pub fn keygen(secret: &Path) -> Result<PathBuf, Error> {
    let public = public_path(secret);
    for p in [secret, public.as_path()] {
        if p.exists() {
            return Err(key_err(p, "exists already; kakoi does not overwrite a key"));
        }
    }
    let kp = KeyPair::generate_unencrypted_keypair().map_err(|e| key_err(secret, e))?;
    let sk = kp
        .sk
        .to_box(Some("kakoi secret key"))
        .map_err(|e| key_err(secret, e))?
        .into_string();
    let pk = kp
        .pk
        .to_box()
        .map_err(|e| key_err(&public, e))?
        .into_string();
    write_new(secret, sk.as_bytes(), 0o600)?;
    write_new(&public, pk.as_bytes(), 0o644)?;
    Ok(public)
}

/// Where `keygen` puts the public key of `secret`.
pub fn public_path(secret: &Path) -> PathBuf {
    let mut s = secret.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| key_err(path, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| key_err(path, e))
}

/// The signature of `manifest` with the secret key at `secret`, as the text of a
/// `.minisig` file. The trusted comment names the policy's source hash.
pub fn sign(secret: &Path, manifest: &[u8], trusted_comment: &str) -> Result<Vec<u8>, Error> {
    let text = crate::input::read_text(secret, 64 * 1024).map_err(|e| key_err(secret, e))?;
    let sk_box = SecretKeyBox::from_string(&text).map_err(|e| key_err(secret, e))?;
    let sk = match sk_box.clone().into_unencrypted_secret_key() {
        Ok(sk) => sk,
        Err(_) => sk_box
            .into_secret_key(std::env::var(PASSWORD_ENV).ok())
            .map_err(|e| key_err(secret, e))?,
    };
    let sig = minisign::sign(
        None,
        &sk,
        Cursor::new(manifest),
        Some(trusted_comment),
        Some("kakoi bundle signature"),
    )
    .map_err(|e| key_err(secret, e))?;
    Ok(sig.into_string().into_bytes())
}

/// Read a public key: a minisign `.pub` file, or its base64 line alone.
pub fn public_key(path: &Path) -> Result<PublicKey, Error> {
    let text = crate::input::read_text(path, 64 * 1024).map_err(|e| key_err(path, e))?;
    match PublicKeyBox::from_string(&text).and_then(|b| b.into_public_key()) {
        Ok(pk) => Ok(pk),
        Err(_) => PublicKey::from_base64(text.trim()).map_err(|e| key_err(path, e)),
    }
}

/// Check the signature `sig` (the `.minisig` text, or `None` when the bundle has none) of
/// `manifest` with the public key at `key`.
pub fn verify(key: &Path, manifest: &[u8], sig: Option<&[u8]>) -> Result<(), Error> {
    let pk = public_key(key)?;
    let sig = sig.ok_or(Error::Unsigned)?;
    let bad = |message: String| Error::Bad {
        key: key.to_path_buf(),
        message,
    };
    let text = std::str::from_utf8(sig).map_err(|e| bad(e.to_string()))?;
    let sig = SignatureBox::from_string(text).map_err(|e| bad(e.to_string()))?;
    minisign::verify(&pk, &sig, Cursor::new(manifest), true, false, false)
        .map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_its_own_manifest_and_key() {
        let d = tempfile::tempdir().unwrap();
        let k = d.path().join("k");
        let pubk = keygen(&k).unwrap();
        assert!(keygen(&k).is_err(), "an existing key is not overwritten");
        let other = d.path().join("other");
        let other_pub = keygen(&other).unwrap();
        let m = br#"{"format":1}"#;
        let sig = sign(&k, m, "test").unwrap();
        verify(&pubk, m, Some(&sig)).unwrap();
        assert!(matches!(
            verify(&pubk, br#"{"format":2}"#, Some(&sig)),
            Err(Error::Bad { .. })
        ));
        assert!(matches!(
            verify(&other_pub, m, Some(&sig)),
            Err(Error::Bad { .. })
        ));
        assert!(matches!(verify(&pubk, m, None), Err(Error::Unsigned)));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&k).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
