//! Staging: making a task's input files available where it runs.
//!
//! An input given as a URI with a scheme is handed to the first [`Stager`] that handles
//! it; the stager may return a *transfer task* that writes the file to a local path. The
//! DFK submits that task first and the consumer depends on it through the file, so
//! transfers are ordinary tasks in the graph (they run on workers, retry, checkpoint).
//! Plain paths and `file://` need nothing on a shared filesystem. Remote schemes (Globus,
//! S3, ...) are new implementations of the trait.

use super::graph::Call;
use std::path::{Path, PathBuf};

/// Moves files of some URI schemes into place before the tasks that read them.
pub trait Stager: Send + Sync {
    /// Whether this stager handles `uri`.
    fn handles(&self, uri: &str) -> bool;
    /// The local path `uri` will be read from, inside `staging_dir`.
    fn local_path(&self, uri: &str, staging_dir: &Path) -> PathBuf;
    /// A task that puts `uri` at `local` (declaring `local` as its output), or `None` if nothing needs doing.
    fn stage_in(&self, uri: &str, local: &Path) -> Option<Call>;
}

/// Plain paths and `file://` URIs on a filesystem the workers share: nothing to transfer.
pub struct LocalStager;

impl Stager for LocalStager {
    fn handles(&self, uri: &str) -> bool {
        !uri.contains("://") || uri.starts_with("file://")
    }
    fn local_path(&self, uri: &str, _staging_dir: &Path) -> PathBuf {
        PathBuf::from(uri.strip_prefix("file://").unwrap_or(uri))
    }
    fn stage_in(&self, _uri: &str, _local: &Path) -> Option<Call> {
        None
    }
}

/// `http://` and `https://`: a transfer task running `curl` on a worker.
pub struct HttpStager;

impl Stager for HttpStager {
    fn handles(&self, uri: &str) -> bool {
        uri.starts_with("http://") || uri.starts_with("https://")
    }
    fn local_path(&self, uri: &str, staging_dir: &Path) -> PathBuf {
        // A hash keeps two URLs with the same file name apart.
        let name = uri.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("download");
        let tag = &blake3::hash(uri.as_bytes()).to_hex()[..12];
        staging_dir.join(format!("{tag}-{name}"))
    }
    fn stage_in(&self, uri: &str, local: &Path) -> Option<Call> {
        let local = local.display().to_string();
        Some(
            Call::argv([
                "curl",
                "--fail",
                "--silent",
                "--show-error",
                "--location",
                "--create-dirs",
                "-o",
                &local,
                uri,
            ])
            .output_file(local)
            .named(format!("stage-in {uri}"))
            .retries(2),
        )
    }
}

/// The stagers a DFK uses unless told otherwise: local paths, then HTTP(S).
pub fn default_stagers() -> Vec<std::sync::Arc<dyn Stager>> {
    vec![std::sync::Arc::new(LocalStager), std::sync::Arc::new(HttpStager)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_http() {
        assert!(LocalStager.handles("data/x.csv") && LocalStager.handles("file:///d/x.csv"));
        assert!(!LocalStager.handles("https://example.org/x.csv"));
        assert_eq!(LocalStager.local_path("file:///d/x.csv", Path::new("s")), PathBuf::from("/d/x.csv"));
        assert!(LocalStager.stage_in("x", Path::new("x")).is_none());
        let p = HttpStager.local_path("https://example.org/a/x.csv", Path::new("/stage"));
        assert!(p.starts_with("/stage") && p.to_string_lossy().ends_with("-x.csv"));
        let t = HttpStager.stage_in("https://example.org/a/x.csv", &p).expect("transfer task");
        assert_eq!(t.output_files, vec![p.display().to_string()]);
    }
}
