//! A throwaway OpenLDAP `slapd` for tests: its own database in a temporary
//! folder, on a free loopback port, killed when dropped (the recipe in
//! `TESTING.md`). Self-contained, so any test file can include it:
//!
//! ```ignore
//! #[path = "common/slapd.rs"]
//! mod slapd;
//!
//! let Some(directory) = slapd::Slapd::start() else { return };
//! let yaml = directory.ldap_yaml(); // the keys of an `ldap:` section
//! ```
//!
//! When slapd is not installed, [`Slapd::start`] returns `None` after a
//! note, so the test can return; with `CI` set it panics instead, because a
//! skipped test in CI hides breakage.
//!
//! ## The directory (`dc=example,dc=org`)
//!
//! | user (`ou=people`) | groups (`ou=groups`) | notes |
//! |---|---|---|
//! | `alice` | `deployers` (groupOfNames), `ops` (posixGroup) | `staff` contains `deployers` (nested) |
//! | `bob` | `ops` (posixGroup), `reviewers` (groupOfUniqueNames) | also in `cn=deployers,ou=elsewhere`, *outside* `ou=groups` |
//! | `carol*(x)` | `starred` (groupOfNames) | filter metacharacters in the uid |
//! | `carol2` | `qa` (posixGroup) | what an unescaped `carol*` would also match |
//! | `dave` | `deployers` | disabled: `employeeType: disabled`, refused by [`USER_FILTER`] |
//!
//! Every user's password is [`USER_PASSWORD`]. The `dynlist` overlay fills
//! `memberOf` on user entries (groupOfNames only), as Active Directory does.
//! With [`SlapdBuilder::tls`], an `openssl`-made CA signs a certificate for
//! `DNS:localhost, IP:127.0.0.1`; StartTLS works on the `ldap://` port and
//! an `ldaps://` port is opened too.

// Each test file uses part of it.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The directory's suffix.
pub const BASE: &str = "dc=example,dc=org";
/// Where people live.
pub const PEOPLE: &str = "ou=people,dc=example,dc=org";
/// Where groups live.
pub const GROUPS: &str = "ou=groups,dc=example,dc=org";
/// The directory's administrator, used as dockmaster's service account.
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
/// Its password (in the file [`Slapd::password_file`] names).
pub const ADMIN_PASSWORD: &str = "adminpw-for-tests";
/// Every test user's password.
pub const USER_PASSWORD: &str = "userpw-for-tests";
/// The enabled-user filter matching this directory's disabled marker.
pub const USER_FILTER: &str = "(!(employeeType=disabled))";

const SLAPD: &str = "/usr/sbin/slapd";

/// Whether tests run in CI: `CI` set to anything but empty, `0` or `false`.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
}

/// `true` when `program` can be used; otherwise a note (or, in CI, a panic).
fn tool_or_skip(program: &str, package: &str) -> bool {
    if Path::new(program).exists() || which(program) {
        return true;
    }
    if in_ci() {
        panic!("CI is set but `{program}` is missing: .ci/run must install {package}");
    }
    eprintln!("note: `{program}` is not installed; skipping this directory test (apt-get install {package})");
    false
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// How the directory is set up before it starts.
#[derive(Default)]
pub struct SlapdBuilder {
    global: Vec<String>,
    tls: bool,
    ldif: String,
}

impl SlapdBuilder {
    /// A line for the global part of `slapd.conf`, e.g. `allow bind_anon_dn`.
    pub fn global(mut self, line: &str) -> Self {
        self.global.push(line.to_string());
        self
    }

    /// Serve TLS: StartTLS on the plain port, and an `ldaps://` port.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// More entries (LDIF, loaded with the standard ones).
    pub fn ldif(mut self, entries: &str) -> Self {
        self.ldif.push_str(entries.trim_end());
        self.ldif.push_str("\n\n");
        self
    }

    /// Starts slapd and waits until it answers a search. `None` when slapd
    /// (or, for TLS, openssl) is missing outside CI.
    pub fn start(self) -> Option<Slapd> {
        if !tool_or_skip(SLAPD, "slapd ldap-utils") || !tool_or_skip("ldapsearch", "ldap-utils") {
            return None;
        }
        if self.tls && !tool_or_skip("openssl", "openssl") {
            return None;
        }
        let dir = tempfile::tempdir().expect("a temporary folder");
        let d = dir.path();
        std::fs::create_dir_all(d.join("db")).unwrap();
        let admin_hash = hash(ADMIN_PASSWORD);
        let user_hash = hash(USER_PASSWORD);
        let mut global = self.global.join("\n");
        let ca_file = if self.tls {
            let ca = make_ca(d, "ca", "dockmaster test CA");
            make_server_cert(d, &ca, "server");
            global.push_str(&format!(
                "\nTLSCACertificateFile {d}/ca.pem\nTLSCertificateFile {d}/server.pem\nTLSCertificateKeyFile {d}/server.key\n",
                d = d.display()
            ));
            Some(ca)
        } else {
            None
        };
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/dyngroup.schema\n\
             {global}\n\
             pidfile {d}/slapd.pid\n\
             argsfile {d}/slapd.args\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             moduleload dynlist\n\
             loglevel none\n\
             database mdb\n\
             maxsize 67108864\n\
             suffix \"{BASE}\"\n\
             rootdn \"{ADMIN_DN}\"\n\
             rootpw {admin_hash}\n\
             directory {d}/db\n\
             index objectClass eq\n\
             index uid,memberUid,member,uniqueMember eq\n\
             overlay dynlist\n\
             dynlist-attrset groupOfURLs memberURL member+memberOf@groupOfNames\n\
             access to attrs=userPassword by self write by anonymous auth by * none\n\
             access to * by * read\n",
            d = d.display()
        );
        let conf_path = d.join("slapd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let ldif = format!("{}{}", standard_entries(&user_hash), self.ldif);
        std::fs::write(d.join("base.ldif"), ldif).unwrap();
        let added = Command::new("/usr/sbin/slapadd")
            .args(["-q", "-f"])
            .arg(&conf_path)
            .arg("-l")
            .arg(d.join("base.ldif"))
            .output()
            .expect("slapadd runs");
        assert!(added.status.success(), "slapadd failed: {}", String::from_utf8_lossy(&added.stderr));
        std::fs::write(d.join("bind-password"), format!("{ADMIN_PASSWORD}\n")).unwrap();

        let port = free_port();
        let ldaps_port = self.tls.then(free_port);
        let mut urls = format!("ldap://127.0.0.1:{port}/");
        if let Some(p) = ldaps_port {
            urls.push_str(&format!(" ldaps://127.0.0.1:{p}/"));
        }
        let child = Command::new(SLAPD)
            .args(["-d", "0", "-h", &urls, "-f"])
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("slapd starts");
        let slapd = Slapd { child, port, ldaps_port, ca_file, dir, stopped: false };
        // Ready means it answers an LDAP search, not just that it accepts.
        let until = Instant::now() + Duration::from_secs(10);
        while !slapd.answers() {
            assert!(Instant::now() < until, "slapd did not answer on port {port} within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(slapd)
    }
}

/// A running slapd. Dropping it kills it and removes its folder.
pub struct Slapd {
    child: Child,
    /// The plain (and StartTLS) port on 127.0.0.1.
    pub port: u16,
    /// The `ldaps://` port, with [`SlapdBuilder::tls`].
    pub ldaps_port: Option<u16>,
    /// The CA that signed the server certificate, with [`SlapdBuilder::tls`].
    pub ca_file: Option<PathBuf>,
    dir: tempfile::TempDir,
    stopped: bool,
}

impl Slapd {
    /// The standard directory, plain LDAP only.
    pub fn start() -> Option<Slapd> {
        Slapd::builder().start()
    }

    /// A directory set up with more options.
    pub fn builder() -> SlapdBuilder {
        SlapdBuilder::default()
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://127.0.0.1:PORT`, with [`SlapdBuilder::tls`].
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port.expect("started with .tls()"))
    }

    /// A file holding the service account's password (first line).
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("bind-password")
    }

    /// The directory's own folder, for test files (extra CAs, ...).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The keys of an `ldap:` configuration section for this directory,
    /// one per line, not indented. Append keys to change them only if they
    /// are not here (YAML refuses duplicates): `providerUrl`, `bindDn`,
    /// `bindPasswordFile`, `userBaseDn`, `roleBaseDn`, `userFilter`,
    /// `timeoutConnect`, `timeoutRead`.
    pub fn ldap_yaml(&self) -> String {
        self.ldap_yaml_with_url(&self.url())
    }

    /// [`Slapd::ldap_yaml`] with another `providerUrl`.
    pub fn ldap_yaml_with_url(&self, url: &str) -> String {
        format!(
            "providerUrl: {url}\nbindDn: {ADMIN_DN}\nbindPasswordFile: {}\nuserBaseDn: {PEOPLE}\nroleBaseDn: {GROUPS}\n\
             userFilter: \"{USER_FILTER}\"\ntimeoutConnect: 3000\ntimeoutRead: 3000\n",
            self.password_file().display()
        )
    }

    /// [`Slapd::ldap_yaml`] indented for use under `ldap:` in a
    /// dockmaster configuration file.
    pub fn config_section(&self) -> String {
        let mut section = String::from("ldap:\n");
        for line in self.ldap_yaml().lines() {
            section.push_str("  ");
            section.push_str(line);
            section.push('\n');
        }
        section
    }

    /// Applies an LDIF change (with `changetype:`) as the administrator,
    /// while the directory runs.
    pub fn modify(&self, ldif: &str) {
        use std::io::Write;
        let mut child = Command::new("ldapmodify")
            .args(["-x", "-H", &self.url(), "-D", ADMIN_DN, "-w", ADMIN_PASSWORD])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ldapmodify runs");
        child.stdin.take().expect("stdin").write_all(ldif.as_bytes()).unwrap();
        let done = child.wait_with_output().unwrap();
        assert!(done.status.success(), "ldapmodify failed: {}", String::from_utf8_lossy(&done.stderr));
    }

    /// Kills the directory: everything after this finds nobody listening.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stopped = true;
    }

    /// Freezes the directory (SIGSTOP): connections are still accepted by
    /// the kernel, but nothing answers, like a hung server.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Thaws a [`Slapd::pause`]d directory.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} slapd");
    }

    fn answers(&self) -> bool {
        TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            && Command::new("ldapsearch")
                .args(["-x", "-H", &self.url(), "-b", BASE, "-s", "base", "-l", "2"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if !self.stopped {
            // SIGKILL also ends a paused (stopped) process.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A free port on 127.0.0.1 (asked of the kernel, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn hash(password: &str) -> String {
    let out = Command::new("/usr/sbin/slappasswd").args(["-s", password]).output().expect("slappasswd runs");
    assert!(out.status.success(), "slappasswd failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Makes a self-signed CA (`NAME.pem`, `NAME.key` in `dir`, P-256) and
/// answers the certificate's path. Also handy for a "wrong CA".
pub fn make_ca(dir: &Path, name: &str, common_name: &str) -> PathBuf {
    let (pem, key) = (format!("{name}.pem"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &format!("/CN={common_name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    dir.join(pem)
}

/// Makes `NAME.pem` / `NAME.key` in `dir`, signed by the CA at `ca` (its
/// key beside it), for `DNS:localhost, IP:127.0.0.1`.
pub fn make_server_cert(dir: &Path, ca: &Path, name: &str) {
    let ca_key = ca.with_extension("key");
    let (csr, key, pem, ext) =
        (format!("{name}.csr"), format!("{name}.key"), format!("{name}.pem"), format!("{name}.ext"));
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let (ca, ca_key) = (ca.display().to_string(), ca_key.display().to_string());
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

/// The standard entries (see the module documentation).
fn standard_entries(user_hash: &str) -> String {
    let mut ldif = format!(
        "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
         dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n\n\
         dn: ou=elsewhere,{BASE}\nobjectClass: organizationalUnit\nou: elsewhere\n\n"
    );
    let people = [
        ("alice", "Alice Archer", ""),
        ("bob", "Bob Baker", ""),
        ("carol*(x)", "Carol Star", ""),
        ("carol2", "Carol Two", ""),
        ("dave", "Dave Disabled", "employeeType: disabled\n"),
    ];
    for (uid, cn, extra) in people {
        ldif.push_str(&format!(
            "dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {cn}\nsn: {cn}\n\
             mail: {mail}@example.org\nuserPassword: {user_hash}\n{extra}\n",
            mail = uid.replace(['*', '(', ')'], "")
        ));
    }
    let person = |uid: &str| format!("uid={uid},{PEOPLE}");
    ldif.push_str(&format!(
        "dn: cn=deployers,{GROUPS}\nobjectClass: groupOfNames\ncn: deployers\nmember: {alice}\nmember: {dave}\n\n\
         dn: cn=ops,{GROUPS}\nobjectClass: posixGroup\ncn: ops\ngidNumber: 5000\nmemberUid: alice\nmemberUid: bob\n\n\
         dn: cn=reviewers,{GROUPS}\nobjectClass: groupOfUniqueNames\ncn: reviewers\nuniqueMember: {bob}\n\n\
         dn: cn=starred,{GROUPS}\nobjectClass: groupOfNames\ncn: starred\nmember: {carol}\n\n\
         dn: cn=qa,{GROUPS}\nobjectClass: posixGroup\ncn: qa\ngidNumber: 5001\nmemberUid: carol2\n\n\
         dn: cn=staff,{GROUPS}\nobjectClass: groupOfNames\ncn: staff\nmember: cn=deployers,{GROUPS}\n\n\
         dn: cn=deployers,ou=elsewhere,{BASE}\nobjectClass: groupOfNames\ncn: deployers\nmember: {bob}\n\n",
        alice = person("alice"),
        dave = person("dave"),
        bob = person("bob"),
        carol = person("carol*(x)"),
    ));
    ldif
}
