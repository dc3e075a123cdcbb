//! Images: inspecting, building (with the build context packed as a tar),
//! pulling and loading them from archives.

use std::collections::HashMap;
use std::path::Path;

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{BuildImageOptionsBuilder, CreateImageOptionsBuilder};
use futures_util::StreamExt;

use super::*;
use crate::error::{Error, Result};
use crate::stack::Service;

impl DockerEngine {
    /// A local image's ID and registry digests in one request, or `None`
    /// when the engine does not have it.
    pub async fn image_facts(&self, reference: &str) -> Result<Option<(String, Vec<String>)>> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => Ok(image.id.map(|id| (id, image.repo_digests.unwrap_or_default()))),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.fail(&format!("inspect image {reference}"), e)),
        }
    }

    /// The ID of a local image, or `None` when the engine does not have it.
    pub async fn image_id(&self, reference: &str) -> Result<Option<String>> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => Ok(image.id),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.fail(&format!("inspect image {reference}"), e)),
        }
    }

    /// Builds a service's image from its build context, reporting each line
    /// of build output to `progress`. Fails with the builder's own message.
    pub async fn build(&self, service: &str, svc: &Service, progress: &mut (dyn FnMut(&str) + Send)) -> Result<String> {
        let Some(build) = &svc.build else {
            return Err(Error::Engine(format!("service `{service}` has no build section")));
        };
        let context = tar_context(&build.context).map_err(|e| {
            Error::Descriptor(format!(
                "service `{service}`: cannot read build context {}: {e}",
                build.context.display()
            ))
        })?;
        let args: HashMap<&str, &str> = build.args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut options = BuildImageOptionsBuilder::default()
            .dockerfile(&build.dockerfile)
            .t(&svc.image)
            .rm(true)
            .forcerm(true)
            .buildargs(&args);
        if let Some(target) = &build.target {
            options = options.target(target);
        }
        if !build.cache_from.is_empty() {
            options = options.cachefrom(&build.cache_from);
        }
        if let Some(platform) = &svc.platform {
            options = options.platform(platform);
        }
        let body = bollard::body_full(context.into());
        let mut stream = self.docker.build_image(options.build(), None, Some(body));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| self.fail(&format!("build image for service `{service}`"), e))?;
            if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                return Err(Error::Descriptor(format!("service `{service}`: image build failed: {detail}")));
            }
            if let Some(line) = info.stream {
                let line = line.trim_end();
                if !line.is_empty() {
                    progress(line);
                }
            }
        }
        self.image_id(&svc.image).await?.ok_or_else(|| {
            Error::Engine(format!("service `{service}`: the build finished but image `{}` is not there", svc.image))
        })
    }

    /// Pulls an image from its registry, reporting progress lines. Fails
    /// with a message that says plainly when no registry is reachable.
    pub async fn pull(&self, reference: &str, progress: &mut (dyn FnMut(&str) + Send)) -> Result<String> {
        self.pull_for(reference, None, progress).await
    }

    /// [`Self::pull`] for a service's `platform` (`linux/amd64`), when it names one.
    pub async fn pull_for(
        &self,
        reference: &str,
        platform: Option<&str>,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String> {
        let (name, tag) = split_reference(reference);
        let mut options = CreateImageOptionsBuilder::default().from_image(&name).tag(&tag);
        if let Some(platform) = platform {
            options = options.platform(platform);
        }
        let options = options.build();
        let mut stream = self.docker.create_image(Some(options), None, None);
        let mut last = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(status) = info.status {
                        if status != last {
                            progress(&format!("{reference}: {status}"));
                            last = status;
                        }
                    }
                }
                Err(e) => {
                    return Err(Error::Unreachable(format!(
                        "image `{reference}` is not present on the engine and could not be pulled: {e}. \
                         If this engine cannot reach a registry, build or load the image there first \
                         (`docker load -i image.tar`)"
                    )))
                }
            }
        }
        self.image_id(reference).await?.ok_or_else(|| {
            Error::Unreachable(format!("image `{reference}` was pulled but the engine does not list it"))
        })
    }

    /// Loads a `docker save` archive into the engine, streaming the file.
    pub async fn load_archive(&self, path: &Path) -> Result<()> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::Usage(format!("image archive {}: cannot open: {e}", path.display())))?;
        let chunks = futures_util::stream::unfold(file, |mut file| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 1 << 20];
            match file.read(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((bytes::Bytes::from(buf), file))
                }
            }
        });
        let options = bollard::query_parameters::ImportImageOptionsBuilder::default().quiet(true).build();
        let mut stream = self.docker.import_image(options, bollard::body_stream(chunks), None);
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| self.fail(&format!("load image archive {}", path.display()), e))?;
            if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                return Err(Error::Engine(format!(
                    "image archive {}: the engine refused it: {detail}",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// The repository digests of a local image (`name@sha256:…`), empty for
    /// images that were built here and never pushed.
    pub async fn repo_digests(&self, reference: &str) -> Vec<String> {
        self.docker.inspect_image(reference).await.ok().and_then(|i| i.repo_digests).unwrap_or_default()
    }
}

/// Packs a build context folder into a tar archive, honouring
/// `.dockerignore` patterns of the simple kind (exact paths and `*` globs
/// at the top level). Symbolic links are stored as links, as Docker does.
fn tar_context(dir: &Path) -> std::io::Result<Vec<u8>> {
    let ignore: Vec<String> = std::fs::read_to_string(dir.join(".dockerignore"))
        .map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    add_dir(&mut builder, dir, Path::new(""), &ignore)?;
    builder.into_inner()
}

fn add_dir(builder: &mut tar::Builder<Vec<u8>>, root: &Path, rel: &Path, ignore: &[String]) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = rel.join(entry.file_name());
        let text = path.to_string_lossy();
        if ignore.iter().any(|p| glob_match(p, &text)) {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            builder.append_dir(&path, entry.path())?;
            add_dir(builder, root, &path, ignore)?;
        } else {
            builder.append_path_with_name(entry.path(), &path)?;
        }
    }
    Ok(())
}

/// Splits `registry/name:tag` (or `name@sha256:...`) into the name and
/// the tag or digest the pull API wants; no tag means `latest`.
fn split_reference(reference: &str) -> (String, String) {
    if let Some((name, digest)) = reference.split_once('@') {
        return (name.to_string(), digest.to_string());
    }
    match reference.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_string(), tag.to_string()),
        _ => (reference.to_string(), "latest".to_string()),
    }
}

/// `*` matches any run of characters except `/`; everything else literally.
fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') => (0..=t.len()).take_while(|&i| i == 0 || t[i - 1] != b'/').any(|i| go(&p[1..], &t[i..])),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_like_docker_pull() {
        assert_eq!(split_reference("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(split_reference("reg:5000/app:1.2"), ("reg:5000/app".into(), "1.2".into()));
        assert_eq!(split_reference("reg:5000/app"), ("reg:5000/app".into(), "latest".into()));
        assert_eq!(split_reference("app@sha256:ab"), ("app".into(), "sha256:ab".into()));
    }

    #[test]
    fn dockerignore_globs() {
        assert!(glob_match("*.log", "build.log"));
        assert!(!glob_match("*.log", "dir/build.log"));
        assert!(glob_match("target", "target"));
        assert!(!glob_match("target", "targets"));
    }

    #[test]
    fn build_context_skips_ignored_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join("secret.log"), "x").unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "*.log\n").unwrap();
        let bytes = tar_context(dir.path()).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let names: Vec<String> =
            archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect();
        assert!(names.contains(&"Dockerfile".to_string()));
        assert!(!names.iter().any(|n| n.ends_with(".log")), "{names:?}");
    }
}
