//! Start-up warnings about settings that work but are unsafe.

use super::Config;

/// Shortest `JWT_SECRET` not warned about: HS256 keys shorter than the hash
/// can be found offline from any one token.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// Shortest `WORKER_KEY` not warned about.
pub const MIN_WORKER_KEY_BYTES: usize = 16;

impl Config {
    /// Start-up warnings about settings that work but are unsafe, each
    /// naming its variable.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        match &self.jwt {
            None => warnings.push(
                "JWT_SECRET is not set: the server is open; anyone can connect, join any room as any userId, and list rooms"
                    .to_owned(),
            ),
            Some(jwt) if jwt.secret.0.len() < MIN_JWT_SECRET_BYTES => warnings.push(format!(
                "JWT_SECRET is {} bytes, under {MIN_JWT_SECRET_BYTES}: an HS256 key that short can be found offline from any token",
                jwt.secret.0.len()
            )),
            Some(_) => {}
        }
        if self.jwt.is_some() && self.mesh.open_with_jwt {
            warnings.push(
                "MESH_OPEN_WITH_JWT=true: on /mesh a token without organizationId and capabilities claims joins any organization with any capabilities, admin.main included"
                    .to_owned(),
            );
        }
        if let Some(key) = self.workers.key.as_ref().filter(|k| k.0.len() < MIN_WORKER_KEY_BYTES) {
            warnings.push(format!(
                "WORKER_KEY is {} bytes, under {MIN_WORKER_KEY_BYTES}: a key that short can be guessed",
                key.0.len()
            ));
        }
        warnings
    }
}
