//! What a load may read besides the descriptor itself (included,
//! extended and override files, `.env`/`--env-file`, `env_file`s and
//! `label_file`s): the [`Access`] in force and the words of a refusal
//! ([`Denied`]). The reading itself, and the record of what was read for
//! the descriptor's digest, is [`super::source::Source`]'s, one per load.
//!
//! Secret and config files are neither read nor recorded: they are mounted,
//! and rotating one is not a change to approve.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::fault::{Parsed, Place};

/// Which files a load may read besides the main descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Access {
    /// Any file the process can read (a load from disk without `confine`).
    Open,
    /// Only files that, with symlinks resolved, lie under one of these
    /// folders. Each root is kept twice: as given (absolute, clean) and
    /// canonical.
    Under(Vec<Root>),
    /// None at all: the descriptor came from memory (the registry).
    Nothing,
}

/// One folder files may be read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Root {
    /// As given, absolute and without `.`/`..`.
    pub(crate) given: PathBuf,
    /// With symlinks resolved (the given one when it cannot be resolved).
    pub(crate) canonical: PathBuf,
}

impl Access {
    /// Only files under `roots`.
    pub(crate) fn under(roots: &[PathBuf]) -> Access {
        let roots = roots
            .iter()
            .map(|root| {
                let given = super::mounts::clean(&std::path::absolute(root).unwrap_or_else(|_| root.clone()));
                let canonical = resolve(&given);
                Root { given, canonical }
            })
            .collect();
        Access::Under(roots)
    }
}

/// Why a file may not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Denied {
    /// It lies outside every allowed folder.
    Outside {
        /// Where it resolves to, when the path as written looks inside an
        /// allowed folder (a symlink leads out); `None` otherwise, so the
        /// message says nothing about what is on disk outside.
        resolved: Option<PathBuf>,
        /// The allowed folders, as given.
        roots: Vec<PathBuf>,
    },
    /// This load reads no file at all.
    NoFiles,
}

impl Denied {
    /// The refusal, for `key` (`env_file`, `extends.file`, ...) written as
    /// `written`, with what to do about it. Nothing in it comes from disk.
    pub(crate) fn explain(&self, key: &str, written: &str) -> String {
        match self {
            Denied::Outside { resolved, roots } => {
                let roots: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
                let via = match resolved {
                    Some(real) => format!(" (following symlinks it is {})", real.display()),
                    None => String::new(),
                };
                format!(
                    "{key} {written:?}{via} is outside the folder{} this descriptor may read files from ({}): \
                     move the file into the application's folder (and refer to it with a path inside it, \
                     not through `..` or a symlink), or ask an administrator for a policy root that covers it",
                    if roots.len() == 1 { "" } else { "s" },
                    roots.join(", ")
                )
            }
            Denied::NoFiles => format!(
                "{key} {written:?}: this descriptor is loaded from memory and may not read files; \
                 write the values into the descriptor instead"
            ),
        }
    }
}

/// Why a read failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The load's [`Access`] refuses it (nothing was touched).
    Denied(Denied),
    /// The file system refused it.
    Io(std::io::Error),
}

/// `path` with symlinks resolved; for a path that does not exist, its
/// nearest existing ancestor resolved and the rest appended (cleaned).
pub(crate) fn resolve(path: &Path) -> PathBuf {
    let path = super::mounts::clean(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
    let mut tail = Vec::new();
    let mut current = path.as_path();
    loop {
        if let Ok(real) = std::fs::canonicalize(current) {
            let mut out = real;
            out.extend(tail.iter().rev());
            return super::mounts::clean(&out);
        }
        match (current.parent(), current.file_name()) {
            (Some(parent), Some(name)) => {
                tail.push(name.to_os_string());
                current = parent;
            }
            _ => return path,
        }
    }
}

/// Refuses a tree (one file, in the Specification's shape) with a key that
/// would read a file on this host: `include`, and a service's `env_file`,
/// `extends` with `file`, `build` or `label_file`, and a secret or config
/// with `file`. For a descriptor loaded from memory, before anything is
/// read; the words name the key only, never its value.
pub(crate) fn refuse_file_keys(tree: &Value) -> Parsed<()> {
    let root = Place::root();
    let refuse = |at: &Place, key: &str, what: &str| {
        at.fault_at_key(
            key,
            format!(
                "{what} would read a file on the server, which a descriptor sent as text may not do \
                 (`env_file`, `extends` with `file`, `include`, `build`, `label_file`, and secrets or \
                 configs with `file` are refused); put the values in the descriptor itself \
                 (`environment:`, a secret's `environment:`, a published `image:`)"
            ),
        )
    };
    let present = |v: &Value| !v.is_null();
    if tree.get("include").is_some_and(present) {
        return Err(refuse(&root, "include", "`include`"));
    }
    if let Some(Value::Mapping(services)) = tree.get("services") {
        let at = root.key("services");
        for (name, svc) in services {
            let at = at.key(&super::value::key_string(name));
            for key in ["env_file", "build", "label_file"] {
                if svc.get(key).is_some_and(present) {
                    return Err(refuse(&at, key, &format!("`{key}`")));
                }
            }
            if svc.get("extends").and_then(|e| e.get("file")).is_some_and(present) {
                return Err(refuse(&at.key("extends"), "file", "`extends` with `file`"));
            }
        }
    }
    for section in ["secrets", "configs"] {
        let Some(Value::Mapping(entries)) = tree.get(section) else { continue };
        let at = root.key(section);
        for (name, entry) in entries {
            if entry.get("file").is_some_and(present) {
                return Err(refuse(&at.key(&super::value::key_string(name)), "file", "`file`"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::compose::source::Source;
    use crate::descriptor::compose::{load_in_memory, load_with_options, LoadOptions};
    use crate::descriptor::{Descriptor, DescriptorRef};

    /// A folder of two teams: `Team/App` (the application, with
    /// `compose.yaml` and `app.env`) and `Shop/Staging` (someone else's,
    /// with a `.env`, a compose file and a Dockerfile holding a secret).
    struct Teams {
        _dir: tempfile::TempDir,
        base: PathBuf,
        app: PathBuf,
    }

    const SECRET: &str = "PASSWORD=hunter2-from-shop";

    fn teams() -> Teams {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let app = base.join("Team/App");
        let shop = base.join("Shop/Staging");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::create_dir_all(&shop).unwrap();
        std::fs::write(shop.join(".env"), format!("{SECRET}\n")).unwrap();
        std::fs::write(shop.join("compose.yaml"), "services:\n  db: {image: shop-db, environment: [A=1]}\n").unwrap();
        std::fs::write(shop.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(app.join("app.env"), "GREETING=hello\n").unwrap();
        std::fs::create_dir_all(app.join("parts")).unwrap();
        std::fs::write(app.join("parts/base.yaml"), "services:\n  base: {image: base, environment: [B=2]}\n").unwrap();
        std::fs::write(app.join("parts/extra.yaml"), "services:\n  extra: {image: extra}\n").unwrap();
        std::fs::write(app.join("Dockerfile"), "FROM scratch\n").unwrap();
        Teams { _dir: dir, base, app }
    }

    impl Teams {
        /// Loads `text` as the application's `compose.yaml`, confined to
        /// its folder (or not, with `confine` false), with `options`.
        fn load_with(
            &self,
            text: &str,
            confine: bool,
            options: LoadOptions,
        ) -> crate::error::Result<crate::stack::Stack> {
            let path = self.app.join("compose.yaml");
            std::fs::write(&path, text).unwrap();
            let descriptor = Descriptor::read(DescriptorRef::File(path.clone()), None, &path).unwrap();
            let options = LoadOptions { confine: confine.then(|| vec![self.app.clone()]), ..options };
            load_with_options(&descriptor, "app", &options, &|_| None)
        }

        fn load(&self, text: &str) -> crate::error::Result<crate::stack::Stack> {
            self.load_with(text, true, LoadOptions::default())
        }

        /// The refusal for `text`, checked for the words every refusal has.
        fn refused(&self, text: &str, written: &str) -> String {
            let err = self.load(text).map(|_| ()).unwrap_err();
            assert!(matches!(err, crate::error::Error::Descriptor(_)), "{err:?}");
            let err = err.to_string();
            assert!(err.contains(&format!("{written:?}")), "names the path as written: {err}");
            assert!(err.contains(&self.app.display().to_string()), "names the allowed root: {err}");
            assert!(err.contains("move the file into the application's folder"), "says what to do: {err}");
            assert!(err.contains("policy root"), "{err}");
            assert!(!err.contains("hunter2"), "quotes nothing from the file: {err}");
            err
        }
    }

    #[test]
    fn a_confined_load_reads_files_inside_the_application_folder() {
        let t = teams();
        std::fs::write(t.app.join(".env"), "TAG=7\n").unwrap();
        let stack = t
            .load(
                "include: [parts/extra.yaml]\nservices:\n  web:\n    image: web:${TAG}\n    env_file: app.env\n    \
                 extends: {file: parts/base.yaml, service: base}\n  built:\n    build: {context: ., dockerfile: Dockerfile}\n",
            )
            .unwrap();
        let web = &stack.services["web"];
        assert_eq!(web.image, "web:7");
        assert_eq!(web.environment["GREETING"], Some("hello".into()));
        assert_eq!(web.environment["B"], Some("2".into()));
        assert!(stack.services.contains_key("extra"));
        assert!(stack.inputs.contains_key(&t.app.join("app.env")));
        // A `..` that stays inside is fine too.
        t.load("services:\n  web: {image: x, env_file: parts/../app.env}\n").unwrap();
    }

    #[test]
    fn an_env_file_outside_the_folder_is_refused_however_it_is_written() {
        let t = teams();
        let err =
            t.refused("services:\n  web: {image: x, env_file: ../../Shop/Staging/.env}\n", "../../Shop/Staging/.env");
        assert!(err.contains("service \"web\"") && err.contains("env_file"), "names the key and service: {err}");
        assert!(err.contains("compose.yaml:2"), "names the file and line: {err}");
        let absolute = t.base.join("Shop/Staging/.env").display().to_string();
        t.refused(&format!("services:\n  web: {{image: x, env_file: '{absolute}'}}\n"), &absolute);
        t.refused("services:\n  web: {image: x, env_file: /etc/shadow}\n", "/etc/shadow");
        t.refused(
            "services:\n  web: {image: x, env_file: [{path: ../../Shop/Staging/.env, required: false}]}\n",
            "../../Shop/Staging/.env",
        );
        // An outside file that does not exist is refused in the same words.
        let missing = t.refused(
            "services:\n  web: {image: x, env_file: ../../Shop/Staging/nope.env}\n",
            "../../Shop/Staging/nope.env",
        );
        assert_eq!(missing.replace("nope.env", ".env"), err);
        // Without `confine`, today's behaviour: the file is read.
        let open = t
            .load_with(
                "services:\n  web: {image: x, env_file: ../../Shop/Staging/.env}\n",
                false,
                LoadOptions::default(),
            )
            .unwrap();
        assert!(open.services["web"].environment.contains_key("PASSWORD"));
    }

    #[test]
    fn symlinks_inside_the_folder_do_not_lead_out() {
        let t = teams();
        std::os::unix::fs::symlink(t.base.join("Shop/Staging/.env"), t.app.join("link.env")).unwrap();
        std::os::unix::fs::symlink(t.base.join("Shop"), t.app.join("shop")).unwrap();
        let err = t.refused("services:\n  web: {image: x, env_file: link.env}\n", "link.env");
        assert!(err.contains("following symlinks"), "{err}");
        t.refused("services:\n  web: {image: x, env_file: shop/Staging/.env}\n", "shop/Staging/.env");
        t.refused("services:\n  web: {image: x, build: shop/Staging}\n", "shop/Staging");
        // A symlink that stays inside is fine.
        std::os::unix::fs::symlink(t.app.join("app.env"), t.app.join("same.env")).unwrap();
        t.load("services:\n  web: {image: x, env_file: same.env}\n").unwrap();
        // `.env` next to the descriptor, as a symlink out.
        std::os::unix::fs::symlink(t.base.join("Shop/Staging/.env"), t.app.join(".env")).unwrap();
        let err = t.load("services:\n  web: {image: x}\n").unwrap_err().to_string();
        assert!(err.contains(".env") && err.contains("outside") && !err.contains("hunter2"), "{err}");
    }

    #[test]
    fn includes_extends_and_builds_outside_the_folder_are_refused() {
        let t = teams();
        let err = t.refused(
            "include: [../../Shop/Staging/compose.yaml]\nservices:\n  web: {image: x}\n",
            "../../Shop/Staging/compose.yaml",
        );
        assert!(err.contains("include"), "{err}");
        t.refused(
            "include:\n  - {path: parts/extra.yaml, env_file: ../../Shop/Staging/.env}\nservices:\n  web: {image: x}\n",
            "../../Shop/Staging/.env",
        );
        t.refused(
            "include:\n  - {path: parts/extra.yaml, project_directory: ../../Shop/Staging}\nservices:\n  web: {image: x}\n",
            "../../Shop/Staging",
        );
        let err = t.refused(
            "services:\n  web:\n    image: x\n    extends: {file: ../../Shop/Staging/compose.yaml, service: db}\n",
            "../../Shop/Staging/compose.yaml",
        );
        assert!(err.contains("extends") && err.contains("service \"web\""), "{err}");
        let err = t.refused("services:\n  web: {build: ../../Shop/Staging}\n", "../../Shop/Staging");
        assert!(err.contains("build context"), "{err}");
        t.refused("services:\n  web: {build: {context: /etc}}\n", "/etc");
        let err = t.refused(
            "services:\n  web: {build: {context: ., dockerfile: ../../Shop/Staging/Dockerfile}}\n",
            "../../Shop/Staging/Dockerfile",
        );
        assert!(err.contains("dockerfile"), "{err}");
    }

    #[test]
    fn override_and_env_files_outside_the_folder_are_refused() {
        let t = teams();
        let text = "services:\n  web: {image: x}\n";
        let shop_env = t.base.join("Shop/Staging/.env");
        let options = LoadOptions { env_file: Some(shop_env.clone()), ..Default::default() };
        let err = t.load_with(text, true, options).unwrap_err().to_string();
        assert!(err.contains("--env-file") && err.contains("outside") && !err.contains("hunter2"), "{err}");
        let options = LoadOptions { overrides: vec!["../../Shop/Staging/compose.yaml".into()], ..Default::default() };
        let err = t.load_with(text, true, options).unwrap_err().to_string();
        assert!(err.contains("override file") && err.contains("outside"), "{err}");
        let options = LoadOptions { overrides: vec!["parts/extra.yaml".into()], ..Default::default() };
        t.load_with(text, true, options).unwrap();
    }

    #[test]
    fn nothing_is_read_when_loading_from_memory() {
        for text in [
            "services:\n  web: {image: x, env_file: /etc/hostname}\n",
            "include: [/etc/hostname]\nservices:\n  web: {image: x}\n",
            "services:\n  web: {image: x, extends: {file: /etc/hostname, service: a}}\n",
            "services:\n  web: {build: /etc}\n",
            "services:\n  web: {image: x, label_file: /etc/hostname}\n",
            "services:\n  web: {image: x}\nsecrets:\n  s: {file: /etc/hostname}\n",
            "services:\n  web: {image: x}\nconfigs:\n  c: {file: /etc/hostname}\n",
            "web: {image: x, env_file: /etc/hostname}\n",
        ] {
            let err = load_in_memory(text, "app").unwrap_err().to_string();
            assert!(err.contains("would read a file on the server") && !err.contains("/etc/hostname"), "{text}: {err}");
        }
        let stack = load_in_memory("services:\n  web: {image: x, extends: base}\n  base: {image: y}\n", "app").unwrap();
        assert!(stack.inputs.is_empty());
        // The backstop: with nothing allowed, no read gets through.
        let denied = Source::in_memory().read(Path::new("/etc/hostname"));
        assert!(matches!(denied, Err(ReadError::Denied(Denied::NoFiles))));
    }

    #[test]
    fn loads_on_one_thread_keep_their_own_access_and_reads_even_when_nested() {
        let t = teams();
        let (app, shop) = (t.app.join("compose.yaml"), t.base.join("Shop/Staging/compose.yaml"));
        // A confined load of the application whose variable lookup runs two
        // more loads on the same thread before the outer one reads its
        // `env_file`: an open one of the shop's folder (which reads the
        // shop's `.env`) and one from memory (which may read nothing).
        let confined_load = |text: &str| {
            std::fs::write(&app, text).unwrap();
            let inner = std::cell::RefCell::new(None);
            let env = |name: &str| {
                if name == "TAG" && inner.borrow().is_none() {
                    let descriptor = Descriptor::read(DescriptorRef::File(shop.clone()), None, &shop).unwrap();
                    let open = load_with_options(&descriptor, "shop", &LoadOptions::default(), &|_| None).unwrap();
                    let memory = load_in_memory("services:\n  web: {image: x, env_file: app.env}\n", "app");
                    *inner.borrow_mut() = Some((open, memory.map(|_| ()).unwrap_err().to_string()));
                }
                (name == "TAG").then(|| "7".to_string())
            };
            let descriptor = Descriptor::read(DescriptorRef::File(app.clone()), None, &app).unwrap();
            let options = LoadOptions { confine: Some(vec![t.app.clone()]), ..Default::default() };
            let outer = load_with_options(&descriptor, "app", &options, &env);
            let (open, memory) = inner.into_inner().expect("the inner loads ran");
            (outer, open, memory)
        };
        let (outer, open, memory) = confined_load("services:\n  web: {image: 'web:${TAG}', env_file: app.env}\n");
        let outer = outer.unwrap();
        assert_eq!(outer.services["web"].image, "web:7");
        assert_eq!(outer.services["web"].environment["GREETING"], Some("hello".into()));
        assert_eq!(outer.inputs.keys().collect::<Vec<_>>(), [&t.app.join("app.env")]);
        assert_eq!(open.inputs.keys().collect::<Vec<_>>(), [&t.base.join("Shop/Staging/.env")]);
        assert!(memory.contains("would read a file on the server"), "{memory}");
        // The open load in between does not open the confined one up.
        let (outer, open, _) =
            confined_load("services:\n  web: {image: 'web:${TAG}', env_file: ../../Shop/Staging/.env}\n");
        let err = outer.map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("outside") && err.contains("env_file") && !err.contains("hunter2"), "{err}");
        assert!(open.services["db"].environment.contains_key("A"));
    }
}
