//! Image archives for air-gapped engines: `docker save` files in a folder.
//!
//! Sites whose engines reach no registry ship images as archives. When a
//! deploy needs an image the engine lacks and cannot build, dockmaster looks
//! for an archive whose `manifest.json` lists the image's tag and loads it,
//! and the report says so.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Finds the archive in `dir` that holds `reference` (`name[:tag]`; no tag
/// means `latest`). Archives are `*.tar`, `*.tar.gz` and `*.tgz` as written
/// by `docker save`; unreadable files are skipped.
pub fn find(dir: &Path, reference: &str) -> Option<PathBuf> {
    let wanted = normalise(reference);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    files.into_iter().find(|path| {
        let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        let tags = if name.ends_with(".tar") {
            std::fs::File::open(path).ok().map(repo_tags)
        } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            std::fs::File::open(path).ok().map(|f| repo_tags(flate2::read::GzDecoder::new(f)))
        } else {
            None
        };
        tags.unwrap_or_default().iter().any(|t| normalise(t) == wanted)
    })
}

/// The `RepoTags` of every image in a `docker save` archive.
fn repo_tags(reader: impl Read) -> Vec<String> {
    let mut archive = tar::Archive::new(reader);
    let Ok(entries) = archive.entries() else { return vec![] };
    for entry in entries.flatten() {
        let is_manifest = entry.path().map(|p| p.as_os_str() == "manifest.json").unwrap_or(false);
        if !is_manifest {
            continue;
        }
        // Bounded read: a manifest is small; a huge one is not a manifest.
        let mut text = String::new();
        if entry.take(1 << 20).read_to_string(&mut text).is_err() {
            return vec![];
        }
        let Ok(manifest) = serde_json::from_str::<serde_json::Value>(&text) else { return vec![] };
        return manifest
            .as_array()
            .map(|images| {
                images
                    .iter()
                    .flat_map(|i| i["RepoTags"].as_array().cloned().unwrap_or_default())
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
    }
    vec![]
}

/// `busybox` → `busybox:latest`; `docker.io/library/x:1` → `x:1`.
fn normalise(reference: &str) -> String {
    let r = reference.strip_prefix("docker.io/").unwrap_or(reference);
    let r = r.strip_prefix("library/").unwrap_or(r);
    let last = r.rsplit('/').next().unwrap_or(r);
    if last.contains(':') || last.contains('@') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(path: &Path, tags: &[&str], gzip: bool) {
        let manifest = serde_json::json!([{"Config": "c.json", "RepoTags": tags, "Layers": []}]).to_string();
        let mut data = Vec::new();
        {
            let mut b = tar::Builder::new(&mut data);
            let mut header = tar::Header::new_gnu();
            header.set_size(manifest.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            b.append_data(&mut header, "manifest.json", manifest.as_bytes()).unwrap();
            b.finish().unwrap();
        }
        if gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut enc, &data).unwrap();
            data = enc.finish().unwrap();
        }
        std::fs::write(path, data).unwrap();
    }

    #[test]
    fn finds_the_archive_holding_a_tag_plain_or_gzipped() {
        let dir = tempfile::tempdir().unwrap();
        archive(&dir.path().join("a.tar"), &["app:1"], false);
        archive(&dir.path().join("b.tar.gz"), &["registry.local/db:2", "busybox:latest"], true);
        std::fs::write(dir.path().join("junk.tar"), b"not a tar").unwrap();
        assert_eq!(find(dir.path(), "app:1"), Some(dir.path().join("a.tar")));
        assert_eq!(find(dir.path(), "registry.local/db:2"), Some(dir.path().join("b.tar.gz")));
        assert_eq!(find(dir.path(), "docker.io/library/busybox"), Some(dir.path().join("b.tar.gz")));
        assert_eq!(find(dir.path(), "app:2"), None);
        assert_eq!(find(&dir.path().join("missing"), "app:1"), None);
    }
}
