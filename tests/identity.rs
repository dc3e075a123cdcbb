//! Identity against a real, throwaway OpenLDAP `slapd` on a loopback port:
//! lookup with both group styles, filter escaping, an unknown Rundeck user
//! denied by the real binary, and a stopped directory failing closed.

mod common;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use dockmaster::error::Error;
use dockmaster::identity::{authenticate, lookup, LdapConfig};

const BASE: &str = "dc=example,dc=org";
const ADMIN_PASSWORD: &str = "adminpw-for-tests";
/// Every test user's password.
const USER_PASSWORD: &str = "userpw-for-tests";

/// A slapd with its own database in a temp folder, killed on drop.
struct Slapd {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Slapd {
    /// `None` when slapd is not installed on a developer machine; in CI
    /// (`CI` set) a missing slapd fails the test.
    fn start() -> Option<Slapd> {
        Slapd::start_with("")
    }

    /// `extra` goes into the global part of slapd.conf (e.g. `allow bind_anon_dn`).
    fn start_with(extra: &str) -> Option<Slapd> {
        if !std::path::Path::new("/usr/sbin/slapd").exists() {
            if common::in_ci() {
                panic!("CI is set but /usr/sbin/slapd is missing: .ci/run must install slapd and ldap-utils");
            }
            eprintln!("note: slapd is not installed; skipping (apt-get install slapd ldap-utils)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("db")).unwrap();
        let hash = Command::new("/usr/sbin/slappasswd").args(["-s", ADMIN_PASSWORD]).output().unwrap();
        let hash = String::from_utf8_lossy(&hash.stdout).trim().to_string();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\ninclude /etc/ldap/schema/nis.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n{extra}\npidfile {d}/slapd.pid\nargsfile {d}/slapd.args\n\
             modulepath /usr/lib/ldap\nmoduleload back_mdb\nloglevel none\ndatabase mdb\nmaxsize 67108864\n\
             suffix \"{BASE}\"\nrootdn \"cn=admin,{BASE}\"\nrootpw {hash}\ndirectory {d}/db\n\
             index objectClass eq\nindex uid,memberUid,member eq\n\
             access to attrs=userPassword by self write by anonymous auth by * none\naccess to * by * read\n",
            d = d.display()
        );
        std::fs::write(d.join("slapd.conf"), conf).unwrap();
        let user_hash = Command::new("/usr/sbin/slappasswd").args(["-s", USER_PASSWORD]).output().unwrap();
        let user_hash = String::from_utf8_lossy(&user_hash.stdout).trim().to_string();
        let person = |uid: &str, cn: &str| {
            format!(
                "dn: uid={uid},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {cn}\nsn: {cn}\nmail: {uid}@example.org\nuserPassword: {user_hash}\n\n"
            )
        };
        let mut ldif = format!(
            "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
             dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n"
        );
        for (uid, cn) in [("alice", "Alice A"), ("bob", "Bob B"), ("carol*(x)", "Carol X"), ("carol2", "Carol Two")] {
            ldif.push_str(&person(uid, cn));
        }
        ldif.push_str(&format!(
            "dn: cn=deployers,ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: deployers\nmember: uid=alice,ou=people,{BASE}\n\n\
             dn: cn=ops,ou=groups,{BASE}\nobjectClass: posixGroup\ncn: ops\ngidNumber: 5000\nmemberUid: alice\nmemberUid: bob\n\n"
        ));
        std::fs::write(d.join("base.ldif"), ldif).unwrap();
        let conf_path = d.join("slapd.conf");
        let added = Command::new("/usr/sbin/slapadd")
            .args(["-q", "-f"])
            .arg(&conf_path)
            .arg("-l")
            .arg(d.join("base.ldif"))
            .output()
            .unwrap();
        assert!(added.status.success(), "slapadd failed: {}", String::from_utf8_lossy(&added.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("/usr/sbin/slapd")
            .args(["-d", "0", "-h", &format!("ldap://127.0.0.1:{port}/"), "-f"])
            .arg(&conf_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Ready means it answers an LDAP query, not just that it accepts.
        let until = Instant::now() + Duration::from_secs(10);
        let answers = || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
                && Command::new("ldapsearch")
                    .args(["-x", "-H", &format!("ldap://127.0.0.1:{port}/"), "-b", BASE, "-s", "base", "-l", "2"])
                    .output()
                    .is_ok_and(|o| o.status.success())
        };
        while !answers() {
            assert!(Instant::now() < until, "slapd did not answer on {port} within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Slapd { child, port, _dir: dir })
    }

    fn config(&self, password_file: PathBuf) -> LdapConfig {
        serde_yaml::from_str(&format!(
            "providerUrl: ldap://127.0.0.1:{}\nbindDn: cn=admin,{BASE}\nbindPasswordFile: {}\n\
             userBaseDn: ou=people,{BASE}\nroleBaseDn: ou=groups,{BASE}\ntimeoutMillis: 2000\n",
            self.port,
            password_file.display()
        ))
        .unwrap()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn password_file(dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("bind-password");
    std::fs::write(&path, format!("{ADMIN_PASSWORD}\n")).unwrap();
    path
}

#[tokio::test]
async fn a_user_is_found_with_groups_of_both_styles_and_filter_metacharacters_are_escaped() {
    let Some(slapd) = Slapd::start() else { return };
    let secrets = tempfile::tempdir().unwrap();
    let config = slapd.config(password_file(&secrets));

    let alice = lookup(&config, "alice").await.expect("alice exists");
    assert_eq!(alice.dn, format!("uid=alice,ou=people,{BASE}"));
    assert_eq!(alice.groups, vec!["deployers", "ops"], "groupOfNames/member and posixGroup/memberUid");
    assert_eq!(alice.mail.as_deref(), Some("alice@example.org"));

    // `carol*(x)` is a literal name: escaped, it finds exactly that entry
    // (unescaped it would be a broken filter, or match carol2 as well).
    let carol = lookup(&config, "carol*(x)").await.expect("the literal uid is found");
    assert_eq!(carol.display_name.as_deref(), Some("Carol X"));
    // `carol*` must not match carol*(x) and carol2 by wildcard.
    match lookup(&config, "carol*").await {
        Err(Error::Denied(m)) => assert!(m.contains("not in the directory"), "{m}"),
        other => panic!("`carol*` must match nobody, got {other:?}"),
    }
    match lookup(&config, "*").await {
        Err(Error::Denied(m)) => assert!(m.contains("not in the directory"), "{m}"),
        other => panic!("`*` must match nobody, got {other:?}"),
    }
    assert!(matches!(lookup(&config, "mallory").await, Err(Error::Denied(_))));
}

#[tokio::test]
async fn a_stopped_directory_fails_closed() {
    let Some(mut slapd) = Slapd::start() else { return };
    let secrets = tempfile::tempdir().unwrap();
    let config = slapd.config(password_file(&secrets));
    let first = lookup(&config, "alice").await;
    assert!(first.is_ok(), "before the stop: {first:?}");
    let _ = slapd.child.kill();
    let _ = slapd.child.wait();
    match lookup(&config, "alice").await {
        Err(e @ Error::Unreachable(_)) => assert_eq!(e.exit_code(), 5),
        other => panic!("a stopped directory must deny as unreachable, got {other:?}"),
    }
}

#[test]
fn the_rundeck_step_denies_unknown_users_and_users_without_the_right_group_and_allows_the_rest() {
    let Some(run) = common::TestRun::start("rd-ldap") else { return };
    let Some(slapd) = Slapd::start() else { return };
    let secrets = tempfile::tempdir().unwrap();
    run.add_config(&format!(
        "ldap:\n  providerUrl: ldap://127.0.0.1:{}\n  bindDn: cn=admin,{BASE}\n  bindPasswordFile: {}\n  userBaseDn: ou=people,{BASE}\n  roleBaseDn: ou=groups,{BASE}\n\
         access:\n  rules:\n    - groups: [deployers]\n      actions: [deploy, plan, status]\n      descriptors: [\"**\"]\n",
        slapd.port,
        password_file(&secrets).display()
    ));
    let file = run.compose(&format!(
        "services:\n  app:\n    image: {}\n    command: [\"sleep\", \"1000\"]\n",
        common::FIXTURE_IMAGE
    ));
    let step = |user: &str| {
        run.dockmaster_with_env(
            ["rundeck"],
            &[("RD_JOB_USERNAME", user), ("RD_JOB_EXECID", "1"), ("RD_CONFIG_DESCRIPTOR", file.as_str())],
        )
    };
    let denied = step("mallory");
    denied.assert_exit(4);
    denied.check(denied.stderr.contains("mallory") && denied.stderr.contains("not in the directory"), "says why");
    denied.check(common::containers_with_label(&run.label()).is_empty(), "nothing was deployed");
    let no_group = step("bob");
    no_group.assert_exit(4);
    no_group.check(
        no_group.stderr.contains("no access rule allows `deploy`") && no_group.stderr.contains("ops"),
        "a user without the right group is denied, with the groups named",
    );
    no_group.check(common::containers_with_label(&run.label()).is_empty(), "nothing was deployed for bob");
    // The CLI names no user yet (password login is not built): with access
    // rules in force it must refuse, not deploy unchecked.
    let cli = run.dockmaster(["deploy", file.as_str()]);
    cli.assert_exit(4);
    cli.check(cli.stderr.contains("log in with --user"), "the CLI without a login fails closed");
    let wrong = run.dockmaster_with_env(["--user", "alice", "plan", file.as_str()], &[("DOCKMASTER_PASSWORD", "nope")]);
    wrong.assert_exit(4);
    wrong.check(wrong.stderr.contains("wrong user name or password"), "a wrong password is refused");
    let login =
        run.dockmaster_with_env(["--user", "alice", "plan", file.as_str()], &[("DOCKMASTER_PASSWORD", USER_PASSWORD)]);
    login.assert_exit(0);
    login.check(!login.stdout.contains(USER_PASSWORD) && !login.stderr.contains(USER_PASSWORD), "no password echoed");
    let allowed = step("alice");
    allowed.assert_exit(0);
    allowed.check(allowed.stdout.contains("alice found in the directory (groups: deployers, ops)"), "names the user");
    allowed.check(allowed.stdout.contains("alice may deploy"), "says which rule allowed it");
    allowed.check(!allowed.stdout.contains(ADMIN_PASSWORD) && !allowed.stderr.contains(ADMIN_PASSWORD), "no secret");
}

#[tokio::test]
async fn password_login_binds_as_the_user_and_an_empty_password_is_refused_before_any_bind() {
    // This directory accepts an empty simple bind as an anonymous session.
    let Some(slapd) = Slapd::start_with("allow bind_anon_dn") else { return };
    let secrets = tempfile::tempdir().unwrap();
    let config = slapd.config(password_file(&secrets));

    let alice = authenticate(&config, "alice", USER_PASSWORD).await.expect("the right password logs in");
    assert_eq!(alice.groups, vec!["deployers", "ops"]);
    match authenticate(&config, "alice", "wrong").await {
        Err(Error::Denied(m)) => assert!(m.contains("wrong user name or password"), "{m}"),
        other => panic!("a wrong password must be denied, got {other:?}"),
    }
    assert!(matches!(authenticate(&config, "mallory", "x").await, Err(Error::Denied(_))));

    // Proof that the danger is real here: ldap3 sends the empty password and
    // this slapd answers "success" (rc 0) with an anonymous session.
    let (conn, mut ldap) = ldap3::LdapConnAsync::new(&format!("ldap://127.0.0.1:{}", slapd.port)).await.unwrap();
    ldap3::drive!(conn);
    let raw = ldap.simple_bind(&format!("uid=alice,ou=people,{BASE}"), "").await.unwrap();
    assert_eq!(raw.rc, 0, "this slapd accepts an empty bind: {raw:?}");
    // dockmaster refuses it before any bind.
    match authenticate(&config, "alice", "").await {
        Err(Error::Denied(m)) => assert!(m.contains("empty password"), "{m}"),
        other => panic!("an empty password must be refused, got {other:?}"),
    }
}
